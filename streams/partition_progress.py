"""What an agent has processed of each partition, with no gaps; re-read what never arrived.

faust-streaming (seen with 0.11 and 0.15) does not always hand an agent every message of a
partition around a worker restart or rebalance: a later message may arrive while earlier
ones were fetched and never delivered, or the fetch position moves to the end and nothing
re-reads what was skipped. Both would lose events (an unprocessed message whose successor
was acknowledged is committed past) or leave requests undecided.

``PartitionProgress`` keeps, per partition of one topic and per consumer generation, the next
offset the agent must process (at first the committed offset, or the partition's first offset
when it was never committed). Two rules hold it:

- a batch that would jump past that offset is refused (not acknowledged) and the partition is
  sought back to the missing offset, so messages are processed in order;
- when the agent has been idle a while and the partition's end offset is beyond it, the
  partition is sought back to it (the messages were skipped, not merely late).

Processing must be idempotent (it is: re-delivered usage counts once, a re-delivered request
is answered ``already_decided``), so a needless re-read costs time, never correctness.

Offsets are not always contiguous: a producer using transactions (Kafka Streams, Flink, any
exactly-once client) leaves a control record after each transaction, an offset no consumer is
ever handed. Before treating a jump as a gap, or messages beyond the next offset as waiting,
``probe`` asks the broker (a consumer of its own) whether any record lies in between; if none
does, those offsets are a *hole* and the partition moves past them
(docs/decisions/2026-12-03-commits-and-holes.md). Offsets removed by retention before they
were processed are skipped with a warning.

``position`` is what the worker commits for a partition: the offset after the last message
whose batch was delivered (``done``). An agent that works on the next batch while the broker
takes the records of the one before (``take``, then ``done``) checks each batch against the
offsets taken; if a batch's records fail, ``undelivered`` seeks every partition back to what
was delivered, and the batches taken after it are not marked done (they come again). Faust's
own commit bookkeeping cannot see holes (``streams/faust_compat``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

import faust
from faust.types import TP

from prsm_events.operations.health import Stall
from streams.batching import Delivered
from streams.faust_compat import committed_offset, seek

__all__ = ["Backlog", "PartitionProgress", "RecordProbe"]

RecordProbe = Callable[[TP, int, int], Awaitable[int | None]]
"""``probe(tp, start, end)``: the offset of the first record in ``[start, end)`` as the agent's
consumer reads it, None when there is none (only control records, a hole)."""

log = logging.getLogger("prsm.progress")


@dataclass(frozen=True)
class Backlog:
    waiting: int
    """Messages written and not yet processed."""
    written: int
    """Sum of the partitions' end offsets (the change between two looks: what arrived)."""
    partitions: int
    ends: Mapping[TP, int] = field(default_factory=dict)
    """Each partition's end offset at the look."""
    positions: Mapping[TP, int] = field(default_factory=dict)
    """Each partition's next offset to process at the look (after the ends were read)."""


