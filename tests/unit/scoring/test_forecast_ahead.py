"""Forecasts of many scopes at shared horizons (``BatchScorer.ahead``: one matrix product)
equal the per-row forecasts (``BatchScorer.rest``), young scopes included; and a horizon
summed an ulp short of whole intervals keeps its carry."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prsm_events.scoring import BatchScorer
from prsm_events.scoring.calendar_math import profile_weights, weekday_counts
from prsm_events.scoring.forecast_params import ForecastParams
from prsm_events.scoring.forecast_state import new_forecast_state
from prsm_events.scoring.forecast_step import forecast_step
from prsm_events.scoring.residual_carry import residual_carry
from prsm_events.scoring.young_scopes import young_counts, young_profile

START = 1_767_225_600.0 + 3 * 86400  # a Sunday, 00:00 UTC
SCOPES = [f"tenant:t{i}" for i in range(6)]


def trained(ticks: int, seed: int) -> BatchScorer:
    """Scopes that joined at different times (some younger than a day)."""
    scorer = BatchScorer("numpy")
    rng = np.random.default_rng(seed)
    for t in range(ticks):
        mid = START + 60.0 * t + 30.0
        live = SCOPES[: 1 + t * len(SCOPES) // max(ticks, 1)]
        spend = dict(zip(live, rng.gamma(2.0, size=len(live)).tolist(), strict=True))
        scorer.step(spend, spend, int(mid // 3600) % 24, 3, (mid % 86400) / 86400)
    return scorer


@settings(max_examples=25, deadline=None)
@given(st.sampled_from([3, 40, 300, 1500]), st.integers(0, 3), st.integers(1, 5),
       st.booleans(), st.booleans())
def test_ahead_equals_rest_row_by_row(ticks: int, seed: int, steps: int, demand: bool,
                                      young: bool) -> None:
    scorer = trained(ticks, seed)
    now = START + 60.0 * ticks
    width = 3600.0 if demand else 1800.0
    buckets = 24 if demand else 48
    ends = [now + k * 7 * 60.0 for k in range(1, steps + 1)] + [now + 86400.0]
    counts = np.array([profile_weights(now, end, 60.0, width, buckets) for end in ends])
    days = np.array([weekday_counts(now, end, 60.0) for end in ends])
    mid = now - 30.0
    clock = ((int(mid // width) % buckets, width / 60.0, (mid % width) // 60.0 + 1)
             if young else None)
    got = scorer.ahead(SCOPES, counts, demand=demand, days=days, now=clock)
    want = scorer.rest([s for s in SCOPES for _ in ends], np.tile(counts, (len(SCOPES), 1)),
                       demand=demand, days=np.tile(days, (len(SCOPES), 1)), now=clock)
    shape = (len(SCOPES), len(ends))
    for name in ("mean", "low", "high"):
        assert getattr(got, name) == pytest.approx(
            np.reshape(getattr(want, name), shape), rel=1e-9, abs=1e-9), name
    assert got.learned.tolist() == want.learned[:: len(ends)].tolist()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0.0, 3000.0), min_size=1, max_size=6), st.integers(0, 7),
       st.sampled_from([1.0, 2.0, 30.0]), st.sampled_from([None, 1.0, 3.0]), st.integers(0, 9))
def test_the_young_profile_weighs_counts_as_young_counts_moves_them(
        learned: list[float], bucket: int, per: float, into: float | None, seed: int) -> None:
    rng = np.random.default_rng(seed)
    profile = rng.gamma(2.0, size=(8, len(learned)))
    counts = rng.integers(0, 5, size=(3, 8)).astype(float)
    moved = young_profile(np, profile, learned, bucket, per, into)
    for h in range(3):
        want = (young_counts(counts[h], learned, bucket, per, into) * profile.T).sum(axis=1)
        assert counts[h] @ moved == pytest.approx(want, rel=1e-12, abs=1e-12)


def test_a_horizon_an_ulp_short_of_whole_intervals_keeps_its_carry() -> None:
    state = new_forecast_state(np, 2, season=1)
    params = ForecastParams()
    rng = np.random.default_rng(0)
    level = 0.0
    for _ in range(500):
        level = 0.9 * level + rng.normal()
        forecast_step(np, state, np.full(2, 100.0 + 10.0 * level), 0, params)
    state.res[...] = 25.0  # a burst under way: the next intervals carry it
    # (young_counts moves counts between buckets: their sum may fall an ulp short)
    whole = residual_carry(np, state, np.array([58.0, 80.0]), params)
    short = residual_carry(np, state, np.array([np.nextafter(58.0, 0.0), 80.0]), params)
    assert float(whole.mean[0]) > 1.0
    assert float(short.mean[0]) == pytest.approx(float(whole.mean[0]))
    assert float(short.spread[0]) == pytest.approx(float(whole.spread[0]))


def test_ahead_on_rows_equals_ahead_on_names_and_rows_are_looked_up_in_slices(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``rows_of`` looks names up a slice at a time (new ones added, in order), and ``ahead``
    on those rows forecasts exactly as on the names; ``last_interval`` gives back what the
    last step learned per row (times its scale), 0 for a scope added after it."""
    monkeypatch.setattr("prsm_events.scoring.batch.GIL_SLICE", 3)
    scorer = BatchScorer("numpy")
    rng = np.random.default_rng(5)
    names = [f"tenant:t{i}" for i in range(10)]
    for _ in range(30):
        scorer.step({n: float(v) for n, v in zip(names[:8], rng.gamma(2.0, size=8),
                                                 strict=True)},
                    {names[0]: 1.5, names[3]: 0.5}, bucket=0)
    spend = {n: float(i + 1) for i, n in enumerate(names[:8])}
    scorer.step(spend, {names[3]: 0.5}, bucket=0, scale=2.0)
    asked = [names[9], names[2], names[8], names[2], names[7]]  # two new, one twice
    rows = scorer.rows_of(asked)
    assert rows.tolist() == [scorer.rows[n] for n in asked]
    assert rows[0] == 8 and rows[2] == 9  # added in the order asked, after the 8 known
    counts = [profile_weights(0.0, 7200.0, 60.0, 1800.0, 48)]
    by_rows, by_names = scorer.ahead(rows, counts), scorer.ahead(asked, counts)
    for name in ("mean", "low", "high", "learned"):
        assert np.array_equal(getattr(by_rows, name), getattr(by_names, name))
    assert scorer.last_interval(rows).tolist() == [0.0, 6.0, 0.0, 6.0, 16.0]
    assert scorer.last_interval(scorer.rows_of([names[3]]), demand=True).tolist() == [1.0]
