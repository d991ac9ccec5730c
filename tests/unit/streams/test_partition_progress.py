"""PartitionProgress: batches that jump past an offset are refused and the partition re-read;
an idle agent with messages waiting beyond what it processed re-reads them."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from faust.types import TP

from streams.partition_progress import Backlog, PartitionProgress

TOPIC = "prsm.usage"
A, B = TP(TOPIC, 0), TP(TOPIC, 1)


class FakeConsumer:
    def __init__(self, committed: dict[TP, int], first: dict[TP, int] | None = None,
                 end: dict[TP, int] | None = None) -> None:
        self._committed_offset = committed
        self.first = first or {}
        self.end = end or {}
        self.seeks: list[tuple[TP, int]] = []

    def assignment(self) -> set[TP]:
        return {A, B, TP("other", 0)}

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        return {tp: self.first.get(tp, 0) for tp in tps}

    async def highwaters(self, *tps: TP) -> dict[TP, int]:
        return {tp: self.end.get(tp, 0) for tp in tps}

    async def seek_wait(self, positions: dict[TP, int]) -> None:
        self.seeks.extend(positions.items())


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def progress(consumer: FakeConsumer, idle: bool = True, monkeypatch: Any = None,
             clock: Clock | None = None) -> tuple[PartitionProgress, Any]:
    app = SimpleNamespace(consumer=consumer, consumer_generation_id=1)
    if monkeypatch is not None and clock is not None:
        monkeypatch.setattr("streams.partition_progress.time.monotonic", clock)
    return PartitionProgress(app, TOPIC, lambda: idle), app  # type: ignore[arg-type]


def ev(tp: TP, offset: int, generation: int = 1) -> Any:
    return SimpleNamespace(message=SimpleNamespace(tp=tp, offset=offset,
                                                   generation_id=generation))


async def accept(p: PartitionProgress, batch: list[Any]) -> bool:
    batch = p.current(batch)
    ok = await p.in_order(batch)
    if ok:
        p.done(batch, p.take(batch))
    return ok


async def test_in_order_batches_pass_and_a_jump_is_sent_back_to_the_missing_offset():
    consumer = FakeConsumer({A: 10})
    p, _ = progress(consumer)
    assert await accept(p, [ev(A, 10), ev(A, 11), ev(B, 0)])
    assert await accept(p, [ev(A, 12), ev(B, 1)])
    assert not await accept(p, [ev(A, 15)])  # 13..14 never reached the agent
    assert not await accept(p, [ev(A, 16)])  # fetched before the seek: no second seek
    assert consumer.seeks == [(A, 13)]
    assert p.rewinds == 1
    assert await accept(p, [ev(A, 13), ev(A, 14), ev(A, 15)])


async def test_a_never_committed_partition_starts_at_its_first_offset():
    consumer = FakeConsumer({}, first={A: 4})
    p, _ = progress(consumer)
    assert not await accept(p, [ev(A, 9)])  # 4..8 skipped
    assert consumer.seeks == [(A, 4)]
    assert await accept(p, [ev(A, 4)])


async def test_offsets_deleted_by_retention_are_not_waited_for():
    consumer = FakeConsumer({A: 10}, first={A: 50})
    p, _ = progress(consumer)
    assert await accept(p, [ev(A, 50), ev(A, 51)])
    assert consumer.seeks == []
    assert p.next[A] == 52


async def test_re_deliveries_below_the_next_offset_pass_and_gaps_inside_a_batch_count():
    p, _ = progress(FakeConsumer({A: 5}))
    assert await accept(p, [ev(A, 3), ev(A, 4), ev(A, 5), ev(A, 6)])
    assert not await accept(p, [ev(A, 7), ev(A, 9)])


async def test_a_new_consumer_generation_starts_from_the_committed_offsets_again():
    consumer = FakeConsumer({A: 10})
    p, app = progress(consumer)
    assert await accept(p, [ev(A, 10), ev(A, 11)])
    app.consumer_generation_id = 2
    consumer._committed_offset[A] = 11
    assert p.current([ev(A, 12, generation=1)]) == []  # fetched before the rebalance
    assert await accept(p, [ev(A, 11, generation=2)])
    assert not await accept(p, [ev(A, 13, generation=2)])


async def test_an_idle_agent_re_reads_messages_waiting_beyond_what_it_processed(monkeypatch):
    clock = Clock()
    consumer = FakeConsumer({A: 10, B: 0}, end={A: 12, B: 3})
    p, _ = progress(consumer, monkeypatch=monkeypatch, clock=clock)
    assert await accept(p, [ev(A, 10), ev(A, 11)])  # A is done; B never arrived
    assert not await p.check()  # not quiet long enough yet
    clock.now += 6
    assert await p.check()
    assert consumer.seeks == [(B, 0)]
    assert not await p.check()  # just re-read: wait another quiet spell
    clock.now += 6
    consumer.seeks.clear()
    assert await p.check()  # still nothing processed of B: read again
    assert consumer.seeks == [(B, 0)]


async def test_a_skipped_tail_is_re_read_even_when_the_last_message_was_delivered(monkeypatch):
    """The case that hid stalls before: the agent got the partition's last message, earlier
    ones never arrived; noting 'seen up to the end' made it look done."""
    clock = Clock()
    consumer = FakeConsumer({A: 0}, end={A: 100})
    p, _ = progress(consumer, monkeypatch=monkeypatch, clock=clock)
    assert await accept(p, [ev(A, 0)])
    assert not await accept(p, [ev(A, 99)])
    consumer.seeks.clear()
    clock.now += 6
    assert await p.check()
    assert consumer.seeks == [(A, 1)]


async def test_a_busy_agent_is_never_sought(monkeypatch):
    clock = Clock()
    consumer = FakeConsumer({A: 0, B: 0}, end={A: 5, B: 5})
    p, _ = progress(consumer, idle=False, monkeypatch=monkeypatch, clock=clock)
    clock.now += 60
    assert not await p.check()
    assert consumer.seeks == []


async def test_a_rebalance_while_asking_the_broker_drops_the_batch():
    consumer = FakeConsumer({}, first={A: 0})
    p, app = progress(consumer)
    batch = p.current([ev(A, 5)])

    async def rebalancing(*tps: TP) -> dict[TP, int]:
        app.consumer_generation_id = 2
        return {tp: 0 for tp in tps}

    consumer.earliest_offsets = rebalancing  # type: ignore[method-assign]
    assert not await p.in_order(batch)
    assert consumer.seeks == []  # nothing sought for a generation that is gone


async def test_backlog_counts_what_is_left_to_process_on_this_topic():
    consumer = FakeConsumer({A: 10}, first={B: 3}, end={A: 15, B: 3, TP("other", 0): 99})
    p, _ = progress(consumer)
    # A 10..14; B never committed, empty
    assert await p.backlog() == Backlog(5, 18, 2, {A: 15, B: 3}, {A: 10, B: 3})
    assert await accept(p, [ev(A, 10), ev(A, 11)])
    assert (await p.backlog()).waiting == 3
    consumer.end[B] = 5
    assert await accept(p, [ev(A, 12), ev(A, 13), ev(A, 14)])
    # B 3..4 arrived meanwhile
    assert await p.backlog() == Backlog(2, 20, 2, {A: 15, B: 5}, {A: 15, B: 3})


async def test_a_partition_with_waiting_messages_and_no_progress_is_a_stall(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("streams.partition_progress.time.monotonic", lambda: clock[0])
    consumer = FakeConsumer({A: 10}, first={B: 3}, end={A: 15, B: 3})
    p, _ = progress(consumer)
    assert await p.stalls(after_s=60) == []  # first sight starts the clock
    clock[0] = 170.0
    [stall] = await p.stalls(after_s=60)  # B has nothing waiting: never stalled
    assert (stall.partition, stall.next_offset, stall.end_offset, stall.for_s) == (
        A.partition, 10, 15, 70.0)
    assert await accept(p, [ev(A, 10)])  # progress restarts the clock
    assert await p.stalls(after_s=60) == []


class Log:
    """A partition's record offsets as the broker holds them (others: control records)."""

    def __init__(self, records: set[int]) -> None:
        self.records = records
        self.asked: list[tuple[int, int]] = []

    async def __call__(self, tp: TP, start: int, end: int) -> int | None:
        self.asked.append((start, end))
        return min((o for o in self.records if start <= o < end), default=None)


