"""One contract for every scoring backend: NumPy always, CuPy whenever a GPU is present.

The same inputs must give the same outputs on every backend (relative tolerance 1e-9: the
kernels do the same float64 arithmetic; only pow/sqrt rounding may differ).
"""

from __future__ import annotations

import importlib.util
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from prsm_events.errors import BackendUnavailable
from prsm_events.scoring import (
    BatchScorer,
    anomaly_step,
    array_module,
    following,
    forecast_rest,
    forecast_step,
    pacing_step,
    spend_step,
    to_host,
)
from prsm_events.scoring.anomaly_step import new_anomaly_state
from prsm_events.scoring.calendar_math import profile_place
from prsm_events.scoring.forecast_params import ForecastParams
from prsm_events.scoring.forecast_step import new_forecast_state
from prsm_events.scoring.pacing_step import new_pacing_state

RTOL = 1e-9


def _cupy_or_skip() -> ModuleType:
    try:
        return array_module("cupy")
    except BackendUnavailable as exc:
        pytest.skip(f"no CUDA GPU here ({exc}); the NumPy path is the reference")


@pytest.fixture(params=["numpy", "cupy"])
def xp(request: pytest.FixtureRequest) -> ModuleType:
    return np if request.param == "numpy" else _cupy_or_skip()


