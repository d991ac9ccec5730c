"""Follow every partition of a (compacted) topic from its beginning, record by record.

The worker reads budgets and the catalog this way, and the SDK's ThrottleCache the
policies: no consumer group, no committed offsets; the topic itself is the state.
``caught_up`` is set once every partition was read up to the end it had at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from prsm_events.errors import BrokerError
from prsm_events.kafka.aiokafka_compat import cluster_metadata
from prsm_events.kafka.connection import KafkaConnection, started

__all__ = ["CompactedView", "cancel", "fetch_batches", "wait_for_partitions"]

log = logging.getLogger("prsm.view")

OnRecord = Callable[[bytes | None, bytes | None], None]
OnError = Callable[[str, int, int, bytes | None, bytes | None, Exception], None]
"""(topic, partition, offset, key, value, error) of a record ``on_record`` rejected."""


TOPIC_WAIT_S = 60.0
"""How long ``CompactedView.start`` waits for its topic to show in the broker's metadata."""


async def wait_for_partitions(
    consumer: AIOKafkaConsumer, topic: str, timeout_s: float = 10.0
) -> set[int]:
    """The topic's partitions; waits a little for a topic created a moment ago."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        cluster = await cluster_metadata(consumer)
        partitions = cluster.partitions_for_topic(topic)
        if partitions:
            return set(partitions)
        if loop.time() >= deadline:
            raise BrokerError(f"topic {topic} does not exist; run `prsm topics create`")
        await asyncio.sleep(0.2)


async def cancel(task: asyncio.Task[None] | None) -> None:
    """Cancel a background task and wait for it to end (its errors are the caller's past)."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


async def fetch_batches(
    consumer: AIOKafkaConsumer, what: str, timeout_ms: int = 500
) -> dict[TopicPartition, list[Any]]:
    """One ``getmany``; on a broker error: log, pause briefly, return nothing (callers loop)."""
    try:
        batches: dict[TopicPartition, list[Any]] = await consumer.getmany(timeout_ms=timeout_ms)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a broker hiccup: keep following
        log.warning("reading %s failed, retrying: %s", what, exc)
        await asyncio.sleep(0.5)
        return {}
    return batches


class CompactedView:
    """Calls ``on_record(key, value)`` for each record (value None: a tombstone).

    A record that ``on_record`` rejects (raises) goes to ``on_error`` and is skipped; the
    view never stops on bad input.
    """

    def __init__(
        self, kafka: KafkaConnection, topic: str, on_record: OnRecord,
        on_error: OnError | None = None, *, fetch_max_wait_ms: int = 100,
        from_end: bool = False, keep: Callable[[int], bool] | None = None,
    ) -> None:
        self.kafka = kafka
        self.from_end = from_end
        """Only records written after ``start`` (none of the history)."""
        self.keep = keep
        """Only records of the partitions it holds true for (asked at each fetch)."""
        self.topic = topic
        self.on_record = on_record
        self.on_error = on_error
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.caught_up = asyncio.Event()
        self.records = 0
        self.errors = 0
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._targets: dict[TopicPartition, int] = {}

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            **self.kafka.client_args(), group_id=None, enable_auto_commit=False,
            auto_offset_reset="earliest", fetch_max_wait_ms=self.fetch_max_wait_ms,
        )
        await started(consumer, self.kafka)
        try:
            # the worker created the topic a moment ago: on a loaded broker its metadata may
            # take a while to show it
            partitions = await wait_for_partitions(consumer, self.topic, TOPIC_WAIT_S)
            tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            if self.from_end:
                await consumer.seek_to_end(*tps)
                for tp in tps:  # (the position is looked up now, not at the first fetch)
                    await consumer.position(tp)
            else:
                await consumer.seek_to_beginning(*tps)
                self._targets = {tp: off for tp, off in
                                 (await consumer.end_offsets(tps)).items() if off > 0}
        except BaseException:
            await consumer.stop()
            raise
        self._consumer = consumer
        await self._check_caught_up()
        self._task = asyncio.create_task(self._follow(), name=f"view:{self.topic}")

    async def _check_caught_up(self) -> None:
        assert self._consumer is not None
        for tp, target in list(self._targets.items()):
            if await self._consumer.position(tp) >= target:
                del self._targets[tp]
        if not self._targets:
            self.caught_up.set()

    async def _follow(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await fetch_batches(self._consumer, self.topic)
            for tp, records in batches.items():
                if self.keep is not None and not self.keep(tp.partition):
                    continue
                for record in records:
                    self.records += 1
                    try:
                        self.on_record(record.key, record.value)
                    except Exception as exc:  # bad records never stop the view
                        self.errors += 1
                        log.warning("skipped a bad record on %s: %s", self.topic, exc)
                        if self.on_error is not None:
                            self.on_error(record.topic, record.partition, record.offset,
                                          record.key, record.value, exc)
            if not self.caught_up.is_set():
                await self._check_caught_up()

    async def wait_caught_up(self, timeout: float = 30.0) -> None:
        try:
            await asyncio.wait_for(self.caught_up.wait(), timeout)
        except TimeoutError:
            raise BrokerError(f"could not read {self.topic} to its end in {timeout:.0f}s") from None

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
