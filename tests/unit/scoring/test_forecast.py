from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from prsm_events.scoring import (
    ForecastParams,
    following,
    forecast_rest,
    forecast_step,
    hourly_counts,
    weekday_counts,
)
from prsm_events.scoring.forecast_step import new_forecast_state


def daily(hours: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(hours)
    return 10 + 4 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 1, hours)


def test_learns_the_daily_profile_and_its_interval_covers_about_90_percent() -> None:
    y = daily(24 * 80)
    state = new_forecast_state(np, 1, season=24)
    covered = total = 0
    for t, v in enumerate(y):
        if t > 24 * 40:
            rest = forecast_rest(np, state, following((t - 1) % 24, 1, 24))
            covered += int(rest.low[0] <= v <= rest.high[0])
            total += 1
        forecast_step(np, state, np.array([v]), t % 24)
    assert 0.80 <= covered / total <= 0.97
    truth = 10 + 4 * np.sin(2 * np.pi * np.arange(24 * 80, 24 * 81) / 24)
    rest = forecast_rest(np, state, following((24 * 80 - 1) % 24, 24, 24))
    assert abs(rest.mean[0] - truth.sum()) < 0.05 * truth.sum()


def test_a_burst_under_way_is_expected_to_continue_then_fade() -> None:
    state = new_forecast_state(np, 1, season=1)
    rng = np.random.default_rng(1)
    for v in [*(1 + 0.1 * rng.normal(size=300)), 3.0, 3.0, 3.0, 3.0, 3.0]:
        forecast_step(np, state, np.array([v]), 0)
    next_one = forecast_rest(np, state, [1]).mean[0]
    far = forecast_rest(np, state, [200]).mean[0] - forecast_rest(np, state, [199]).mean[0]
    assert next_one > 2.5 and far < next_one - 0.5  # far ahead: faded toward the level


def test_hourly_counts_cover_a_period_end() -> None:
    counts = hourly_counts(3600 * 22.5, 3600 * 24, 60.0)
    assert counts[22] == 30 and counts[23] == 60 and sum(counts) == 90


def _walk(start: float, end: float, interval_s: float, width: float, buckets: int,
          shift: int = 0) -> list[int]:
    """Intervals per bucket, counted bucket by bucket (the reference for the closed forms)."""
    counts = [0] * buckets
    t = start
    while t < end:
        stop = min(end, (t // width + 1) * width)
        counts[(int(t // width) + shift) % buckets] += round((stop - t) / interval_s)
        t = stop
    return counts


def _aligned(start_min: int, span_min: int, interval_s: float) -> tuple[float, float]:
    """A stretch of time whose ends fall on interval boundaries, as the worker's ticks do."""
    step = int(interval_s // 60)
    start = float(start_min // step * step * 60)
    return start, start + span_min // step * step * 60


@given(st.integers(0, 10_000), st.integers(0, 60 * 24 * 40), st.sampled_from([60.0, 600.0]))
def test_hourly_counts_equal_an_hour_by_hour_walk(start_min: int, span_min: int,
                                                  interval_s: float) -> None:
    start, end = _aligned(start_min, span_min, interval_s)
    assert hourly_counts(start, end, interval_s) == _walk(start, end, interval_s, 3600, 24)


def weekly(days: int, weekend: float, seed: int = 4) -> np.ndarray:
    """Hourly spend with a daily profile; weekends (days 5, 6) lower by ``weekend``."""
    t = np.arange(24 * days)
    return daily(24 * days, seed) - weekend * ((t // 24) % 7 >= 5)


def _day_ahead_errors(y: np.ndarray, with_days: bool) -> list[float]:
    """|error| of each whole-day forecast made at midnight, after four weeks."""
    params = ForecastParams(intervals_per_day=24)
    state = new_forecast_state(np, 1, season=24)
    errors = []
    for t, v in enumerate(y):
        d = (t // 24) % 7
        if t % 24 == 0 and t >= 24 * 28:
            days = [24 if i == d else 0 for i in range(7)] if with_days else None
            rest = forecast_rest(np, state, following(23, 24, 24), days)
            errors.append(abs(float(rest.mean[0]) - float(y[t:t + 24].sum())))
        forecast_step(np, state, np.array([v]), t % 24, params, d if with_days else None)
    return errors


def test_weekday_offsets_learn_a_weekly_pattern() -> None:
    y = weekly(7 * 10, weekend=5.0)
    with_days, without = _day_ahead_errors(y, True), _day_ahead_errors(y, False)
    assert np.mean(with_days) < 0.5 * np.mean(without)
    mondays = [e for i, e in enumerate(with_days) if i % 7 == 0]  # the day after a weekend
    assert np.mean(mondays) < 0.1 * 24 * 10


def test_without_a_weekly_pattern_the_offsets_stay_small_and_cost_little() -> None:
    y = weekly(7 * 10, weekend=0.0)
    with_days, without = _day_ahead_errors(y, True), _day_ahead_errors(y, False)
    assert np.mean(with_days) < 1.2 * np.mean(without)
    state = new_forecast_state(np, 1, season=24)
    for t, v in enumerate(y):
        forecast_step(np, state, np.array([v]), t % 24, ForecastParams(intervals_per_day=24),
                      (t // 24) % 7)
    assert float(np.abs(state["week"]).max()) < 0.1 * 10  # within 10% of the mean spend


@given(st.integers(0, 100_000), st.integers(0, 60 * 24 * 70), st.sampled_from([60.0, 600.0]))
def test_weekday_counts_equal_a_day_by_day_walk(start_min: int, span_min: int,
                                                interval_s: float) -> None:
    start, end = _aligned(start_min, span_min, interval_s)
    assert weekday_counts(start, end, interval_s) == _walk(start, end, interval_s, 86400, 7, 3)


def test_weekday_counts_know_the_calendar() -> None:
    monday = 1_767_571_200.0  # 2026-01-05 00:00 UTC, a Monday
    assert weekday_counts(monday, monday + 86400, 60.0) == [1440, 0, 0, 0, 0, 0, 0]


def test_weekday_offsets_wait_until_every_weekday_was_seen() -> None:
    y = weekly(8, weekend=5.0)
    params = ForecastParams(intervals_per_day=24)
    state = new_forecast_state(np, 1, season=24)
    for t, v in enumerate(y):
        if t == 24 * 7:
            assert not state["week"].any()  # a first week teaches level and daily profile
        forecast_step(np, state, np.array([v]), t % 24, params, (t // 24) % 7)
    assert state["week"].any()
