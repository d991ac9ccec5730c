"""Re-read a topic when Faust fetched messages that never reached its agent.

Seen with faust-streaming 0.11 after a worker restart while messages kept arriving: the
consumer's fetch position moved to the end of a partition, one message reached the agent,
the rest never did and nothing re-read them (the agent idled with work on the broker). The
guard notices a partition whose fetch position is ahead of the last message its agent saw
while the agent is idle, and seeks every partition back to its committed offset; processing
is idempotent, so a re-delivery is safe.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import faust
from faust.types import TP, EventT

__all__ = ["StallGuard"]

log = logging.getLogger("prsm.stall")


class StallGuard:
    def __init__(self, app: faust.App, topic: str, idle: Callable[[], bool],
                 after_s: float = 5.0) -> None:
        self.app = app
        self.topic = topic
        self.idle = idle
        self.after_s = after_s
        self.seen: dict[int, tuple[int, float]] = {}
        """Partition -> (last offset the agent saw, when)."""
        self.seeks = 0

    def saw(self, partition: int, offset: int) -> None:
        self.seen[partition] = (offset, time.monotonic())

    def current(self, events: list[EventT[Any]]) -> list[EventT[Any]]:
        """Note what the agent saw; keep the events of the current consumer generation (the
        others were fetched before a rebalance; Faust seeks back and re-delivers them)."""
        generation = self.app.consumer_generation_id
        for event in events:
            self.saw(event.message.partition, event.message.offset)
        return [e for e in events if e.message.generation_id == generation]

    async def check(self) -> bool:
        """Seek back to committed offsets if a partition stalled; True if it did."""
        now = time.monotonic()
        stalled: list[tuple[TP, int, int]] = []
        for tp in self.app.consumer.assignment():
            if tp.topic != self.topic:
                continue
            position = await self.app.consumer.position(tp)
            offset, at = self.seen.setdefault(tp.partition, (-1, now))
            if position is not None and position > offset + 1 and now - at >= self.after_s:
                stalled.append((tp, offset, position))
        if not stalled or not self.idle():
            return False
        self.seeks += 1
        log.warning("fetched messages never reached the agent (%s); re-reading from the "
                    "committed offsets", ", ".join(f"{tp.topic}[{tp.partition}] saw {o}, "
                                                   f"fetched to {p}" for tp, o, p in stalled))
        await self.app.consumer.perform_seek()
        for tp in self.app.consumer.assignment():
            if tp.topic == self.topic:
                position = await self.app.consumer.position(tp)
                self.seen[tp.partition] = ((position or 0) - 1, time.monotonic())
        return True
