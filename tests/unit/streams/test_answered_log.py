"""Decisions carry their reservations: the header, the offsets recorded once a batch is done,
and a worker taking partitions over holding what its predecessor answered for."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiokafka.structs import RecordMetadata, TopicPartition

from prsm_events.accounting.catalog import load_catalog
from prsm_events.accounting.ledger import Reservation
from prsm_events.kafka.partitioning import owner_partition
from prsm_events.settings import Settings
from streams.answered_log import (
    answered_ends,
    answered_key,
    read_reservation,
    reservation_header,
)
from streams.control import ANSWERED_EVERY_S, SpendControl
from streams.record_batches import RecordBatches
from tests.unit.streams.fake_producer import FakeProducer, app_with

TTL = 120.0


def tenant_on(partition: int) -> str:
    return next(t for t in (f"t{i}" for i in range(100)) if owner_partition(t, 4) == partition)


def row(amount: int, expires_at: float, settled: bool = False) -> list[Any]:
    return Reservation(amount, ["day"], expires_at, settled, ["allow"]).to_list()


def test_the_header_carries_a_key_and_a_row_and_nothing_else_passes() -> None:
    name, value = reservation_header("acme|r1", row(5, 10.0))
    assert read_reservation([("other", b"1"), (name, value)]) == ("acme|r1", row(5, 10.0))
    assert read_reservation(None) is None
    assert read_reservation([("other", b"1")]) is None
    for bad in (b"{", b'["acme|r1"]', b'[1, [1, [], 0, false, []]]', b'["norequest", [1]]',
                b'["acme|r1", [1, ["day"], 0.0, false]]'):
        with pytest.raises(ValueError):
            read_reservation([(name, bad)])


def test_decisions_carry_their_headers_to_the_producer() -> None:
    async def run() -> FakeProducer:
        producer = FakeProducer()
        answers = RecordBatches(producer)  # type: ignore[arg-type]
        answers.add_keyed("decisions", b"acme", b"{}", (reservation_header("acme|r1",
                                                                           row(5, 10.0)),))
        answers.add_keyed("decisions", b"zeta", b"{}")
        await answers.send()
        return producer

    producer = asyncio.run(run())
    assert producer.headers[b"acme"] == [reservation_header("acme|r1", row(5, 10.0))]
    assert producer.headers[b"zeta"] == []


def test_the_end_of_each_partition_counts_every_record_of_a_batch() -> None:
    loop = asyncio.new_event_loop()

    def done(partition: int, base: int) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = loop.create_future()
        future.set_result(RecordMetadata("decisions", partition,
                                         TopicPartition("decisions", partition), base, -1, 0,
                                         0))
        return future

    first, second, other = done(0, 10), done(0, 13), done(2, 7)
    try:
        # three records in the batch at 10, one at 13 (after it), two at 7 of partition 2
        assert answered_ends([first, first, other, first, second, other]) == {0: 14, 2: 9}
    finally:
        loop.close()


class FakeLog:
    """The decisions topic as a worker taking over reads it: the rows it returns, and what
    it was asked."""

    def __init__(self, rows: list[tuple[str, list[Any]]]) -> None:
        self.rows = rows
        self.asked: list[tuple[dict[int, int | None], int]] = []
        self.during: Any = None

    async def read(self, starts: dict[int, int | None], since_ms: int
                   ) -> list[tuple[str, list[Any]]]:
        self.asked.append((dict(starts), since_ms))
        if self.during is not None:
            self.during()
        return self.rows


def control_owning(partitions: set[int], log: FakeLog) -> SpendControl:
    settings = Settings(partitions=4, reservation_ttl_s=TTL)
    app = app_with(FakeProducer(), "answered-log-test")
    control = SpendControl(app, settings, load_catalog(None))
    owned = [frozenset(partitions)]
    control.owned_partitions = lambda: owned[0]  # type: ignore[method-assign]
    control.answered_log = log  # type: ignore[assignment]
    return control


def test_a_worker_taking_partitions_over_holds_what_was_answered_and_is_missing() -> None:
    now = time.time()
    a, b, c = tenant_on(1), tenant_on(2), tenant_on(3)
    log = FakeLog([
        (f"{a}|gone", row(7, now + 30)),            # answered, its changelog record lost
        (f"{a}|known", row(9, now + 30)),           # the restored ledger has it (settled)
        (f"{a}|late", row(1, now + 30)),
        (f"{a}|late", row(3, now + 40)),            # a later answer's row is the later truth
        (f"{b}|expired", row(5, now - 1)),
        (f"{b}|forged", row(5, now + 10 * TTL)),    # outlives any reservation made now
        (f"{b}|broken", [1, "x"]),                  # not a row: logged, skipped
        (f"{c}|notours", row(11, now + 30)),        # partition 3 is not taken over
    ])
    control = control_owning({1, 2}, log)
    control.ledger.reservations[f"{a}|known"] = row(9, now + 30, settled=True)
    control.ledger.states[answered_key(1)] = [42]  # recorded by the previous owner

    asyncio.run(control.restore_answered())

    assert log.asked == [({1: 42, 2: None}, pytest.approx(
        int((now - TTL - 60) * 1000), abs=5_000))]
    held = control.ledger.reservations
    assert held[f"{a}|gone"] == row(7, now + 30)
    assert held[f"{a}|late"] == row(3, now + 40)
    assert held[f"{a}|known"] == row(9, now + 30, settled=True)  # untouched
    assert {f"{b}|expired", f"{b}|forged", f"{b}|broken", f"{c}|notours"}.isdisjoint(held)
    assert control.ledger.reserved("day") == 7 + 3  # settled rows hold nothing
    assert control.stats.restored == 2
    assert set(control.ledger.dirty_reservations) == {f"{a}|gone", f"{a}|late"}
    assert control.unread == set()

    asyncio.run(control.restore_answered())  # read once per taking over
    assert len(log.asked) == 1


def test_a_rebalance_while_reading_back_holds_nothing_and_reads_again() -> None:
    now = time.time()
    a = tenant_on(1)
    log = FakeLog([(f"{a}|r", row(7, now + 30))])
    control = control_owning({1}, log)
    log.during = lambda: setattr(control.app, "consumer_generation_id", 5)

    asyncio.run(control.restore_answered())
    assert control.unread == {1}
    assert f"{a}|r" not in control.ledger.reservations

    log.during = None
    asyncio.run(control.restore_answered())
    assert control.unread == set()
    assert control.ledger.reservations[f"{a}|r"] == row(7, now + 30)


def test_the_recorded_offset_only_moves_forward_and_only_for_partitions_owned() -> None:
    control = control_owning({1, 2}, FakeLog([]))
    control.sync_generation()
    control.note_answered({1: 10, 2: 4, 3: 99}, now=100.0)
    control.note_answered({1: 8}, now=100.0 + ANSWERED_EVERY_S)
    assert control.ledger.states[answered_key(1)] == [10]
    assert control.ledger.states[answered_key(2)] == [4]
    assert answered_key(3) not in control.ledger.states
    assert control.ledger.dirty_states == {answered_key(1): 1, answered_key(2): 2}


def test_the_recorded_offset_is_written_at_most_every_half_second_and_then_the_latest() -> None:
    control = control_owning({1}, FakeLog([]))
    control.sync_generation()
    control.note_answered({1: 10}, now=100.0)
    control.ledger.take_dirty()  # written with a flush
    control.note_answered({1: 12}, now=100.1)  # kept, not yet written again
    assert control.ledger.states[answered_key(1)] == [12]
    assert control.ledger.dirty_states == {}
    control.note_answered({1: 15}, now=100.0 + ANSWERED_EVERY_S)
    assert control.ledger.states[answered_key(1)] == [15]
    assert control.ledger.dirty_states == {answered_key(1): 1}
