"""Scorer checkpoints: a scorer restored from disk goes on exactly where the saved one was;
files that cannot be used are refused with a reason and leave the scorer as it was."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from prsm_events.errors import BackendUnavailable
from prsm_events.scoring import BatchScorer, array_module
from prsm_events.scoring.checkpoint import CheckpointError, read_checkpoint, write_checkpoint
from prsm_events.scoring.forecast_state import CARRY_STATE, CHECK_STATE
from prsm_events.scoring.pacing_step import BURST_STATE, YOUNG_STATE, PacingInputs

SCOPES = ["global", "tenant:a", "tenant:a/service:chat", "tenant:b"]


def trained(ticks: int = 300, seed: int = 0) -> BatchScorer:
    rng = np.random.default_rng(seed)
    scorer = BatchScorer("numpy", capacity=2)  # grown on the way
    for t in range(ticks):
        scorer.step({s: float(rng.gamma(2.0, 1.0 + i)) for i, s in enumerate(SCOPES)},
                    {"tenant:a": float(rng.gamma(3.0))}, bucket=(t // 60) % 24, day=t // 1440)
        if t >= 100:  # at every tick from then on (paced budgets are, as long as paced)
            scorer.pace(["tenant:a|day"], PacingInputs(
                remaining=[50.0], demand_rest=[80.0], spend=[1.0], demand=[2.0],
                high_share=[0.2], young_left=[0.0], intervals_left=[900.0]))
    return scorer


def next_tick(scorer: BatchScorer) -> dict[str, Any]:
    """Everything a scorer answers on the following tick."""
    out = scorer.step({"tenant:a": 30.0, "tenant:b": 1.0}, {"tenant:a": 2.0}, bucket=5, day=0)
    rest = scorer.rest(SCOPES, [[3] * 48] * len(SCOPES), days=[[10] * 7] * len(SCOPES))
    demand = scorer.rest(["tenant:a"], [[1] * 24], demand=True)
    pressure, reserve = scorer.pace(["tenant:a|day", "tenant:b|day"], PacingInputs(
        remaining=[5.0, 9.0], demand_rest=[80.0, 1.0], spend=[3.0, 0.1], demand=[4.0, 0.1],
        high_share=[0.2, 0.0], young_left=[0.0, 0.0], intervals_left=[300.0, 300.0]))
    return {"scopes": out.scopes, "score": out.score, "sigma": out.sigma,
            "expected": out.expected, "rest": rest.mean, "low": rest.low, "learned": rest.learned,
            "demand": demand.mean, "pressure": pressure, "reserve": reserve}


def assert_same(a: dict[str, Any], b: dict[str, Any], rtol: float = 0.0) -> None:
    assert a["scopes"] == b["scopes"]
    for key in a:
        if key != "scopes":
            np.testing.assert_allclose(a[key], b[key], rtol=rtol, err_msg=key)


def test_a_restored_scorer_answers_exactly_as_the_saved_one_would(tmp_path: Path) -> None:
    original = trained()
    path = tmp_path / "scorer.npz"
    write_checkpoint(path, original.export(), interval_s=60.0, extra={"k": [1, 2]})
    state, extra = read_checkpoint(path, interval_s=60.0)
    restored = BatchScorer("numpy")
    restored.load(state)
    assert extra == {"k": [1, 2]} and restored.ticks == original.ticks == 300
    assert restored.paced_at[0] == original.paced_at[0] == 300  # paced at the last tick
    assert len(restored) == len(SCOPES)
    expected, got = next_tick(original), next_tick(restored)
    assert float(expected["score"][1]) > 0.5  # the tick is not trivial: a departure scores
    assert_same(expected, got)
    # and it keeps learning the same way (new scopes get fresh rows after the restored ones)
    for scorer in (original, restored):
        scorer.step({"tenant:c": 1.0, "tenant:a": 2.0}, {}, bucket=6, day=0)
    assert_same(next_tick(original), next_tick(restored))


def test_a_numpy_checkpoint_restores_on_cupy(tmp_path: Path) -> None:
    try:
        array_module("cupy")
    except BackendUnavailable as exc:
        pytest.skip(f"no CUDA GPU here ({exc}); the NumPy path is the reference")
    original = trained()
    write_checkpoint(tmp_path / "s.npz", original.export(), interval_s=60.0)
    restored = BatchScorer("cupy")
    restored.load(read_checkpoint(tmp_path / "s.npz", interval_s=60.0)[0])
    assert_same(next_tick(original), next_tick(restored), rtol=1e-9)


def test_files_that_cannot_be_used_are_refused_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "scorer.npz"
    with pytest.raises(FileNotFoundError):
        read_checkpoint(path, interval_s=60.0)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="unreadable"):
        read_checkpoint(path, interval_s=60.0)
    write_checkpoint(path, trained(50).export(), interval_s=60.0)
    with pytest.raises(CheckpointError, match=r"60\.0 s intervals, the worker now scores every 10"):
        read_checkpoint(path, interval_s=10.0)


def test_a_state_that_does_not_fit_leaves_the_scorer_as_it_was(tmp_path: Path) -> None:
    saved = trained(50).export()
    other = BatchScorer("numpy", season=48)
    with pytest.raises(ValueError, match="24 buckets per day, not 48"):
        other.load(saved)
    scorer = trained(120, seed=1)
    before = next_tick(trained(120, seed=1))
    broken = dict(saved.arrays)
    broken["spend_fc.season"] = broken["spend_fc.season"][:, :2]
    with pytest.raises(ValueError, match=r"spend_fc.season is shaped \(24, 2\), expected"):
        scorer.load(type(saved)(saved.scopes, saved.budgets, 24, 50, broken))
    del broken["spend_fc.season"]
    with pytest.raises(ValueError, match=r"spend_fc\.season is missing"):
        scorer.load(type(saved)(saved.scopes, saved.budgets, 24, 50, broken))
    assert_same(before, next_tick(scorer))


def test_a_checkpoint_from_before_the_residual_carry_loads_with_it_at_zero() -> None:
    saved = trained().export()
    old = {k: v for k, v in saved.arrays.items()
           if k.split(".")[-1] not in CARRY_STATE or k.startswith("anomaly.")}
    assert len(old) == len(saved.arrays) - 3 * len(CARRY_STATE)
    scorer = BatchScorer("numpy")
    scorer.load(type(saved)(saved.scopes, saved.budgets, 24, saved.ticks, old))
    for key in CARRY_STATE:
        for part in (scorer.spend_fc, scorer.outlook_fc, scorer.demand_fc):
            assert not getattr(part, key).any()
    # what the profiles learned is kept: the daily forecast equals the saved scorer's
    # without its carry
    original = trained()
    for key in CARRY_STATE:
        getattr(original.outlook_fc, key)[...] = 0
    counts = [[3] * 48] * len(SCOPES)
    np.testing.assert_array_equal(scorer.rest(SCOPES, counts).mean,
                                  original.rest(SCOPES, counts).mean)


def test_a_checkpoint_from_before_the_outlook_forecaster_starts_it_from_the_detectors() -> None:
    saved = trained().export()
    old = {k: v for k, v in saved.arrays.items() if not k.startswith("outlook_fc.")}
    scorer = BatchScorer("numpy")
    scorer.load(type(saved)(saved.scopes, saved.budgets, 24, saved.ticks, old))
    for name, arr in scorer.spend_fc.arrays().items():  # each hour's value in both its halves
        want = np.repeat(arr, 2, axis=0) if name == "season" else arr
        np.testing.assert_array_equal(getattr(scorer.outlook_fc, name), want, err_msg=name)
    assert scorer.outlook_fc.season.any()
    for name in CHECK_STATE:  # the detector's forecaster has no self-check: it starts over
        assert not getattr(scorer.outlook_fc.check, name).any()
    assert trained().outlook_fc.check.check_left.any()
    without_check = {k: v for k, v in saved.arrays.items()
                     if k.split(".")[-1] not in CHECK_STATE}  # saved before the self-check
    scorer.load(type(saved)(saved.scopes, saved.budgets, 24, saved.ticks, without_check))
    assert not scorer.outlook_fc.check.check_left.any() and scorer.outlook_fc.level.any()
    with pytest.raises(ValueError, match=r"outlook_fc\.season is shaped \(5, 4\)"):
        scorer.load(type(saved)(saved.scopes, saved.budgets, 24, saved.ticks,
                                saved.arrays | {"outlook_fc.season": old["spend_fc.season"][:5]}))


def test_a_checkpoint_from_before_the_young_pacing_mean_loads_with_it_at_zero() -> None:
    saved = trained().export()
    later = (*YOUNG_STATE, *BURST_STATE)
    old = {k: v for k, v in saved.arrays.items()
           if k not in {f"pacing.{name}" for name in later}}
    assert len(old) == len(saved.arrays) - len(later)
    scorer = BatchScorer("numpy")
    scorer.load(type(saved)(saved.scopes, saved.budgets, 24, saved.ticks, old))
    row = scorer.budget_rows["tenant:a|day"]
    assert trained().pacing.burst_peak[row] > 0  # what the old checkpoint lacks
    for name in later:
        assert getattr(scorer.pacing, name)[row] == 0
    assert scorer.pacing.spend[row] == trained().pacing.spend[row] > 0  # kept
    with pytest.raises(ValueError, match=r"pacing\.pressure is missing"):
        scorer.load(type(saved)(saved.scopes, saved.budgets, 24, saved.ticks,
                                {k: v for k, v in old.items() if k != "pacing.pressure"}))


def test_a_failed_write_keeps_the_previous_checkpoint(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "scorer.npz"
    write_checkpoint(path, trained(50).export(), interval_s=60.0)

    def full_disk(file: Any, **entries: Any) -> None:
        file.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("prsm_events.scoring.checkpoint.np.savez", full_disk)
    with pytest.raises(OSError, match="No space"):
        write_checkpoint(path, trained(80).export(), interval_s=60.0)
    assert read_checkpoint(path, interval_s=60.0)[0].ticks == 50
    assert [p.name for p in tmp_path.iterdir()] == ["scorer.npz"]  # no temporary left behind


def test_scopes_silent_for_longer_than_forget_after_are_dropped(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    scorer = BatchScorer("numpy", capacity=2, forget_after=100)
    alone = BatchScorer("numpy", capacity=2)  # never saw the scope that goes quiet
    for t in range(400):
        spend = {"tenant:a": float(rng.gamma(2.0)), "tenant:c": float(rng.gamma(5.0))}
        now_and_then = {"tenant:d": 1.0 + t / 100} if t % 90 == 0 else {}  # stay
        demand = {"tenant:e": 1.0 + t / 100} if t % 90 == 0 else {}
        out = scorer.step(spend | now_and_then | ({"tenant:old/api_key:k1": 1.0} if t < 50
                                                  else {}), demand, bucket=t % 24)
        kept = alone.step(spend | now_and_then, demand, bucket=t % 24)
        if t == 149:  # 99 ticks silent: still there
            assert "tenant:old/api_key:k1" in out.scopes
    scopes = ["tenant:a", "tenant:c", "tenant:d", "tenant:e"]
    assert out.scopes == kept.scopes == scopes
    np.testing.assert_array_equal(out.score, kept.score)  # the others' state is untouched
    assert scorer.active[:4].tolist() == [399, 399, 360, 360]  # last spend or demand
    for demand_side in (False, True):
        np.testing.assert_array_equal(
            scorer.rest(scopes, [[1] * (24 if demand_side else 48)] * 4, demand=demand_side).mean,
            alone.rest(scopes, [[1] * (24 if demand_side else 48)] * 4, demand=demand_side).mean)
    # a dropped scope that comes back starts fresh; the checkpoint keeps who was active when
    back = scorer.step({"tenant:old/api_key:k1": 3.0}, {}, bucket=0)
    assert back.scopes[-1] == "tenant:old/api_key:k1" and back.expected[-1] == 3.0
    write_checkpoint(tmp_path / "s.npz", scorer.export(), interval_s=60.0)
    restored = BatchScorer("numpy", forget_after=100)
    restored.load(read_checkpoint(tmp_path / "s.npz", interval_s=60.0)[0])
    np.testing.assert_array_equal(restored.active[:5], scorer.active[:5])
    for s in (scorer, restored):
        for _ in range(150):
            last = s.step({"tenant:a": 1.0}, {}, bucket=0)
        assert last.scopes == ["tenant:a"]


def test_a_budget_paced_again_after_ticks_away_starts_as_a_new_one() -> None:
    """Pacing state held while another worker answered for the budget is out of date: paced
    again, the budget goes on exactly as one first paced then; without a gap it goes on."""
    throttling = PacingInputs(remaining=[5.0], demand_rest=[80.0], spend=[1.0], demand=[2.0],
                              high_share=[0.0], young_left=[0.0], intervals_left=[300.0])

    def pressures(away: range) -> list[float | None]:
        scorer = BatchScorer("numpy")
        out: list[float | None] = []
        for t in range(40):
            scorer.step({"tenant:a": 1.0}, {"tenant:a": 2.0}, bucket=t % 24, day=0)
            if t in away:
                out.append(None)
                continue
            out.append(float(scorer.pace(["tenant:a|day"], throttling)[0][0]))
        return out

    always, away, new = pressures(range(0)), pressures(range(10, 20)), pressures(range(20))
    assert always[:10] == away[:10] and always[9] is not None and always[9] > 0.5
    assert away[20:] == new[20:] != always[20:]
