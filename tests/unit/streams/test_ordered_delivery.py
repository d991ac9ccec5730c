"""A pipelined agent (OrderedDelivery.agent) takes its next batch while the broker
takes the records of the one before, yet commits only what was delivered, in order; when a
batch's records fail, every partition is read again from what was delivered."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP

from streams.ordered_delivery import Batch, OrderedDelivery

TOPIC = "prsm.requests"
A, B = TP(TOPIC, 0), TP(TOPIC, 1)


class FakeConsumer:
    def __init__(self, committed: dict[TP, int]) -> None:
        self._committed_offset = committed
        self.seeks: list[tuple[TP, int]] = []

    def assignment(self) -> set[TP]:
        return {A, B}

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        return dict.fromkeys(tps, 0)

    async def seek_wait(self, positions: dict[TP, int]) -> None:
        self.seeks.extend(positions.items())


class Rig:
    """An OrderedDelivery on fakes of the app, the feeds and the control; ``hand`` records
    each batch's offsets and returns a future the test resolves (the broker's answer)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, in_flight: int = 1) -> None:
        monkeypatch.setattr("streams.ordered_delivery.divert_messages", lambda *a: None)
        monkeypatch.setattr("streams.ordered_delivery.divert_records", lambda *a: None)
        monkeypatch.setattr("streams.ordered_delivery.RETRY_AFTER_S", 0.0)
        self.consumer = FakeConsumer({A: 10, B: 0})
        agents: list[Any] = []
        self.app = SimpleNamespace(
            consumer=self.consumer, consumer_generation_id=1, monitor=None,
            agent=lambda topic, name: lambda fn: agents.append(fn) or fn)
        feeds = SimpleNamespace(until_ready=self._ready)
        self.unread: set[int] = set()
        control = SimpleNamespace(sync_generation=lambda: None, announce=self._announce,
                                  trackers=[], restore_answered=self._restore,
                                  unread=self.unread)
        topic = SimpleNamespace(get_topic_name=lambda: TOPIC)
        self.delivery = OrderedDelivery(self.app, topic, feeds, control,  # type: ignore[arg-type]
                                        None, ready_poll_s=0.01, buffer_high=100)
        self.announce_fails = 0
        self.handed: list[list[tuple[int, int]]] = []
        self.answers: list[asyncio.Future[None]] = []
        self.acked: list[int] = []
        self.done: list[list[tuple[int, int]]] = []
        self.delivery.agent("decide", self._hand, size=100, within_s=0.0,
                            answer_when_idle=True, on_acked=self.acked.append,
                            in_flight=in_flight)
        self.run = agents[0]

    async def _ready(self, poll_s: float) -> None:
        return None

    async def _restore(self) -> None:
        return None

    async def _announce(self, now: float) -> None:
        if self.announce_fails:
            self.announce_fails -= 1
            raise OSError("alerts topic gone")

    async def _hand(self, batch: Batch) -> asyncio.Future[None]:
        handed = [(e.message.partition, e.message.offset) for e in batch.events]
        self.handed.append(handed)
        batch.on_done = lambda: self.done.append(handed)
        answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.answers.append(answer)
        return answer

    def send(self, tp: TP, *offsets: int) -> None:
        for offset in offsets:
            self.delivery.buffer.receive(SimpleNamespace(  # type: ignore[arg-type]
                tp=tp, topic=tp.topic, partition=tp.partition, offset=offset, value=b"{}",
                generation_id=1))

    async def fetched(self, *batches: tuple[Any, ...]) -> None:
        """Each (partition, offsets...) reaches the agent's buffer, and the agent runs."""
        for tp, *offsets in batches:
            self.send(tp, *offsets)
        await settle()

    def committed(self) -> tuple[int | None, int | None]:
        return self.delivery.progress.position(A), self.delivery.progress.position(B)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_the_next_batch_is_decided_while_the_one_before_is_delivered(
        monkeypatch: pytest.MonkeyPatch) -> None:
    rig = Rig(monkeypatch)
    agent = asyncio.ensure_future(rig.run(None))
    await rig.fetched((A, 10, 11))
    await rig.fetched((B, 0))
    # the second batch was handed while the first one's records are still on their way
    assert rig.handed == [[(0, 10), (0, 11)], [(1, 0)]]
    assert rig.committed() == (10, 0)
    await rig.fetched((A, 12))
    assert len(rig.handed) == 2  # at most in_flight (1) batches beside the one being taken
    rig.answers[1].set_result(None)  # the second is delivered first: nothing moves yet
    await settle()
    assert rig.committed() == (10, 0)
    rig.answers[0].set_result(None)
    await settle()
    assert rig.committed() == (12, 1)  # both, in order
    assert rig.handed[2] == [(0, 12)]
    rig.answers[2].set_result(None)
    await settle()
    assert rig.committed() == (13, 1)
    assert rig.delivery.buffer.idle()
    agent.cancel()


