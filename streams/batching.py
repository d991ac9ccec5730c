"""Size- and time-bound batches over a Faust stream, acknowledged only once processed."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from faust.types import EventT, StreamT

__all__ = ["EventBatcher", "LiveBatchers"]

log = logging.getLogger("prsm.batching")


class EventBatcher:
    """Gather events into batches of at most ``size`` messages (and about ``max_bytes`` of
    values: a batch envelope carries many events in one message), flushed at the latest
    ``within`` s after the first one arrived; acknowledge each event only after its batch
    was processed.
    ``process`` returns False for a batch it dropped (its events will be delivered again).
    Not Faust's ``stream.take()``: docs/decisions/2026-11-26-own-batching.md.
    """

    def __init__(
        self,
        stream: StreamT[Any],
        process: Callable[[StreamT[Any], list[EventT[Any]]], Awaitable[bool]],
        size: int,
        within: float,
        on_acked: Callable[[int], None] | None = None,
        max_bytes: int | None = None,
    ) -> None:
        self.stream = stream
        self.max_bytes = max_bytes
        self.bytes = 0
        self.on_acked = on_acked
        self.process = process
        self.size = size
        self.within = within
        self.pending: list[EventT[Any]] = []
        self.first_at = 0.0
        self.lock = asyncio.Lock()
        self._timer: asyncio.Task[None] | None = None

    async def __aenter__(self) -> EventBatcher:
        self._timer = asyncio.create_task(self._flush_when_due())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._timer is not None:
            self._timer.cancel()

    async def add(self, event: EventT[Any]) -> None:
        if not self.pending:
            self.first_at = time.monotonic()
        self.pending.append(event)
        if self.max_bytes is not None:
            self.bytes += len(event.message.value or b"")
        if len(self.pending) >= self.size or (
                self.max_bytes is not None and self.bytes >= self.max_bytes):
            await self.flush()

    @property
    def idle(self) -> bool:
        """Nothing gathered and no batch being processed."""
        return not self.pending and not self.lock.locked()

    async def flush(self) -> None:
        async with self.lock:
            events, self.pending = self.pending, []
            self.bytes = 0
            if not events:
                return
            try:
                done = await self.process(self.stream, events)
            except BaseException:
                self.pending = events + self.pending  # not lost: retried with the next flush
                if self.max_bytes is not None:
                    self.bytes = sum(len(e.message.value or b"") for e in self.pending)
                raise
            if done:
                for event in events:
                    await self.stream.ack(event)
                if self.on_acked is not None:
                    self.on_acked(len(events))

    async def _flush_when_due(self) -> None:
        while True:
            wait = self.within
            if self.pending:
                wait = self.first_at + self.within - time.monotonic()
                if wait <= 0:
                    try:
                        await self.flush()
                    except Exception:  # a failing batch must not stop the timer for good
                        log.exception("processing a batch failed; it will be retried")
                        await asyncio.sleep(1.0)
                    continue
            await asyncio.sleep(max(wait, 0.001))


class LiveBatchers:
    """The batchers (and stream channels) of an agent's running instances: the agent is idle
    when none holds or processes a batch and nothing waits in a channel. A crashed instance
    leaves with its batcher, so it cannot keep the agent from ever looking idle."""

    def __init__(self) -> None:
        self.live: list[tuple[EventBatcher, Any]] = []

    @contextmanager
    def attach(self, batcher: EventBatcher, channel: Any) -> Iterator[None]:
        entry = (batcher, channel)
        self.live.append(entry)
        try:
            yield
        finally:
            self.live.remove(entry)

    def idle(self) -> bool:
        return all(b.idle and c.empty() for b, c in self.live)
