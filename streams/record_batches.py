"""Hand many records to the producer as one record batch per partition.

Faust's ``Producer.send`` hands aiokafka one record at a time, and aiokafka's ``send`` costs
about 12 us of CPU per record (metadata wait, partitioner, accumulator, one future each):
more than deciding a request's budget check. aiokafka's public ``create_batch`` and
``send_batch`` take a partition's records as one batch for about 1.3 us a record. The agents
gather a batch's records here and send them at once: the decisions, the accepted usage
records and the changelog rows.

Records of one partition keep the order they were added in, and records sent earlier (by
``send`` or another batch) stay ahead of them: aiokafka queues a partition's batches in
order. A record larger than a batch goes in a batch of its own (aiokafka's builder takes any
first record; the broker refuses one above the topic's ``max.message.bytes``, and its future
fails). Records sent this way do not fire Faust's ``on_produce_message`` signal (nothing
here listens to it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

from aiokafka import AIOKafkaProducer

from prsm_events.kafka.partitioning import owner_partition
from streams.fencing import Fenced

__all__ = ["Headers", "RecordBatches"]

Headers = Sequence[tuple[str, bytes]]
"""A record's headers: (name, value) pairs."""
_Row = tuple[int, bytes | None, bytes | None, list[tuple[str, bytes]]]
"""A record as added: its place among the batch's records, key, value and headers (a list:
aiokafka's batch builder takes no other sequence)."""
_NO_HEADERS: list[tuple[str, bytes]] = []  # read, never changed, by the builder


class RecordBatches:
    """Records gathered per (topic, partition), sent as one batch each by :meth:`send`."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        self._records: dict[tuple[str, int], list[_Row]] = {}
        self._keyed: dict[str, list[_Row]] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, topic: str, partition: int, key: bytes | None, value: bytes | None) -> None:
        """Add a record for ``partition`` of ``topic``."""
        self._records.setdefault((topic, partition), []).append(
            (self._count, key, value, _NO_HEADERS))
        self._count += 1

    def add_keyed(self, topic: str, key: bytes, value: bytes | None,
                  headers: Headers = ()) -> None:
        """Add a record for the partition Kafka's default partitioner gives ``key``, with
        ``headers`` ((name, value) pairs)."""
        self._keyed.setdefault(topic, []).append(
            (self._count, key, value, list(headers) if headers else _NO_HEADERS))
        self._count += 1

    async def send(self, fence: Callable[[], bool] | None = None
                   ) -> list[asyncio.Future[Any]]:
        """Hand every record to the producer; the futures of their delivery, one per record
        in the order they were added (records of one batch share its future). With
        ``fence``, each record batch is handed only while it returns True, else ``Fenced``
        is raised (those already handed stay so)."""
        for topic, keyed in self._keyed.items():
            partitions = len(await self.producer.partitions_for(topic))
            for row in keyed:
                key = row[1]
                assert key is not None  # add_keyed takes bytes
                self._records.setdefault((topic, owner_partition(key.decode(), partitions)),
                                         []).append(row)
        futures: list[asyncio.Future[Any] | None] = [None] * self._count
        records, self._records, self._keyed, self._count = self._records, {}, {}, 0
        for (topic, partition), rows in records.items():
            rows.sort(key=itemgetter(0))  # keyed records joined the partition's list last
            await self._send_partition(topic, partition, rows, futures, fence)
        assert all(f is not None for f in futures)
        return futures  # type: ignore[return-value]

    async def _send_partition(self, topic: str, partition: int,
                              rows: list[_Row],
                              futures: list[asyncio.Future[Any] | None],
                              fence: Callable[[], bool] | None) -> None:
        producer = self.producer

        async def hand(batch: Any) -> asyncio.Future[Any]:
            if fence is not None and not fence():
                raise Fenced(f"a rebalance began: records for {topic}[{partition}] not sent")
            sent: asyncio.Future[Any] = await producer.send_batch(batch, topic,
                                                                  partition=partition)
            return sent

        batch = producer.create_batch()
        places: list[int] = []
        for place, key, value, headers in rows:
            if batch.append(key=key, value=value, timestamp=None,
                            headers=headers) is None:  # full: send it
                sent = await hand(batch)
                for p in places:
                    futures[p] = sent
                batch, places = producer.create_batch(), []
                if batch.append(key=key, value=value, timestamp=None,
                                headers=headers) is None:
                    raise RuntimeError(f"an empty record batch refused a record of {topic}")
            places.append(place)
        if places:
            sent = await hand(batch)
            for p in places:
                futures[p] = sent