class PartitionProgress:
    def __init__(self, app: faust.App, topic: str, idle: Callable[[], bool],
                 quiet_s: float = 5.0, reseek_s: float = 5.0,
                 probe: RecordProbe | None = None) -> None:
        self.app = app
        self.topic = topic
        self.idle = idle
        self.probe = probe
        self.holes: dict[TP, dict[int, int]] = {}
        """Partition -> {first offset of a hole: the record offset after it}, as probed."""
        self.quiet_s = quiet_s
        self.reseek_s = reseek_s
        self.generation: int | None = None
        self.next: dict[TP, int] = {}
        """Partition -> next offset to process (this consumer generation): after the last
        message taken for work."""
        self.delivered: dict[TP, int] = {}
        """Partition -> after the last message whose batch's records the broker has (what is
        committed); behind ``next`` while a batch is in flight."""
        self.epoch = 0
        """Times the partitions were sought back to what was delivered (``undelivered``): a
        batch taken in an earlier epoch is not marked done."""
        self.moved: dict[TP, float] = {}
        """Partition -> when the agent last processed something of it (or it was re-read)."""
        self.sought: dict[TP, tuple[int, float]] = {}
        """Partition -> (offset sought back to, when): one seek per gap, not one per batch."""
        self.progressed: dict[TP, float] = {}
        """Partition -> when it last moved forward, or was seen with nothing waiting."""
        self.rewinds = 0
        """Batches refused because they jumped past an offset."""
        self.rereads = 0
        """Times an idle agent's partitions were re-read because messages waited."""

    def _sync_generation(self) -> None:
        generation = self.app.consumer_generation_id
        if generation != self.generation:
            self.generation = generation
            self.next.clear()
            self.delivered.clear()
            self.sought.clear()

    def current(self, events: Sequence[Delivered]) -> list[Delivered]:
        """The events of the current consumer generation (the others were fetched before a
        rebalance; Faust delivers them again, or the idle check re-reads them)."""
        self._sync_generation()
        return [e for e in events if e.message.generation_id == self.generation]

    async def _start(self, tps: set[TP]) -> None:
        """Learn where unknown partitions start: the committed offset, else the first one."""
        unknown = {tp for tp in tps if tp not in self.next}
        if not unknown:
            return
        committed = {tp: committed_offset(self.app, tp) for tp in unknown}
        fresh = [tp for tp in unknown if committed[tp] is None]
        firsts = await self.app.consumer.earliest_offsets(*fresh) if fresh else {}
        for tp in unknown:
            start = committed[tp]
            self.next.setdefault(tp, int(start if start is not None else firsts.get(tp, 0)))
            self.delivered.setdefault(tp, self.next[tp])

    async def in_order(self, events: Sequence[Delivered]) -> bool:
        """True if ``events`` continue each partition without a gap; otherwise the partitions
        are sought back to their first missing offset and the batch must be dropped."""
        generation = self.generation
        await self._start({e.message.tp for e in events})
        if self.app.consumer_generation_id != generation:
            return False  # rebalanced while asking the broker
        for _ in range(len(events) + 1):  # each round explains at least one jump, or stops
            gaps = self._gaps(events)
            if not gaps:
                return True
            explained = await self._explain(gaps)
            if self.app.consumer_generation_id != generation:
                return False
            if not explained:
                break
        await self._rewind({tp: missing for tp, (missing, _) in self._gaps(events).items()})
        return False

    async def _explain(self, gaps: dict[TP, tuple[int, int]]) -> bool:
        """Move past jumps that are no gap: offsets deleted by retention, or holes (no record
        between the missing offset and the one that arrived). True if any was explained."""
        explained = False
        firsts = await self.app.consumer.earliest_offsets(*gaps)
        for tp, (missing, arrived) in gaps.items():
            if firsts.get(tp, 0) > missing:  # deleted by retention: nothing to wait for
                log.warning("%s[%d] offsets %d..%d were deleted before being processed",
                            tp.topic, tp.partition, missing, firsts[tp] - 1)
                self._skip(tp, firsts[tp])
                explained = True
            elif self.probe is not None and await self.probe(tp, missing, arrived) is None:
                self.holes.setdefault(tp, {})[missing] = arrived
                explained = True
        return explained

    def _gaps(self, events: Sequence[Delivered]) -> dict[TP, tuple[int, int]]:
        """Partition -> (first missing offset, the offset that arrived instead)."""
        found: dict[TP, tuple[int, int]] = {}
        want = dict(self.next)
        for event in events:
            m = event.message
            if m.tp in found:
                continue
            if m.offset > want[m.tp] and self.holes.get(m.tp, {}).get(want[m.tp]) != m.offset:
                found[m.tp] = (want[m.tp], m.offset)
            else:
                want[m.tp] = max(want[m.tp], m.offset + 1)
        return found

    async def _only_holes(self, tp: TP, start: int, end: int) -> bool:
        """True if ``[start, end)`` holds no record (probed); the partition then moves past."""
        if self.probe is None or await self.probe(tp, start, end) is not None:
            return False
        if self.next.get(tp) == start:
            self._skip(tp, end)
        return True

    def _skip(self, tp: TP, to: int) -> None:
        """Move past offsets with no record to process (deleted, or a hole); what was
        delivered moves too unless a batch is in flight (its ``done`` moves it)."""
        if self.delivered.get(tp) == self.next[tp]:
            self.delivered[tp] = max(self.delivered[tp], to)
        self.next[tp] = max(self.next[tp], to)

    def position(self, tp: TP) -> int | None:
        """The offset to commit for ``tp``: after what was delivered, once known (this
        consumer generation)."""
        if self.app.consumer_generation_id != self.generation:
            return None
        return self.delivered.get(tp)

    async def _rewind(self, gaps: dict[TP, int]) -> None:
        now = time.monotonic()
        fresh = {tp: o for tp, o in gaps.items()
                 if self.sought.get(tp, (-1, 0.0))[0] != o
                 or now - self.sought[tp][1] > self.reseek_s}
        if not fresh:
            return  # fetched before the seek: refused again, the seek is under way
        self.rewinds += 1
        log.warning("messages arrived out of order (%s); re-reading from the first missing one",
                    ", ".join(f"{tp.topic}[{tp.partition}] missing {o}" for tp, o in fresh.items()))
        await self._seek_back(fresh, now)

    async def _seek_back(self, offsets: dict[TP, int], now: float) -> None:
        """Seek to ``offsets``, noting each (one seek per offset, not one per batch)."""
        for tp, offset in offsets.items():
            self.sought[tp] = (offset, now)
        await seek(self.app, offsets)

    def take(self, events: Sequence[Delivered]) -> int:
        """The batch was taken for work (its records handed to the producer): the next batch
        continues after its last offsets. Returns the epoch to pass to ``done``."""
        if self.app.consumer_generation_id != self.generation:
            return self.epoch
        now = time.monotonic()
        for event in events:
            m = event.message
            self.next[m.tp] = max(self.next.get(m.tp, 0), m.offset + 1)
            self.moved[m.tp] = now
            self.progressed[m.tp] = now
        for tp, holes in self.holes.items():  # forget holes behind what was processed
            for start in [s for s, after in holes.items() if after < self.next.get(tp, 0)]:
                del holes[start]
        return self.epoch

    def done(self, events: Sequence[Delivered], epoch: int) -> bool:
        """The batch's records reached the broker: its offsets may be committed. ``epoch``:
        what ``take`` returned (a batch taken before ``undelivered`` or a rebalance is not
        done: it comes again, and False is returned)."""
        if self.app.consumer_generation_id != self.generation or epoch != self.epoch:
            return False
        for event in events:
            m = event.message
            self.delivered[m.tp] = max(self.delivered.get(m.tp, 0), m.offset + 1)
        return True

    async def undelivered(self) -> None:
        """A batch's records did not reach the broker: seek every partition back to what was
        delivered (batches taken since then are not marked done; all come again)."""
        self.epoch += 1
        back = {tp: self.delivered[tp] for tp, taken in self.next.items()
                if self.delivered.get(tp, taken) < taken}
        if not back:
            return
        self.next.update(back)
        log.warning("records of a batch were not delivered; re-reading from %s",
                    ", ".join(f"{tp.topic}[{tp.partition}] {o}" for tp, o in back.items()))
        await self._seek_back(back, time.monotonic())

    async def backlog(self) -> Backlog:
        """What is left to process on this topic's assigned partitions, as the broker reports
        it now (end offset minus the next offset to process, summed)."""
        self._sync_generation()
        tps = {tp for tp in self.app.consumer.assignment() if tp.topic == self.topic}
        if not tps:
            return Backlog(0, 0, 0)
        await self._start(tps)
        ends = await self.app.consumer.highwaters(*tps)
        positions = {tp: self.next.get(tp, 0) for tp in tps}  # read after the ends
        return Backlog(sum(max(0, ends.get(tp, 0) - positions[tp]) for tp in tps),
                       sum(ends.get(tp, 0) for tp in tps), len(tps),
                       {tp: ends.get(tp, 0) for tp in tps}, positions)

    async def stalls(self, after_s: float) -> list[Stall]:
        """Assigned partitions whose end offset is beyond the next offset to process and
        that have not moved forward for ``after_s`` seconds."""
        self._sync_generation()
        tps = {tp for tp in self.app.consumer.assignment() if tp.topic == self.topic}
        if not tps:
            return []
        generation = self.generation
        await self._start(tps)
        ends = await self.app.consumer.highwaters(*tps)
        if self.app.consumer_generation_id != generation:
            return []
        now = time.monotonic()
        out = []
        for tp in sorted(tps):
            waiting = ends.get(tp, 0) - self.next[tp]
            since = self.progressed.setdefault(tp, now)
            if waiting <= 0:
                self.progressed[tp] = now
            elif now - since >= after_s:
                if await self._only_holes(tp, self.next[tp], ends[tp]):
                    self.progressed[tp] = now  # a trailing control record: nothing waits
                    continue
                out.append(Stall(tp.topic, tp.partition, self.next[tp], ends[tp], now - since))
        return out

    async def check(self) -> bool:
        """If the agent is idle and a partition it has not moved on for ``quiet_s`` holds
        messages beyond its next offset, seek it back there; True if it did."""
        self._sync_generation()
        now = time.monotonic()
        quiet = []
        for tp in self.app.consumer.assignment():
            if tp.topic == self.topic and now - self.moved.setdefault(tp, now) >= self.quiet_s:
                quiet.append(tp)
        if not quiet or not self.idle():
            return False
        generation = self.generation
        await self._start(set(quiet))
        ends = await self.app.consumer.highwaters(*quiet)
        if self.app.consumer_generation_id != generation or not self.idle():
            return False  # rebalanced, or work arrived, while asking the broker
        stalled = [(tp, self.next[tp], ends[tp]) for tp in quiet
                   if ends.get(tp, 0) > self.next[tp]]
        for tp in quiet:  # checked: look again after another quiet spell
            self.moved[tp] = now
        stalled = [(tp, n, e) for tp, n, e in stalled if not await self._only_holes(tp, n, e)]
        if self.app.consumer_generation_id != generation:
            return False
        if not stalled:
            return False
        self.rereads += 1
        log.warning("messages never reached the agent (%s); re-reading them",
                    ", ".join(f"{tp.topic}[{tp.partition}] from {n}, {e - n} waiting"
                              for tp, n, e in stalled))
        await self._seek_back({tp: offset for tp, offset, _ in stalled}, now)
        return True