async def test_a_batch_whose_records_fail_is_read_again_with_the_one_taken_after_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    rig = Rig(monkeypatch)
    agent = asyncio.ensure_future(rig.run(None))
    await rig.fetched((A, 10, 11))
    await rig.fetched((A, 12), (B, 0))
    assert rig.handed == [[(0, 10), (0, 11)], [(0, 12), (1, 0)]]
    rig.answers[0].set_exception(OSError("broker gone"))
    rig.answers[1].set_result(None)  # delivered, but taken after a batch that was not
    await settle()
    assert sorted(rig.consumer.seeks) == [(A, 10), (B, 0)]
    assert rig.committed() == (10, 0)
    assert rig.acked == []  # neither counts as acknowledged: both come again
    assert rig.done == []  # nor is either told it is done
    await rig.fetched((A, 13))  # fetched before the seek took effect: refused, no second seek
    assert len(rig.handed) == 2 and len(rig.consumer.seeks) == 2
    await rig.fetched((A, 10, 11, 12, 13), (B, 0))  # read again from what was delivered
    assert rig.handed[2] == [(0, 10), (0, 11), (0, 12), (0, 13), (1, 0)]
    rig.answers[2].set_result(None)
    await settle()
    assert rig.committed() == (14, 1)
    assert rig.acked == [5]  # each message acknowledged once
    assert rig.done == [rig.handed[2]]
    agent.cancel()


async def test_a_batch_fenced_off_by_a_rebalance_is_not_done_nor_sought_back(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Its decisions were withheld (streams.fencing): it is not done, and, the rebalance
    under way, nothing is sought back (the new owner reads from the committed position)."""
    from streams.fencing import Fenced

    rig = Rig(monkeypatch)
    agent = asyncio.ensure_future(rig.run(None))
    await rig.fetched((A, 10))
    rig.answers[0].set_exception(Fenced("a rebalance began"))
    await settle()
    assert rig.committed() == (10, None) and rig.consumer.seeks == [] and rig.acked == []
    assert not agent.done()  # the agent goes on
    await rig.fetched((B, 0))
    assert rig.handed[1] == [(1, 0)]
    agent.cancel()


async def test_a_batch_whose_alerts_fail_after_delivery_is_read_again_too(
        monkeypatch: pytest.MonkeyPatch) -> None:
    rig = Rig(monkeypatch)
    rig.announce_fails = 1
    agent = asyncio.ensure_future(rig.run(None))
    await rig.fetched((A, 10))
    await rig.fetched((B, 0))
    rig.answers[0].set_result(None)
    rig.answers[1].set_result(None)
    await settle()
    # the first batch's announcement raised: it is not done, and neither is the second
    assert rig.committed() == (10, 0)
    assert sorted(rig.consumer.seeks) == [(A, 10), (B, 0)]
    assert not agent.done()  # the agent goes on
    await rig.fetched((A, 10), (B, 0))
    rig.answers[2].set_result(None)
    await settle()
    assert rig.committed() == (11, 1)
    agent.cancel()


async def test_up_to_in_flight_batches_are_delivered_meanwhile_and_done_in_order(
        monkeypatch: pytest.MonkeyPatch) -> None:
    rig = Rig(monkeypatch, in_flight=3)
    agent = asyncio.ensure_future(rig.run(None))
    for offset in (10, 11, 12, 13):
        await rig.fetched((A, offset))
    # three in flight and the fourth handed; the fifth waits for the first
    assert rig.handed == [[(0, 10)], [(0, 11)], [(0, 12)], [(0, 13)]]
    await rig.fetched((B, 0))
    assert len(rig.handed) == 4
    for answer in rig.answers[1:]:  # the later ones first: nothing is done before the first
        answer.set_result(None)
    await settle()
    assert rig.committed() == (10, None) and rig.acked == []
    rig.answers[0].set_result(None)
    await settle()
    assert rig.committed() == (14, 0) and rig.acked == [1, 1, 1, 1]
    assert rig.handed[4] == [(1, 0)]
    rig.answers[4].set_result(None)
    await settle()
    assert rig.committed() == (14, 1)
    assert rig.delivery.buffer.idle()
    agent.cancel()


async def test_a_failed_batch_leaves_every_batch_in_flight_after_it_undone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    rig = Rig(monkeypatch, in_flight=3)
    agent = asyncio.ensure_future(rig.run(None))
    await rig.fetched((A, 10))
    await rig.fetched((A, 11))
    await rig.fetched((B, 0))
    await rig.fetched((A, 12))
    rig.answers[1].set_exception(OSError("broker gone"))
    for i in (0, 2, 3):
        rig.answers[i].set_result(None)
    await settle()
    # the first is done; the second failed: it and the two taken after it come again
    assert rig.committed() == (11, 0) and rig.acked == [1]
    assert sorted(rig.consumer.seeks) == [(A, 11), (B, 0)]
    await rig.fetched((A, 11, 12), (B, 0))  # read again from what was delivered
    assert rig.handed[4] == [(0, 11), (0, 12), (1, 0)]
    rig.answers[4].set_result(None)
    await settle()
    assert rig.committed() == (13, 1) and rig.acked == [1, 3]
    agent.cancel()


def test_an_agent_needs_room_for_one_batch_in_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Rig(monkeypatch, in_flight=0)


async def test_nothing_is_handed_while_partitions_taken_over_are_not_read_back(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Until the reservations answered for on the partitions taken over are held
    (``SpendControl.restore_answered``), a batch is dropped, and read again after."""
    rig = Rig(monkeypatch)
    rig.unread.add(0)  # a rebalance came while reading them back
    agent = asyncio.ensure_future(rig.run(None))
    await rig.fetched((A, 10, 11))
    assert rig.handed == [] and rig.committed() == (None, None)
    rig.unread.clear()
    await rig.fetched((A, 12))  # after a gap: sought back to what was not processed
    assert rig.handed == [] and rig.consumer.seeks == [(A, 10)]
    await rig.fetched((A, 10, 11, 12))
    assert rig.handed == [[(0, 10), (0, 11), (0, 12)]]
    rig.answers[0].set_result(None)
    await settle()
    assert rig.committed() == (13, None) and rig.done == rig.handed
    agent.cancel()
