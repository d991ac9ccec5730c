"""Process each partition's messages in offset order, with no gaps.

The spend rows skip messages at or below the offset of the last one they folded (that is what
makes a re-delivery count once). That is only right when messages are folded in order: around
a restart, faust-streaming 0.11 sometimes hands the agent a later message of a partition while
earlier ones were fetched and never delivered (see ``StallGuard``); folding the later one first
would make the rows skip the earlier ones for good.

``OffsetOrder`` tracks, per partition and consumer generation, the next offset the agent must
see (first the committed offset). A batch that would jump past it is not processed: the
partition is sought back to the missing offset and the batch is re-delivered in order.
Usage and request topics are neither compacted nor transactional, so offsets are contiguous.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import faust
from faust.types import TP, EventT

__all__ = ["OffsetOrder"]

log = logging.getLogger("prsm.order")


class OffsetOrder:
    def __init__(self, app: faust.App) -> None:
        self.app = app
        self.generation = -1
        self.next: dict[TP, int] = {}
        self.sought: dict[TP, tuple[int, float]] = {}
        """Partition -> (offset sought back to, when): one seek per gap, not one per batch."""
        self.rewinds = 0

    def _expected(self, tp: TP) -> int | None:
        if self.app.consumer_generation_id != self.generation:
            self.generation = self.app.consumer_generation_id
            self.next.clear()
        if tp not in self.next:
            committed = self.app.consumer._committed_offset.get(tp)  # type: ignore[attr-defined]
            if committed is None:
                return None  # never committed: nothing to compare the first batch with
            self.next[tp] = int(committed)
        return self.next[tp]

    def gaps(self, events: list[EventT[Any]]) -> dict[TP, int]:
        """Partitions whose messages in ``events`` skip an offset, with the missing one."""
        found: dict[TP, int] = {}
        expected: dict[TP, int | None] = {}
        for event in events:
            m = event.message
            if m.tp in found:
                continue
            want = expected[m.tp] if m.tp in expected else self._expected(m.tp)
            if want is not None and m.offset > want:
                found[m.tp] = want
            else:
                expected[m.tp] = max(want or 0, m.offset + 1)
        return found

    async def rewind(self, gaps: dict[TP, int]) -> None:
        """Seek each partition back to its first missing offset (messages fetched before the
        seek may still arrive: they are refused again without another seek for a while)."""
        now = time.monotonic()
        fresh = {tp: o for tp, o in gaps.items()
                 if self.sought.get(tp, (-1, 0.0))[0] != o or now - self.sought[tp][1] > 5.0}
        if not fresh:
            return
        self.rewinds += 1
        log.warning("messages arrived out of order (%s); re-reading from the first missing one",
                    ", ".join(f"{tp.topic}[{tp.partition}] missing {o}" for tp, o in fresh.items()))
        for tp, offset in fresh.items():
            self.sought[tp] = (offset, now)
            await self.app.consumer.seek(tp, offset)

    def advance(self, events: list[EventT[Any]]) -> None:
        """The batch was processed: its partitions continue after its last offsets."""
        for event in events:
            m = event.message
            if self.app.consumer_generation_id == self.generation:
                self.next[m.tp] = max(self.next.get(m.tp, 0), m.offset + 1)
