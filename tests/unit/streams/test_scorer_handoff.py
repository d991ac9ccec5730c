"""The scorer hand-off's own records and what it publishes at a checkpoint (the broker's side
is ``tests/integration/test_several_workers.py``)."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from prsm_events.kafka.partitioning import owner_partition
from prsm_events.scoring.scope_states import decode_scope_state, encode_scope_state
from prsm_events.settings import Settings
from streams.scorer_handoff import ScorerHandoff
from streams.scoring_timer import build_watch
from tests.unit.streams.fake_producer import FakeProducer, app_with

TENANTS = ["acme", "beta", "gamma", "delta"]


def handoff(producer: FakeProducer, **kwargs: Any) -> ScorerHandoff:
    settings = Settings(partitions=4, topic_prefix="hand.", scoring_interval_s=60.0)
    watch = build_watch(settings)
    rng = np.random.default_rng(3)
    for t in range(40):
        watch.scorer.step({"global": 4.0, **{f"tenant:{x}": 1.0 + rng.random() for x in TENANTS},
                           "tenant:acme/service:chat": 0.5}, {}, bucket=t % 24)
    return ScorerHandoff(app_with(producer, "handoff-test"), settings, watch, **kwargs)


def test_a_worker_skips_its_own_states_and_refuses_another_intervals() -> None:
    hand = handoff(FakeProducer())
    arrays = hand.watch.scorer.states(["tenant:acme"])[1]
    one = {k: v[..., 0] for k, v in arrays.items()}
    other = encode_scope_state(one, 60.0, "another worker", 5.0)
    assert hand._state(b"tenant:acme", other) == decode_scope_state(other)
    assert hand._state(b"tenant:acme", encode_scope_state(one, 60.0, hand.identity)) is None
    assert hand._state(b"tenant:acme", None) is None  # a tombstone
    with pytest.raises(ValueError, match=r"learned at 10\.0 s intervals"):
        hand._state(b"tenant:acme", encode_scope_state(one, 10.0, "another worker"))
    hand._arrived(b"tenant:acme", encode_scope_state(one, 60.0, hand.identity))
    hand._arrived(b"tenant:beta", other)
    assert list(hand.watch.arrivals) == ["tenant:beta"] and hand.stats["received"] == 1


async def test_a_checkpoint_publishes_the_scopes_of_the_tenants_it_answers_for() -> None:
    producer = FakeProducer()
    mine = {"acme", "gamma"}
    hand = handoff(producer, answers=lambda tenants: np.array([t in mine for t in tenants]))
    published = await hand.publish_learned()
    sent = {key.decode(): (value, partition) for topic, key, value, partition in producer.sent
            if topic == "hand.scorer-states" and key is not None and value is not None}
    assert set(sent) == {"tenant:acme", "tenant:acme/service:chat", "tenant:gamma"}
    assert published == hand.stats["published"] == 3
    scopes, arrays = hand.watch.scorer.states(list(sent))
    for i, scope in enumerate(scopes):
        value, partition = sent[scope]
        state = decode_scope_state(value)
        assert partition == owner_partition(scope.split(":")[1].split("/")[0], 4)
        assert state.by == hand.identity and state.at > 0
        for name, column in state.arrays().items():
            np.testing.assert_array_equal(column, arrays[name][..., i], err_msg=name)
    hand.answers = lambda tenants: np.zeros(len(tenants), dtype=bool)
    assert await hand.publish_learned() == 0


def test_a_bad_record_in_a_gained_partitions_history_is_refused_and_the_rest_kept() -> None:
    from aiokafka import ConsumerRecord

    hand = handoff(FakeProducer())
    arrays = hand.watch.scorer.states(["tenant:acme"])[1]
    good = encode_scope_state({k: v[..., 0] for k, v in arrays.items()}, 60.0, "other", 1.0)
    found: dict = {}
    for offset, (key, value) in enumerate([(b"\xff\xfe", good), (b"tenant:beta", b"junk"),
                                           (b"tenant:acme", good)]):
        hand._found(ConsumerRecord("hand.scorer-states", 2, offset, 0, 0, key, value, None,
                                   len(key), len(value), []), found)
    assert list(found) == ["tenant:acme"] and hand.stats["refused"] == 2


async def test_a_clean_stop_publishes_what_it_answers_for_between_ticks() -> None:
    """Faust's ``on_before_shutdown`` (the consumer stopped, the producer still up) publishes
    the scopes of the tenants the worker answers for, after a tick under way; a stop whose
    publication fails (here the producer never started) goes on."""
    producer = FakeProducer()
    ticking = asyncio.Lock()
    hand = handoff(producer, answers=lambda tenants: [t == "beta" for t in tenants],
                   ticking=ticking)
    await ticking.acquire()  # a tick under way
    stopping = asyncio.ensure_future(hand.app.on_before_shutdown.send())
    await asyncio.sleep(0.05)
    assert not stopping.done() and producer.sent == []
    ticking.release()
    await stopping
    assert [key for _, key, _, _ in producer.sent] == [b"tenant:beta"]
    assert hand.stats["published"] == 1

    class NotStarted(FakeProducer):
        def _ensure_producer(self) -> FakeProducer:
            raise RuntimeError("Producer service not yet started")

    broken = handoff(NotStarted(), answers=lambda tenants: [True] * len(tenants))
    assert await broken.publish_at_stop() == 0
    assert await handoff(FakeProducer()).publish_at_stop() == 0  # no answers given: nothing
