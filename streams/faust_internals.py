"""Every use of Faust's private internals, each naming the upstream issue it works around.

faust-streaming's consumer commits, per partition, the first run of consecutive acknowledged
offsets (``Consumer._new_offset``). Two things break that run on the topics our agents read
strictly in order (``PartitionProgress``: usage and requests, neither compacted nor
transactional, so their offsets have no holes):

- after a seek back (a re-read of skipped messages, or a batch refused for a gap), records
  fetched before the seek arrive with offsets ahead of the new read position, and Faust
  records the distance as a *gap* (``Consumer._add_gap``), offsets it later treats as
  acknowledged. Those offsets are then acknowledged for real a second time: the duplicates
  split every run, so commits crawl forward by about one offset per commit interval
  (robinhood/faust#625, "Offsets not committed due to duplicate in _acked"; still so in
  faust-streaming 0.15). Worse, a gap past what was processed would let Faust commit
  offsets never processed, lost on the next crash;
- the same duplicates keep a clean stop from committing what was processed.

``keep_commits_contiguous`` turns gap filling off for those topics and drops duplicate and
already-committed offsets before Faust looks for its run, so a partition's commit is always
exactly the next offset the agent must process.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import faust

__all__ = ["keep_commits_contiguous"]


def keep_commits_contiguous(app: faust.App, topics: Collection[str]) -> None:
    """For ``topics`` (read in order, without holes in their offsets) commit exactly the
    acknowledged prefix. Call once, after the app is built."""
    in_order = frozenset(topics)
    consumer: Any = app.consumer
    add_gap = consumer._add_gap
    new_offset = consumer._new_offset

    async def _add_gap(tp: Any, offset_from: int, offset_to: int) -> None:
        if tp.topic not in in_order:
            await add_gap(tp, offset_from, offset_to)

    def _new_offset(tp: Any) -> int | None:
        if tp.topic in in_order:
            acked = consumer._acked[tp]
            committed = consumer._committed_offset[tp]
            if acked:
                acked[:] = sorted({o for o in acked if committed is None or o >= committed})
        result: int | None = new_offset(tp)
        return result

    consumer._add_gap = _add_gap
    consumer._new_offset = _new_offset
