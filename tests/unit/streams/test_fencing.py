"""Fencing: a batch's decisions reach the producer only once its reservations are with the
broker, and never once a rebalance has begun since the batch was taken."""

from __future__ import annotations

import asyncio

import pytest

from streams.fencing import Fenced, answer_once_reserved
from streams.record_batches import RecordBatches
from tests.unit.streams.fake_producer import FakeProducer


def decisions(producer: FakeProducer) -> RecordBatches:
    answers = RecordBatches(producer)  # type: ignore[arg-type]
    answers.add_keyed("decisions", b"acme", b'{"action":"allow"}')
    answers.add_keyed("decisions", b"zeta", b'{"action":"reject"}')
    return answers


def test_decisions_wait_for_their_reservations() -> None:
    async def run() -> tuple[list[object], list[object]]:
        producer = FakeProducer()
        reserved: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        sending = asyncio.ensure_future(
            answer_once_reserved([reserved], decisions(producer), lambda: True))
        await asyncio.sleep(0.01)
        before = list(producer.sent)  # the changelog records are not with the broker yet
        reserved.set_result(None)
        await asyncio.gather(*await sending)
        return before, list(producer.sent)

    before, after = asyncio.run(run())
    assert before == []
    assert sorted(key for _, key, _, _ in after) == [b"acme", b"zeta"]


def test_no_decision_once_a_rebalance_began() -> None:
    """The reservations landed, but a revocation began meanwhile: the new owner may already
    be restoring, so the decisions are withheld (their requests come again to it)."""
    async def run() -> list[object]:
        producer = FakeProducer()
        reserved: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        current = [True]
        sending = asyncio.ensure_future(
            answer_once_reserved([reserved], decisions(producer), lambda: current[0]))
        await asyncio.sleep(0.01)
        current[0] = False  # the revocation begins
        reserved.set_result(None)
        with pytest.raises(Fenced, match="2 decisions withheld"):
            await sending
        return producer.sent

    assert asyncio.run(run()) == []


def test_no_decision_when_a_reservation_was_not_delivered() -> None:
    async def run() -> list[object]:
        producer = FakeProducer()
        reserved: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        reserved.set_exception(RuntimeError("not delivered"))
        with pytest.raises(RuntimeError, match="not delivered"):
            await answer_once_reserved([reserved], decisions(producer), lambda: True)
        return producer.sent

    assert asyncio.run(run()) == []
