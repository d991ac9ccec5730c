"""Re-read a topic when Faust fetched messages that never reached its agent.

Seen with faust-streaming 0.11 after a worker restart while messages kept arriving: the
consumer's fetch position moved to the end of a partition, one message reached the agent,
the rest never did and nothing re-read them (the agent idled with work on the broker). The
guard notices an idle agent whose partition holds messages beyond what it saw and committed
(the fetch position or the partition's end offset is further), and seeks every partition
back to its committed offset (a never-committed one to its beginning); processing is
idempotent, so a re-delivery is safe.
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
        """Keep the events of the current consumer generation (the others were fetched
        before a rebalance) and note them as seen. Dropped ones are not noted: if Faust does
        not deliver them again, the guard sees them waiting and re-reads them."""
        generation = self.app.consumer_generation_id
        kept = [e for e in events if e.message.generation_id == generation]
        for event in kept:
            self.saw(event.message.partition, event.message.offset)
        return kept

    async def check(self) -> bool:
        """Seek back if messages wait beyond what an idle agent saw and committed; True if
        it did."""
        now = time.monotonic()
        quiet = []
        for tp in self.app.consumer.assignment():
            if tp.topic != self.topic:
                continue
            _, at = self.seen.setdefault(tp.partition, (-1, now))
            if now - at >= self.after_s:
                quiet.append(tp)
        if not quiet or not self.idle():
            return False
        consumer = self.app.consumer
        ends = await consumer.highwaters(*quiet)
        committed = consumer._committed_offset  # type: ignore[attr-defined]  # Faust's record
        stalled: list[tuple[TP, int, int]] = []
        for tp in quiet:
            done_to = max(self.seen[tp.partition][0] + 1, committed.get(tp) or 0)
            waiting = max(await consumer.position(tp) or 0, ends.get(tp, 0))
            if waiting > done_to:
                stalled.append((tp, done_to, waiting))
        if not stalled:
            for tp in quiet:  # nothing behind: check again after another quiet spell
                self.seen[tp.partition] = (self.seen[tp.partition][0], now)
            return False
        self.seeks += 1
        log.warning("messages never reached the agent (%s); re-reading from the committed "
                    "offsets", ", ".join(f"{tp.topic}[{tp.partition}] done to {d}, "
                                         f"{w - d} waiting" for tp, d, w in stalled))
        await consumer.perform_seek()
        for tp, _, _ in stalled:
            if committed.get(tp) is None:
                # never committed: read from the beginning, as auto_offset_reset=earliest
                await consumer.seek(tp, 0)
        for tp, _, _ in stalled:
            self.seen[tp.partition] = (self.seen[tp.partition][0], time.monotonic())
        return True