def with_probe(consumer: FakeConsumer, log: Log, **kw: Any) -> tuple[PartitionProgress, Any]:
    p, app = progress(consumer, **kw)
    p.probe = log
    return p, app


async def test_transaction_markers_are_holes_not_gaps():
    # a transactional producer: records 0..4, marker 5, records 6..9, marker 10, 11..12
    log = Log({0, 1, 2, 3, 4, 6, 7, 8, 9, 11, 12})
    consumer = FakeConsumer({A: 0})
    p, _ = with_probe(consumer, log)
    assert await accept(p, [ev(A, o) for o in (0, 1, 2, 3, 4, 6, 7)])
    assert await accept(p, [ev(A, o) for o in (8, 9, 11, 12)])
    assert consumer.seeks == [] and p.rewinds == 0
    assert log.asked == [(5, 6), (10, 11)]
    assert p.position(A) == 13


async def test_a_real_gap_is_still_re_read_when_the_probe_finds_records():
    log = Log(set(range(20)))
    consumer = FakeConsumer({A: 0})
    p, _ = with_probe(consumer, log)
    assert not await accept(p, [ev(A, 0), ev(A, 3)])  # 1..2 exist and never arrived
    assert consumer.seeks == [(A, 1)]


async def test_a_trailing_marker_is_neither_waiting_nor_a_stall(monkeypatch):
    clock = Clock()
    log = Log({0, 1, 2})  # marker at 3, end offset 4
    consumer = FakeConsumer({A: 0}, end={A: 4})
    p, _ = with_probe(consumer, log, monkeypatch=monkeypatch, clock=clock)
    assert await accept(p, [ev(A, 0), ev(A, 1), ev(A, 2)])
    assert await p.stalls(after_s=60) == []
    clock.now += 61
    assert await p.stalls(after_s=60) == []  # probed: only the marker is left
    assert p.position(A) == 4
    assert (await p.backlog()).waiting == 0
    assert not await p.check() and consumer.seeks == []


async def test_an_idle_agent_moves_past_a_trailing_marker_instead_of_re_reading(monkeypatch):
    clock = Clock()
    log = Log({0, 1, 2})
    consumer = FakeConsumer({A: 0}, end={A: 4})
    p, _ = with_probe(consumer, log, monkeypatch=monkeypatch, clock=clock)
    assert await accept(p, [ev(A, 0), ev(A, 1), ev(A, 2)])
    clock.now += 10
    assert not await p.check()
    assert consumer.seeks == [] and p.rereads == 0 and p.position(A) == 4
