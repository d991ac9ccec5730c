"""Batches of one topic's messages, handed over by Faust's fetch loop below its streams.

Faust's consumer hands each fetched message of the topic to :meth:`MessageBuffer.receive`
(``faust_compat.divert_messages``) instead of decoding it into an event for a stream; the
agent takes batches with :meth:`MessageBuffer.next_batch`. That skips the per-message stream
machinery (an event, a queue hand-off, sensors, an acknowledgement per message), which held a
no-op Faust agent near a third of the raw client's rate. Nothing is acknowledged per message:
the agents' topics commit the position their ``PartitionProgress`` reached.

When ``high`` messages (or ``HIGH_BYTES`` of values) wait, the partitions that keep sending
are paused at the fetcher (Faust's own back-pressure, ``Consumer.on_buffer_full``) and resumed
once the buffer is down to half (unless a rebalance came between: Faust then fetches every
partition it still has).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from typing import Any

import faust
import msgspec
from faust.types import TP, Message

__all__ = ["HIGH_BYTES", "Delivered", "MessageBuffer"]

HIGH_BYTES = 64 * 1024 * 1024
"""Values waiting above which the fetcher pauses the partitions that send more."""


class Fetched(msgspec.Struct, frozen=True, gc=False):
    """A fetched record as the agents read it: the fields of Faust's message they use, built
    in a tenth of the time of Faust's ``ConsumerMessage`` (``receive_records``)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    tp: TP
    generation_id: int
    timestamp: float  # the record's timestamp (epoch seconds), as on Faust's message


class Delivered(msgspec.Struct, frozen=True, weakref=True):  # a stream's current event is weak
    """A fetched message as an agent handles it (``message``, as on a Faust event) and when
    it arrived (``time.monotonic``)."""

    message: Message | Fetched
    arrived: float


class MessageBuffer:
    """Messages waiting for an agent, in the order they were fetched."""

    def __init__(self, app: faust.App, high: int) -> None:
        self.app = app
        self.high = high
        self.pending: deque[Delivered] = deque()
        self.bytes = 0
        self.busy = False  # a batch taken from here is being processed
        self.delivering = 0  # batches processed whose records the broker has not confirmed
        self.paused: set[TP] = set()
        self.paused_generation = -1  # the consumer generation the partitions were paused in
        self.pauses = 0  # partitions paused at the fetcher so far (for /stats)
        self._wake = asyncio.Event()
        self._wanted: tuple[int, int | None] = (1, None)  # what wakes a waiting agent

    def receive(self, message: Message) -> None:
        """Take a fetched message (in Faust's fetch loop: does not wait)."""
        self.pending.append(Delivered(message, time.monotonic()))
        self.bytes += len(message.value or b"")
        self._received(message.topic, message.partition, 1)

    def receive_records(self, tp: TP, records: list[Any], generation: int) -> None:
        """Take a partition's fetched aiokafka records, in order (in Faust's fetch loop,
        ``faust_compat.divert_records``: does not wait)."""
        arrived = time.monotonic()
        topic, partition = tp.topic, tp.partition
        tp = TP(topic, partition)
        append = self.pending.append
        size = 0
        for r in records:
            value = r.value
            append(Delivered(Fetched(topic, partition, r.offset, r.key, value, tp, generation,
                                     r.timestamp / 1000.0), arrived))
            if value is not None:
                size += len(value)
        self.bytes += size
        self._received(topic, partition, len(records))

    def _received(self, topic: str, partition: int, added: int) -> None:
        if (len(self.pending) >= self.high or self.bytes >= HIGH_BYTES) and (
                (topic, partition) not in self.paused):
            tp = TP(topic, partition)  # a message's tp may be aiokafka's kind
            if not self.paused:
                self.paused_generation = self.app.consumer_generation_id
            self.paused.add(tp)
            self.pauses += 1
            self.app.consumer.on_buffer_full(tp)
        size, max_bytes = self._wanted
        if len(self.pending) == added or len(self.pending) >= size or (
                max_bytes is not None and self.bytes >= max_bytes):
            self._wake.set()

    def idle(self) -> bool:
        """Nothing waiting and no batch being processed or delivered."""
        return not self.pending and not self.busy and not self.delivering

    async def next_batch(self, size: int, within_s: float, max_bytes: int | None = None,
                         at_once: bool = False) -> list[Delivered]:
        """The next batch: at most ``size`` messages and about ``max_bytes`` of values (at
        least one message), once that many wait or ``within_s`` after the first of them
        arrived (``at_once``: as soon as any wait)."""
        self._wanted = (size, max_bytes)
        while True:
            if self.pending:
                due = self.pending[0].arrived + within_s - time.monotonic()
                if at_once or due <= 0 or len(self.pending) >= size or (
                        max_bytes is not None and self.bytes >= max_bytes):
                    return self._take(size, max_bytes)
            else:
                due = None
            self._wake.clear()
            if due is None:
                await self._wake.wait()
            else:
                with contextlib.suppress(TimeoutError):  # due: take what is there
                    await asyncio.wait_for(self._wake.wait(), due)

    def _take(self, size: int, max_bytes: int | None) -> list[Delivered]:
        batch: list[Delivered] = []
        taken = 0
        pending = self.pending
        while pending and len(batch) < size and (max_bytes is None or taken < max_bytes):
            item = pending.popleft()
            batch.append(item)
            taken += len(item.message.value or b"")
        self.bytes -= taken
        if self.paused and len(pending) <= self.high // 2 and self.bytes <= HIGH_BYTES // 2:
            # after a rebalance Faust fetches every assigned partition again: resuming one
            # it no longer has would make the fetcher ask for it
            if self.app.consumer_generation_id == self.paused_generation:
                for tp in self.paused:
                    self.app.consumer.on_buffer_drop(tp)
            self.paused.clear()
        return batch

    def put_back(self, batch: list[Delivered]) -> None:
        """Return a batch whose processing failed: it is the next one taken."""
        self.pending.extendleft(reversed(batch))
        self.bytes += sum(len(item.message.value or b"") for item in batch)

    def __len__(self) -> int:
        return len(self.pending)
