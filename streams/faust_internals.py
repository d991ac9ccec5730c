"""Every use of Faust's private internals, each naming the upstream issue it works around.

faust-streaming's consumer commits, per partition, the first run of consecutive acknowledged
offsets (``Consumer._new_offset``), filling in offsets it believes no record holds from
*gaps* it noted while fetching (``Consumer._add_gap``). On the topics our agents read strictly
in order (``PartitionProgress``: usage and requests) that goes wrong three ways:

- after a seek back (a re-read of skipped messages, or a batch refused for a gap), records
  fetched before the seek arrive ahead of the new read position and Faust notes the distance
  as a gap; those offsets are later acknowledged for real a second time, and the duplicates
  split every run, so commits crawl forward by about one offset per commit interval
  (robinhood/faust#625, "Offsets not committed due to duplicate in _acked"; still so in
  faust-streaming 0.15) and a clean stop leaves thousands uncommitted;
- the same gap, filled in before its records are processed, lets Faust commit offsets never
  processed (lost on the next crash);
- with those gap notes off, offsets that hold no record (a transaction's control record) are
  never acknowledged, and commits would stop there (robinhood/faust#401 for the kindred case
  of compacted topics).

``commit_positions`` makes Faust commit, for those topics, exactly the next offset their
agent must process (``PartitionProgress.position``), which moves past holes (probed),
offsets deleted by retention and re-reads, and turns Faust's gap notes off for them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import faust
from faust.types import TP

__all__ = ["commit_positions"]


def commit_positions(app: faust.App, positions: Mapping[str, Callable[[TP], int | None]]
                     ) -> None:
    """For each topic in ``positions`` commit ``positions[topic](tp)`` (the next offset to
    process, None while unknown) instead of Faust's acknowledged run. Call once, after the
    app is built."""
    consumer: Any = app.consumer
    add_gap = consumer._add_gap
    new_offset = consumer._new_offset

    async def _add_gap(tp: TP, offset_from: int, offset_to: int) -> None:
        if tp.topic not in positions:
            await add_gap(tp, offset_from, offset_to)

    def _new_offset(tp: TP) -> int | None:
        position = positions.get(tp.topic)
        if position is None:
            result: int | None = new_offset(tp)
            return result
        consumer._acked[tp].clear()  # Faust's list is not read for these topics: keep it small
        consumer._acked_index[tp].clear()
        return position(tp)

    consumer._add_gap = _add_gap
    consumer._new_offset = _new_offset
