"""The delivery protocol both agents follow, written once.

An agent reads one topic in batches of unacknowledged events (``EventBatcher``) and, per
batch:

1. waits until the budgets and the catalog are read (``ConfigFeeds``);
2. re-reads the ledger if the consumer generation changed (a rebalance restored tables);
3. keeps only the events of the current generation (older ones are delivered again);
4. checks that each partition continues without a gap, else seeks back and drops the batch
   (``PartitionProgress``): events are processed strictly in offset order;
5. does its work (``work(stream, batch)``, True when it kept the batch);
6. announces the alerts and directives due, and marks the events done, which moves the
   offsets the worker commits.

A dropped batch (False anywhere) is never acknowledged: its events come again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import faust
from faust.types import EventT, StreamT

from streams.batching import EventBatcher, LiveBatchers
from streams.faust_compat import steady, unacked_events
from streams.partition_progress import PartitionProgress, RecordProbe

if TYPE_CHECKING:
    from streams.config_feeds import ConfigFeeds
    from streams.control import SpendControl

__all__ = ["Batch", "OrderedDelivery"]


@dataclass
class Batch:
    """Events accepted for work, and the consumer generation they belong to."""

    app: faust.App
    stream: StreamT[Any]
    events: list[EventT[Any]]
    generation: int

    def still_current(self) -> bool:
        """False once a rebalance started or ended since the batch was accepted: what was
        read meanwhile may be stale, so the batch must be dropped (and comes again)."""
        return self.app.consumer_generation_id == self.generation and steady(self.app)


Work = Callable[[Batch], Awaitable[bool]]


class OrderedDelivery:
    """One agent's reading of ``topic`` under the protocol in the module doc."""

    def __init__(self, app: faust.App, topic: Any, feeds: ConfigFeeds, control: SpendControl,
                 probe: RecordProbe, *, ready_poll_s: float) -> None:
        self.app = app
        self.topic = topic
        self.feeds = feeds
        self.control = control
        self.ready_poll_s = ready_poll_s
        self.live = LiveBatchers()
        self.progress = PartitionProgress(app, topic.get_topic_name(), self.live.idle,
                                          probe=probe)
        control.trackers.append(self.progress)

    async def accept(self, stream: StreamT[Any], events: list[EventT[Any]]) -> Batch | None:
        """Steps 1-4: the batch to work on, or None when it must be dropped."""
        await self.feeds.until_ready(poll_s=self.ready_poll_s)
        generation = self.app.consumer_generation_id
        self.control.sync_generation()
        current = self.progress.current(events)
        if not current:
            return None  # re-delivered after the rebalance
        if not await self.progress.in_order(current):
            return None  # a later message before an earlier one: re-read in order
        return Batch(self.app, stream, current, generation)

    async def complete(self, batch: Batch, now: float) -> None:
        """Step 6."""
        await self.control.announce(now)
        self.progress.done(batch.events)

    def agent(self, name: str, work: Work, *, size: int, within_s: float,
              answer_when_idle: bool = False,
              on_acked: Callable[[int], None] | None = None,
              max_bytes: int | None = None) -> Any:
        """Register the agent: batches of at most ``size`` messages (and about ``max_bytes``),
        flushed within ``within_s`` (at once when nothing else is queued, with
        ``answer_when_idle``)."""

        async def process(stream: StreamT[Any], events: list[EventT[Any]]) -> bool:
            batch = await self.accept(stream, events)
            return batch is not None and await work(batch)

        async def run(stream: StreamT[Any]) -> None:
            batcher = EventBatcher(stream, process, size, within_s, on_acked=on_acked,
                                   max_bytes=max_bytes)
            channel: Any = stream.channel
            with self.live.attach(batcher, channel):
                async with batcher:
                    async for event in unacked_events(stream):
                        await batcher.add(event)
                        if answer_when_idle and channel.empty():
                            await batcher.flush()

        run.__name__ = run.__qualname__ = name.replace("-", "_")
        return self.app.agent(self.topic, name=name)(run)

    async def guard(self) -> None:
        """For a timer: re-read partitions whose fetched messages never reached the agent."""
        if steady(self.app):
            await self.progress.check()
