"""The delivery protocol both agents follow, written once.

An agent reads one topic in batches of messages handed over by Faust's fetch loop
(``MessageBuffer``, below Faust's per-message stream) and, per batch:

1. waits until the budgets and the catalog are read (``ConfigFeeds``);
2. re-reads the ledger if the consumer generation changed (a rebalance restored tables),
   and holds the reservations answered for on partitions taken over
   (``SpendControl.restore_answered``);
3. keeps only the events of the current generation (older ones are delivered again);
4. checks that each partition continues without a gap, else seeks back and drops the batch
   (``PartitionProgress``): events are processed strictly in offset order;
5. does its work (``hand(batch)``): changes the state and hands the batch's records to the
   producer, then takes the next batch while the broker takes them (a pipelined agent: up
   to ``IN_FLIGHT`` batches in flight);
6. once they are all delivered, batch after batch in order, announces the alerts and
   directives due and marks the messages done, which moves the offsets the worker commits.

A dropped batch (None anywhere, or records fenced off by a rebalance, ``streams.fencing``)
does not move them: its messages come again (read again after the seek back, or after the
rebalance). A batch whose work raised is taken again. If a batch's records fail, every
partition is read again from what was delivered (``PartitionProgress.undelivered``), and no
batch taken after it is marked done either.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import faust
from faust.types import StreamT

from streams.batching import Delivered, MessageBuffer
from streams.faust_compat import divert_messages, divert_records, note_inbound, steady
from streams.fencing import Fenced
from streams.partition_progress import PartitionProgress, RecordProbe

if TYPE_CHECKING:
    from streams.config_feeds import ConfigFeeds
    from streams.control import SpendControl

__all__ = ["Batch", "OrderedDelivery"]

log = logging.getLogger("prsm.delivery")

RETRY_AFTER_S = 1.0
"""Pause before a batch whose work raised is taken again."""
IN_FLIGHT = 4
"""Batches an agent may have handed to the producer and not yet seen delivered while it
takes the next one. At one, a request arriving while a batch waited for the broker waited
too (0.8-1.0 ms of a 6.3 ms median at 1,000 requests/s, when a decision still waited for
two writes in a row; 0.1 ms at four).
A failure re-reads every batch in flight (docs/decisions/2026-12-05-batches-in-flight.md)."""


@dataclass
class Batch:
    """Messages accepted for work, and the consumer generation they belong to."""

    app: faust.App
    stream: StreamT[Any]  # the agent's (its current event picks a RocksDB store's shard)
    events: list[Delivered]
    generation: int
    on_done: Callable[[], None] | None = None
    """Called once the batch is done (delivered, and every batch before it done)."""

    def still_current(self) -> bool:
        """False once a rebalance started or ended since the batch was accepted: what was
        read meanwhile may be stale, so the batch must be dropped (and comes again)."""
        return self.app.consumer_generation_id == self.generation and steady(self.app)


Handover = Callable[[Batch], Awaitable[Awaitable[None] | None]]
"""An agent's work: change the state and hand the batch's records to the producer; returns
what waits until the broker has them all (None: the batch is dropped)."""


class OrderedDelivery:
    """One agent's reading of ``topic`` under the protocol in the module doc."""

    def __init__(self, app: faust.App, topic: Any, feeds: ConfigFeeds, control: SpendControl,
                 probe: RecordProbe, *, ready_poll_s: float, buffer_high: int) -> None:
        self.app = app
        self.topic = topic
        self.feeds = feeds
        self.control = control
        self.ready_poll_s = ready_poll_s
        self.buffer = MessageBuffer(app, high=buffer_high)
        divert_messages(app, topic.get_topic_name(), self.buffer.receive)
        divert_records(app, topic.get_topic_name(), self.buffer.receive_records)
        self.progress = PartitionProgress(app, topic.get_topic_name(), self.buffer.idle,
                                          probe=probe)
        control.trackers.append(self.progress)

    async def accept(self, stream: StreamT[Any], events: list[Delivered]) -> Batch | None:
        """Steps 1-4: the batch to work on, or None when it must be dropped."""
        await self.feeds.until_ready(poll_s=self.ready_poll_s)
        await self.control.restore_answered()  # the generation synced, nothing awaited since
        if self.control.unread:
            return None  # rebalanced while reading back what was answered: comes again
        generation = self.app.consumer_generation_id
        current = self.progress.current(events)
        if not current:
            return None  # re-delivered after the rebalance
        if not await self.progress.in_order(current):
            return None  # a later message before an earlier one: re-read in order
        return Batch(self.app, stream, current, generation)

    async def complete(self, batch: Batch, now: float, epoch: int) -> bool:
        """Step 6 (``epoch``: what ``PartitionProgress.take`` returned for the batch); False
        when the batch is not done after all (it comes again)."""
        await self.control.announce(now)
        return self.progress.done(batch.events, epoch)

    def agent(self, name: str, hand: Handover, *, size: int, within_s: float,
              answer_when_idle: bool = False, on_acked: Callable[[int], None] | None = None,
              max_bytes: int | None = None, in_flight: int = IN_FLIGHT) -> Any:
        """Register the agent: batches of at most ``size`` messages (and about ``max_bytes``),
        taken within ``within_s`` of the first (at once when nothing else is waiting, with
        ``answer_when_idle``), each handed over while up to ``in_flight`` before it are
        being delivered (module doc). ``on_acked`` is told how many messages each batch done
        had."""
        if in_flight < 1:
            raise ValueError(f"in_flight must be at least 1, not {in_flight}")
        buffer = self.buffer

        async def deliver(batch: Batch, waiting: Awaitable[None], epoch: int,
                          previous: asyncio.Future[None] | None) -> None:
            try:
                if previous is not None:
                    await previous  # batches are done in the order they were taken
                try:
                    await waiting
                    if not await self.complete(batch, time.time(), epoch):
                        return  # taken before a re-read or a rebalance: it comes again
                    if batch.on_done is not None:
                        batch.on_done()
                except Fenced as exc:  # a rebalance: not done, read again by the new owner
                    log.info("%s", exc)  # (a batch taken after it is of the old generation)
                    return
                except Exception:  # a later batch must not be done past this one: re-read
                    log.exception("the records of a batch of %d messages were not delivered; "
                                  "re-reading from what was", len(batch.events))
                    try:
                        await self.progress.undelivered()
                    except Exception:  # not sought back: the idle check re-reads them
                        log.exception("seeking back to what was delivered failed")
                    await asyncio.sleep(RETRY_AFTER_S)
                    return
            finally:
                buffer.delivering -= 1
            note_inbound(self.app, {e.message.tp for e in batch.events})
            if on_acked is not None:
                on_acked(len(batch.events))

        async def run(stream: StreamT[Any]) -> None:
            delivering: deque[asyncio.Future[None]] = deque()  # in the order taken
            while True:
                events = await buffer.next_batch(size, within_s, max_bytes,
                                                 at_once=answer_when_idle)
                buffer.busy = True
                try:
                    batch = await self.accept(stream, events)
                    waiting = None if batch is None else await hand(batch)
                except Fenced as exc:  # a rebalance began: dropped, it comes again after
                    log.info("%s", exc)
                    continue
                except Exception:  # a failing batch must not stop the agent: taken again
                    log.exception("processing a batch of %d messages failed; retrying in "
                                  "%.0fs", len(events), RETRY_AFTER_S)
                    buffer.put_back(events)
                    await asyncio.sleep(RETRY_AFTER_S)
                    continue
                finally:
                    buffer.busy = False
                if batch is not None and waiting is not None:
                    buffer.delivering += 1
                    delivering.append(asyncio.ensure_future(deliver(
                        batch, waiting, self.progress.take(batch.events),
                        delivering[-1] if delivering else None)))
                while delivering and delivering[0].done():
                    delivering.popleft()
                while len(delivering) > in_flight:  # at most in_flight while the next is taken
                    await delivering.popleft()

        run.__name__ = run.__qualname__ = name.replace("-", "_")
        return self.app.agent(self.topic, name=name)(run)

    async def guard(self) -> None:
        """For a timer: re-read partitions whose fetched messages never reached the agent."""
        if steady(self.app):
            await self.progress.check()