def series(n: int, steps: int, seed: int = 3) -> np.ndarray[Any, Any]:
    """Noisy daily-ish spend, lower on weekends, with a spike in a few scopes."""
    rng = np.random.default_rng(seed)
    t = np.arange(steps)[:, None]
    base = 5 + 2 * np.sin(2 * np.pi * t / 24) + rng.gamma(2.0, 0.5, (steps, n))
    base -= 1.5 * (day(t) >= 5)
    base[steps - 5, : max(1, n // 10)] += 60.0
    return base


HOURLY = ForecastParams(intervals_per_day=24, weekly_after_days=1.0)  # offsets move in a test


def day(t: Any) -> Any:
    """Weekday of hourly interval ``t``."""
    return (t // 24) % 7


def run_anomaly(xp: ModuleType, data: np.ndarray[Any, Any]) -> list[np.ndarray[Any, Any]]:
    state = new_anomaly_state(xp, data.shape[1])
    fc = new_forecast_state(xp, data.shape[1], season=24)
    out = []
    for t, row in enumerate(data):
        x = xp.asarray(row)
        err_var = fc.err_var.copy()
        predicted = forecast_step(xp, fc, x, t % 24, HOURLY, day(t))
        out.append(to_host(anomaly_step(xp, state, x, predicted, err_var, bucket=t % 24)
                           .score).copy())
    return out


def test_anomaly_step_is_the_same_on_every_backend(xp: ModuleType) -> None:
    data = series(257, 150)
    ref = run_anomaly(np, data)
    got = run_anomaly(xp, data)
    for a, b in zip(ref, got, strict=True):
        np.testing.assert_allclose(b, a, rtol=RTOL, atol=1e-12)
    last = got[-5]
    assert last[: 25].min() > 0.9 > last[25:].max()  # the spiked scopes, and only they


def test_fused_spend_step_equals_the_two_reference_steps(xp: ModuleType) -> None:
    data = series(300, 150, seed=8)
    ref = run_anomaly(np, data)
    fc, an = new_forecast_state(xp, 300, season=24), new_anomaly_state(xp, 300)
    for t, row in enumerate(data):
        out = spend_step(xp, fc, an, xp.asarray(row), t % 24, HOURLY, day=day(t))
        np.testing.assert_allclose(to_host(out.score), ref[t], rtol=RTOL, atol=1e-12)


def run_forecast(xp: ModuleType, data: np.ndarray[Any, Any], season: int = 24,
                 spaced_s: float = 0.0) -> tuple[list[Any], Any, Any]:
    """One-step predictions, then a 30-interval forecast with its high end. ``spaced_s``:
    intervals that far apart, placed on the profile read as a line (``past``); else one
    interval per bucket, as steps."""
    state = new_forecast_state(xp, data.shape[1], season=season)
    preds = []
    for t, row in enumerate(data):
        bucket, past = (profile_place((t + 0.5) * spaced_s, 86400 / season, season)
                        if spaced_s else (t, 0.0))
        preds.append(to_host(forecast_step(xp, state, xp.asarray(row), bucket, HOURLY,
                                           day(t), past)).copy())
    if season == 24:
        assert float(abs(to_host(state.week)).max()) > 0.1  # the weekday offsets learned
    counts = following(len(data) % season, 30, season)
    rest = forecast_rest(xp, state, counts, [0, 0, 0, 0, 0, 6, 24])
    return preds, to_host(rest.mean), to_host(rest.high)


@pytest.mark.parametrize(("season", "spaced_s"), [(24, 0.0), (24, 2700.0), (1, 2700.0)])
def test_forecast_step_is_the_same_on_every_backend(xp: ModuleType, season: int,
                                                    spaced_s: float) -> None:
    data = series(64, 200)
    ref, got = run_forecast(np, data, season, spaced_s), run_forecast(xp, data, season, spaced_s)
    for a, b in zip(ref[0], got[0], strict=True):
        np.testing.assert_allclose(b, a, rtol=RTOL)
    np.testing.assert_allclose(got[1], ref[1], rtol=RTOL)
    np.testing.assert_allclose(got[2], ref[2], rtol=RTOL)


def test_pacing_step_is_the_same_on_every_backend(xp: ModuleType) -> None:
    rng = np.random.default_rng(5)
    n = 100
    outs = {}
    for mod in (np, xp):
        state = new_pacing_state(mod, n)
        trail = []
        for _ in range(20):
            r = rng.uniform(-2, 10, n)  # some budgets with nothing left
            rest, young = rng.uniform(0, 20, n), rng.uniform(0, 100, n)
            rest[:20] = young[:20] = 0.0  # grown, nothing more forecast: the burst reserve
            out = pacing_step(mod, state, mod.asarray(r), mod.asarray(rest),
                              mod.asarray(rng.uniform(0, 1, n)),
                              mod.asarray(rng.uniform(0, 2, n)),
                              mod.asarray(rng.uniform(0, 0.5, n)),
                              mod.asarray(young), mod.asarray(rng.uniform(0, 3, n)))
            trail.append((to_host(out.pressure).copy(), to_host(out.reserve).copy()))
        outs[mod.__name__] = trail
        rng = np.random.default_rng(5)
    for (pa, ra), (pb, rb) in zip(outs["numpy"], outs[xp.__name__], strict=True):
        np.testing.assert_allclose(pb, pa, rtol=RTOL, atol=1e-12)
        np.testing.assert_allclose(rb, ra, rtol=RTOL, atol=1e-12)
        assert ((pb >= 0) & (pb <= 1)).all()


def test_batch_scorer_growth_keeps_every_scopes_state(xp: ModuleType) -> None:
    name = "numpy" if xp is np else "cupy"
    small = BatchScorer(name, capacity=2)
    big = BatchScorer(name, capacity=4096)
    data = series(300, 80)
    for t, row in enumerate(data):
        # scopes appear over time: the small scorer must grow several times
        live = {f"tenant:t{i}": float(v) for i, v in enumerate(row) if i < 4 * (t + 1)}
        a = small.step(live, {}, t % 24, day(t))
        b = big.step(live, {}, t % 24, day(t))
        assert a.scopes == b.scopes
        np.testing.assert_allclose(a.score, b.score, rtol=RTOL)
    assert small.capacity >= 300


def test_auto_falls_back_to_numpy_without_a_gpu() -> None:
    try:
        array_module("cupy")
    except BackendUnavailable:
        assert array_module("auto") is np
    else:
        assert array_module("auto").__name__ == "cupy"


def test_unknown_backend_is_a_clear_error() -> None:
    with pytest.raises(BackendUnavailable, match="unknown scoring backend 'tpu'"):
        array_module("tpu")


def test_the_scoring_package_needs_only_numpy() -> None:
    """A bare GPU machine (numpy, cupy, pytest) can run these tests and the benchmark."""
    import subprocess
    import sys

    code = ("import sys, prsm_events.scoring, prsm_events.scoring.checkpoint;"
            "heavy = {'pydantic', 'aiokafka', 'faust', 'orjson', 'clickhouse_connect', 'river'};"
            "print(sorted(heavy & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
    import prsm_events

    if importlib.util.find_spec("pydantic") is not None:  # not on a bare GPU machine
        assert prsm_events.Budget.__name__ == "Budget"  # the SDK's names still load on use
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        prsm_events.Nope  # noqa: B018
