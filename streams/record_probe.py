"""Ask the broker whether a stretch of a partition holds any record (``RecordProbe``).

A consumer of its own (no group, the agents' isolation level, ``read_uncommitted``) is
assigned the partition, sought to ``start`` and asked for one record: the fetch skips control
records (transaction markers), so the first record it returns, or its position reaching
``end`` with none, says whether ``[start, end)`` is a hole. Used by ``PartitionProgress``
only when offsets jump or messages seem to wait, so it costs nothing on the steady path.
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.types import TP

from prsm_events.kafka.connection import KafkaConnection

__all__ = ["BrokerRecordProbe"]


class BrokerRecordProbe:
    def __init__(self, kafka: KafkaConnection, timeout_s: float = 10.0) -> None:
        self.kafka = kafka
        self.timeout_s = timeout_s
        self.probes = 0
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()

    async def _started(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(**self.kafka.client_args(), group_id=None,
                                        enable_auto_commit=False,
                                        isolation_level="read_uncommitted")
            await consumer.start()
            self._consumer = consumer
        return self._consumer

    async def __call__(self, tp: TP, start: int, end: int) -> int | None:
        """The offset of the first record in ``[start, end)``, None if there is none; raises
        TimeoutError when the broker does not say within ``timeout_s``."""
        async with self._lock:
            self.probes += 1
            consumer = await self._started()
            ktp = TopicPartition(tp.topic, tp.partition)
            consumer.assign([ktp])
            consumer.seek(ktp, start)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.timeout_s
            while loop.time() < deadline:
                fetched = await consumer.getmany(ktp, timeout_ms=200, max_records=1)
                for record in fetched.get(ktp, []):
                    return record.offset if record.offset < end else None
                if await consumer.position(ktp) >= end:
                    return None
            raise TimeoutError(f"no answer about {tp.topic}[{tp.partition}] {start}..{end - 1}")

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
