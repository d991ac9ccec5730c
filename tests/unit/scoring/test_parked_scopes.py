"""Parked scopes: set aside while another worker answers for their tenant, learned nothing
meanwhile, resumed as they were, kept through a checkpoint, dropped when idle too long; and
handed over to the worker that takes the tenant."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from prsm_events.anomaly.findings import AnomalyRule
from prsm_events.scoring import BatchScorer
from prsm_events.scoring.checkpoint import read_checkpoint, write_checkpoint
from prsm_events.scoring.parked_scopes import ParkedScopes

B = ["tenant:b", "tenant:b/service:chat"]


def trained(forget_after: int | None = None) -> BatchScorer:
    rng = np.random.default_rng(5)
    scorer = BatchScorer("numpy", capacity=2, forget_after=forget_after)
    for t in range(600):
        scorer.step({"global": 3.0 + rng.random(), "tenant:a": 1.0 + rng.random(),
                     B[0]: 2.0 + rng.random(), B[1]: 2.0 + rng.random()},
                    {B[0]: 1.0}, bucket=(t // 60) % 24, day=(t // 1440) % 7)
    return scorer


def b_after(scorer: BatchScorer, spend: float, bucket: int) -> dict[str, Any]:
    """What the scorer answers of b at a step where b spends ``spend``."""
    out = scorer.step({"tenant:a": 1.5, B[0]: spend, B[1]: spend}, {B[0]: 1.0},
                      bucket=bucket, day=0)
    at = [out.scopes.index(s) for s in B]
    rest = scorer.rest(B, [[2] * 48] * 2, days=[[1] * 7] * 2)
    demand = scorer.rest([B[0]], [[1] * 24], demand=True)
    return {"score": out.score[at], "sigma": out.sigma[at], "expected": out.expected[at],
            "rest": rest.mean, "learned": rest.learned, "demand": demand.mean}


def test_a_parked_scope_learns_nothing_and_resumes_as_it_was() -> None:
    parked, stayed = trained(), trained()
    assert parked.park([*B, "tenant:nobody"]) == 2
    assert list(parked.rows) == ["global", "tenant:a"] and len(parked.parked) == 2
    for t in range(300):  # another worker has b: only a and the global share spend here
        out = parked.step({"global": 1.0, "tenant:a": 1.0 + t % 3}, {}, bucket=t % 24)
        assert out.scopes == ["global", "tenant:a"]
    # back: b answers exactly as a scorer that never saw the ticks away (its kernels are
    # per scope), and is a scope like the others again
    for spend in (2.5, 9.0):
        got, expected = b_after(parked, spend, 7), b_after(stayed, spend, 7)
        for key in got:
            np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
    assert float(got["score"][0]) > 0.5 and not len(parked.parked)
    assert list(parked.rows)[2:] == B


def test_parked_scopes_are_kept_in_the_checkpoint_and_dropped_when_idle(tmp_path: Path) -> None:
    scorer = trained(forget_after=100)
    scorer.park(B)
    path = tmp_path / "scorer.npz"
    write_checkpoint(path, scorer.export(), interval_s=60.0)
    restored = BatchScorer("numpy", forget_after=100)
    restored.load(read_checkpoint(path, interval_s=60.0)[0])
    assert restored.parked.names == B and list(restored.rows) == ["global", "tenant:a"]
    np.testing.assert_array_equal(restored.parked.active, scorer.parked.active)
    stayed = trained()
    got, expected = b_after(restored, 4.0, 3), b_after(stayed, 4.0, 3)
    for key in got:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
    # idle for longer than forget_after (counted from their last spend): dropped, and one
    # that comes back then starts fresh
    scorer.park([])
    for t in range(120):
        scorer.step({"tenant:a": 1.0}, {}, bucket=t % 24)
    assert len(scorer.parked) == 0
    out = scorer.step({B[0]: 3.0}, {}, bucket=0)
    assert out.expected[list(out.scopes).index(B[0])] == 3.0  # first value seen: expected


def test_a_checkpoint_without_parked_scopes_loads_with_none(tmp_path: Path) -> None:
    scorer = trained()
    state = scorer.export()
    assert state.parked is None
    write_checkpoint(tmp_path / "s.npz", state, interval_s=60.0)
    restored = BatchScorer("numpy")
    restored.load(read_checkpoint(tmp_path / "s.npz", interval_s=60.0)[0])
    assert len(restored.parked) == 0 and len(restored) == 4


def test_a_parked_scope_cannot_also_be_in_use() -> None:
    scorer = trained()
    scorer.park(B[:1])
    state = scorer.export()
    assert state.parked is not None
    clash = type(state)([*state.scopes, B[0]], state.budgets, state.season, state.ticks,
                        {k: np.concatenate([v, v[..., :1]], axis=-1) if not k.startswith(
                            "pacing.") else v for k, v in state.arrays.items()},
                        None, state.paced, state.parked)
    with pytest.raises(ValueError, match="parked scope"):
        BatchScorer("numpy").load(clash)
    with pytest.raises(ValueError, match="parked twice"):
        scorer.parked.add(B[:1], {k: v for k, v in scorer.parked.arrays.items()},
                          np.zeros(1, dtype=np.int64))


def test_a_restarted_detector_warms_up_again_and_then_judges() -> None:
    scorer = trained()
    assert scorer.restart_detection(["global", "tenant:unknown"]) == 1
    scores = []
    for t in range(80):
        out = scorer.step({"global": 9.0 if t == 70 else 3.5, "tenant:a": 1.5}, {},
                          bucket=t % 24, day=0)
        scores.append(float(out.score[out.scopes.index("global")]))
    assert scores[:50] == [0.0] * 50  # warming up: no score, whatever the share did
    threshold = AnomalyRule().threshold
    assert scores[70] >= threshold > max(scores[51:70])  # then a spike is news again


def test_parked_scopes_alone() -> None:
    parked = ParkedScopes()
    assert parked.take(["x"]) == ([], {}, pytest.approx(np.zeros(0)))
    parked.add(["x"], {"p.a": np.array([[1.0], [2.0]])}, np.array([3]))
    with pytest.raises(ValueError, match="another shape"):
        parked.add(["y"], {"p.b": np.array([1.0])}, np.array([3]))
    names, arrays, active = parked.take(["x", "x"])
    assert names == ["x"] and arrays["p.a"].tolist() == [[1.0], [2.0]] and active.tolist() == [3]


def test_a_scope_handed_over_answers_on_the_new_worker_as_on_the_old():
    """The worker that parks a tenant hands each scope's state over (a record of the
    scorer-states topic); another worker adopts it: for a scope it does not know, or has
    learned too little of, b then answers there exactly as where it was learned."""
    from prsm_events.scoring.scope_states import decode_scope_state, encode_scope_state

    old, stayed = trained(), trained()
    old.park(B)
    records = {s: encode_scope_state(old.parked.state_of(s), 60.0) for s in B}
    new = BatchScorer("numpy", capacity=2)
    for t in range(5):  # it began learning b itself: 5 intervals, fewer than asked below
        new.step({"tenant:a": 1.0, B[0]: 1.0}, {}, bucket=t % 24)
    states = {s: decode_scope_state(raw) for s, raw in records.items()}
    assert new.adopt(states, younger_than=30) == B
    got, expected = b_after(new, 2.5, 7), b_after(stayed, 2.5, 7)
    for key in got:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
    # learned enough here, taken already, parked here, or of another shape: kept as it is
    assert new.adopt(states, younger_than=3) == []
    assert new.adopt(states, younger_than=10**6) == []
    later = {s: msgspec.structs.replace(state, at=1.0) for s, state in states.items()}
    new.park(B[:1])
    assert new.adopt(later, younger_than=10**6) == [B[1]]
    bad = {"tenant:c": decode_scope_state(encode_scope_state(
        {**states[B[1]].arrays(), "spend_fc.season": np.zeros(3)}, 60.0))}
    assert BatchScorer("numpy").adopt(bad, younger_than=30) == []


def test_a_scope_state_of_another_version_or_shape_is_refused():
    from prsm_events.scoring.scope_states import ScopeState, decode_scope_state

    with pytest.raises(ValueError, match="version 1"):
        decode_scope_state(msgspec.msgpack.encode(ScopeState(1, 60.0, [], [], b"")))
    torn = msgspec.msgpack.encode(ScopeState(2, 60.0, ["anomaly.n"], [[3]], b"\0" * 8))
    with pytest.raises(ValueError, match="3 numbers do not fit"):
        decode_scope_state(torn).arrays()


def test_a_later_state_replaces_one_adopted_lately_an_earlier_or_the_same_does_not():
    """A state reaches a worker twice (followed, and read again when it gains the
    partition), or an older one after a newer (a checkpoint's, then a hand-off's): only one
    written later than the one it took replaces it, and only while it has learned fewer
    than ``younger_than`` intervals of it here."""
    from prsm_events.scoring.scope_states import decode_scope_state, encode_scope_state

    old = trained()
    old.park(B)

    def written(at: float) -> dict[str, Any]:
        return {s: decode_scope_state(encode_scope_state(old.parked.state_of(s), 60.0, "w", at))
                for s in B}

    new = BatchScorer("numpy", capacity=2)
    assert new.adopt(written(5.0), younger_than=30) == B
    assert new.adopt(written(3.0), younger_than=30) == []
    assert new.adopt(written(5.0), younger_than=30) == []
    assert new.adopt(written(7.0), younger_than=30) == B
    for t in range(30):
        new.step({B[0]: 2.0, B[1]: 2.0}, {}, bucket=t % 24)
    assert new.adopt(written(9.0), younger_than=30) == []  # learned 30 intervals here since


def test_scope_states_are_encoded_at_once_as_one_by_one():
    """What a worker publishes at a checkpoint (every scope it knows of the tenants it
    answers for, encoded at once) is, record by record, what it hands over one by one."""
    from prsm_events.scoring.scope_states import encode_scope_state, encode_scope_states

    scorer = trained()
    scorer.park(["tenant:a"])
    scopes, columns = scorer.states(["tenant:nobody", B[1], "tenant:a", "global", B[0]])
    assert scopes == [B[1], "global", B[0]]  # known and in use here, in the order asked
    values = encode_scope_states(columns, 60.0, "w", 12.5)
    alone = [encode_scope_state({k: v[..., i] for k, v in columns.items()}, 60.0, "w", 12.5)
             for i in range(len(scopes))]
    assert values == alone
    moved = BatchScorer("numpy", capacity=2)
    from prsm_events.scoring.scope_states import decode_scope_state

    assert moved.adopt({s: decode_scope_state(v) for s, v in zip(scopes, values, strict=True)},
                       younger_than=30) == scopes
    for name, column in moved.states(scopes)[1].items():
        np.testing.assert_array_equal(column, columns[name], err_msg=name)


def test_what_adopt_keeps_whatever_it_is_handed():
    """``keeps``: the scopes no handed-over state replaces now (a reader skips their
    records): parked ones, and those learned for long enough here, unless adopted lately."""
    from prsm_events.scoring.scope_states import decode_scope_state, encode_scope_state

    scorer = trained()
    scorer.park(["tenant:a"])
    assert scorer.keeps(30) == {"global", *B, "tenant:a"}  # (600 intervals each)
    assert scorer.keeps(10**6) == {"tenant:a"}
    donor = trained()
    donor.park(B)
    later = {s: decode_scope_state(encode_scope_state(donor.parked.state_of(s), 60.0, "w", 1.0))
             for s in B}
    fresh = BatchScorer("numpy", capacity=2)
    assert fresh.adopt(later, younger_than=30) == B
    assert fresh.keeps(30) == set()  # adopted lately: a later state would replace them
    every = {s: later[B[0]] for s in ["global", *B, "tenant:a"]}
    kept = scorer.keeps(30)
    assert not set(scorer.adopt(every, younger_than=30)) & kept
