"""Whether the worker reads its topics as fast as they are written, judged at scoring ticks.

After a start, a rebalance or a table recovery the worker reads a backlog: minutes of spend
arrive within one scoring interval, which the forecasters would learn (and the anomaly
detector score) as a burst. ``CatchUp`` says when intervals are ordinary again: when, at a
tick, what is left to read is at most ``share`` of what was written since the previous tick,
or one message per partition (what is merely in flight), and, should anything have been left
at that look, once every message that existed then has been processed (the backlog's tail
counts in a skipped interval, never in a scored one).

The scoring tick takes its interval of spend *after* the look, with no wait in between, and
spend is metered before a message counts as processed: so the interval a tick skips holds
everything processed up to the look.

>>> from streams.partition_progress import Backlog
>>> c = CatchUp()
>>> c.observe([Backlog(waiting=5000, written=9000, partitions=3)])  # first look: behind
False
>>> c.observe([Backlog(waiting=2, written=9100, partitions=3)])
True
>>> c.lost_track(); c.behind
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from streams.partition_progress import Backlog

__all__ = ["CatchUp"]


class CatchUp:
    def __init__(self, share: float = 0.1) -> None:
        self.share = share
        self.behind = True
        self._written: int | None = None
        self._tail: dict[Any, int] | None = None
        """Partition -> end offset at the look that found the backlog small, while messages
        before it wait to be processed."""

    def lost_track(self) -> None:
        """A rebalance or recovery is under way: what is read meanwhile piles up."""
        self.behind = True
        self._written = None
        self._tail = None

    def observe(self, backlogs: Sequence[Backlog]) -> bool:
        """Take one look (one ``Backlog`` per topic); True once the worker is current (and
        until ``lost_track``)."""
        if not self.behind:
            return True
        positions = {tp: at for b in backlogs for tp, at in b.positions.items()}
        if self._tail is not None:  # partitions no longer assigned do not count
            self.behind = any(positions[tp] < end for tp, end in self._tail.items()
                              if tp in positions)
            if not self.behind:
                self._tail = None
            return not self.behind
        written = sum(b.written for b in backlogs)
        waiting = sum(b.waiting for b in backlogs)
        partitions = sum(b.partitions for b in backlogs)
        arrived = None if self._written is None else written - self._written
        self._written = written
        if arrived is not None and arrived >= 0:
            self.behind = waiting > max(self.share * arrived, partitions)
            ends = {tp: end for b in backlogs for tp, end in b.ends.items()}
            if not self.behind and any(positions.get(tp, 0) < end for tp, end in ends.items()):
                self.behind, self._tail = True, ends  # small, not yet processed: drain first
        return not self.behind
