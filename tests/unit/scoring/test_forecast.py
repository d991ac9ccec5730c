from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from prsm_events.scoring import (
    ForecastParams,
    following,
    forecast_rest,
    forecast_step,
    hourly_counts,
    profile_weights,
    weekday_counts,
)
from prsm_events.scoring.calendar_math import profile_place, profile_weights_ahead
from prsm_events.scoring.forecast_state import CARRY_STATE
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


def _swinging(n: int, seed: int = 2) -> np.ndarray:
    """Around 100, a residual that swings back after a push (AR(2): 1.6, -0.7)."""
    rng = np.random.default_rng(seed)
    r = np.zeros(n)
    for t in range(2, n):
        r[t] = 1.6 * r[t - 1] - 0.7 * r[t - 2] + rng.normal()
    return 100.0 + r


def _block_errors(y: np.ndarray, k: int, damping: float) -> float:
    """Mean |error| of the forecast total of the next ``k`` intervals, after a warm-up."""
    state = new_forecast_state(np, 1, season=1)
    errors = []
    for t, v in enumerate(y):
        if t >= 1000 and t + k <= len(y):
            rest = forecast_rest(np, state, [k], params=ForecastParams(carry_damping=damping))
            errors.append(abs(float(rest.mean[0]) - float(y[t:t + k].sum())))
        forecast_step(np, state, np.array([v]), 0)
    return float(np.mean(errors))


def test_the_residual_carry_follows_a_swing_beyond_the_next_interval() -> None:
    y = _swinging(5000)
    # over the next 4 intervals: the damped AR(3) carry vs the next interval's carry only,
    # and vs no carry at all (the level and profile alone)
    carried, one_step = _block_errors(y, 4, 0.93), _block_errors(y, 4, 0.0)
    state = new_forecast_state(np, 1, season=1)
    errors = []
    for t, v in enumerate(y):
        if t >= 1000 and t + 4 <= len(y):
            errors.append(abs(4 * float(state.level[0]) - float(y[t:t + 4].sum())))
        forecast_step(np, state, np.array([v]), 0)
    assert carried < 0.8 * one_step and carried < 0.6 * float(np.mean(errors))


def test_the_interval_of_a_total_widens_with_how_long_the_residual_carries() -> None:
    # a residual that swings makes errors of consecutive intervals add up: a sqrt(k)
    # interval around the one-step error covered 14-23% of 8- and 30-interval totals here
    y = _swinging(6000, seed=3)
    for k in (1, 8, 30):
        state = new_forecast_state(np, 1, season=1)
        inside = []
        for t, v in enumerate(y):
            if t >= 1000 and t + k <= len(y):
                rest = forecast_rest(np, state, [k])
                inside.append(bool(rest.low[0] <= y[t:t + k].sum() <= rest.high[0]))
            forecast_step(np, state, np.array([v]), 0)
        assert 0.8 <= np.mean(inside) <= 0.95, k


def test_a_runaway_fit_cannot_run_the_carry_away() -> None:
    state = new_forecast_state(np, 2, season=1)
    # moments whose solution is explosive (a1 = 1.9, a2 = a3 = 0 for scope 0)
    state.acov0[...], state.acov1[...], state.acov2[...] = 1.0, 0.0, 0.0
    state.res_cov[...] = [1.9, 0.5]
    state.res[...], state.res2[...], state.res3[...] = 2.0, 1.0, 0.5
    state.level[...], state.n[...] = 10.0, 1e9  # long learned: trusted fully
    rest = forecast_rest(np, state, [100_000])
    # each forecast held within max(|last residuals|, 3 sd) = 3, damped 0.93 per interval
    bound = 3.0 / (1 - 0.93)
    assert np.isfinite(rest.mean).all()
    assert rest.mean[0] - 10.0 * 100_000 <= bound + 1e-9
    assert 0 < rest.mean[1] - 10.0 * 100_000 < rest.mean[0] - 10.0 * 100_000


def test_a_young_scope_does_not_take_its_first_interval_for_its_level() -> None:
    # a new scope's first minute carries a large request, then it spends 1 a minute: its
    # level is the running mean while young (it was 7.7 after 30 minutes, forgetting the
    # first value at 2% a minute, and forecast 449 for the next hour)
    state = new_forecast_state(np, 1, season=24)
    for t, v in enumerate([10.0] + [1.0] * 29):
        forecast_step(np, state, np.array([v]), t // 60)
    assert float(state.level[0]) < 2.5
    assert float(forecast_rest(np, state, following(0, 60, 24)).mean[0]) < 2.5 * 60


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


def _interpolated_walk(start: float, end: float, interval_s: float) -> list[float]:
    """Each interval's middle read off the line through the hours' middles, one by one."""
    weights = [0.0] * 24
    t = start
    while t < end - 1e-9:
        hours = (t + interval_s / 2) / 3600 - 0.5  # in units of hours past the first middle
        low = int(np.floor(hours))
        weights[low % 24] += 1.0 - (hours - low)
        weights[(low + 1) % 24] += hours - low
        t += interval_s
    return weights


@given(st.integers(0, 10_000), st.integers(0, 60 * 24 * 40),
       st.sampled_from([60.0, 600.0, 1800.0, 3600.0]))
def test_profile_weights_equal_an_interval_by_interval_walk(start_min: int, span_min: int,
                                                            interval_s: float) -> None:
    start, end = _aligned(start_min, span_min, interval_s)
    got = profile_weights(start, end, interval_s)
    assert got == pytest.approx(_interpolated_walk(start, end, interval_s), abs=1e-6)
    assert sum(got) == pytest.approx(round((end - start) / interval_s))


@given(st.floats(0, 2e9), st.lists(st.integers(-3, 60 * 24 * 20), max_size=6),
       st.sampled_from([2.0, 7.0, 60.0, 600.0, 3600.0, 90000.0]),
       st.sampled_from([(3600.0, 24), (1800.0, 48), (86400.0, 7)]))
def test_weights_ahead_to_several_ends_are_each_ends_weights(
        start: float, minutes: list[int], interval_s: float, profile: tuple[float, int]) -> None:
    """One pass to several ends (a tick's period ends, a rolling window's horizons) gives
    each end what ``profile_weights`` gives it alone, whole cycles included; an end before
    the start counts nothing."""
    width, buckets = profile
    ends = [start + 60.0 * m for m in minutes]
    rows = profile_weights_ahead(start, ends, interval_s, width, buckets)
    assert rows.shape == (len(ends), buckets)
    for row, end in zip(rows.tolist(), ends, strict=True):
        alone = profile_weights(start, end, interval_s, width, buckets) if end >= start else (
            [0.0] * buckets)
        assert row == pytest.approx(alone, rel=1e-12, abs=1e-9)


def test_hour_long_intervals_read_the_profile_as_steps() -> None:
    assert profile_weights(3600.0 * 5, 3600.0 * 8, 3600.0) == hourly_counts(
        3600.0 * 5, 3600.0 * 8, 3600.0)


def test_a_ramp_within_the_hour_is_forecast_closer_through_the_hours_middles() -> None:
    """Spend that climbs through the morning and falls in the evening, learned per minute in
    hour buckets: the next half hour read off a line through the hours' middles is closer than
    read off the hours' steps."""
    interval = 60.0
    minutes = np.arange(14 * 1440)
    y = 5 + 4 * np.sin(2 * np.pi * minutes / 1440) + np.random.default_rng(2).normal(0, 0.3,
                                                                                  len(minutes))
    params = ForecastParams.every(interval)
    state = new_forecast_state(np, 1, season=24)
    errors: dict[str, list[float]] = {"steps": [], "line": []}
    for t, v in enumerate(y):
        now = t * interval
        if t >= 7 * 1440 and t % 7 == 0 and t + 30 <= len(y):
            truth = float(y[t:t + 30].sum())
            for name, weights in (("steps", hourly_counts(now, now + 1800, interval)),
                                  ("line", profile_weights(now, now + 1800, interval))):
                rest = forecast_rest(np, state, weights, params=params)
                errors[name].append(abs(float(rest.mean[0]) - truth))
        forecast_step(np, state, np.array([v]), int((now + interval / 2) // 3600) % 24, params)
    assert np.mean(errors["line"]) < 0.8 * np.mean(errors["steps"])


def _half_hour_errors(y: np.ndarray, ways: dict[str, tuple[int, bool]],
                      learn_days: int) -> dict[str, float]:
    """Mean |error| of the next half hour's total forecast every 10 minutes after
    ``learn_days``, by forecasters with ``(buckets, learned as a line)``; every one reads its
    profile as a line through the buckets' middles."""
    interval = 600.0
    params = ForecastParams.every(interval)
    states = {name: new_forecast_state(np, 1, season=m) for name, (m, _) in ways.items()}
    errors: dict[str, list[float]] = {name: [] for name in ways}
    for t, v in enumerate(y):
        now = t * interval
        for name, (m, line) in ways.items():
            width = 86400.0 / m
            if t >= learn_days * 144 and t + 3 <= len(y):
                weights = profile_weights(now, now + 1800, interval, width, m)
                rest = forecast_rest(np, states[name], weights, params=params)
                errors[name].append(abs(float(rest.mean[0]) - float(y[t:t + 3].sum())))
            bucket, past = profile_place(now + interval / 2, width, m)
            forecast_step(np, states[name], np.array([v]), bucket, params, None,
                          past if line else 0.0)
    return {name: float(np.mean(e)) for name, e in errors.items()}


def test_a_profile_learned_as_a_line_forecasts_the_next_half_hour_closer() -> None:
    """A smooth day learned per 10 minutes in hour buckets: learned as steps and read as a
    line through the hours' middles, against learned as that line too (``past``)."""
    steps = np.arange(21 * 144)
    y = 5 + 4 * np.sin(2 * np.pi * steps / 144) ** 3 + np.random.default_rng(3).normal(
        0, 0.3, len(steps))
    mean = _half_hour_errors(y, {"steps": (24, False), "line": (24, True)}, 14)
    assert mean["line"] < 0.6 * mean["steps"], mean


def test_a_peak_shorter_than_an_hour_needs_half_hour_buckets() -> None:
    """A morning peak 40 minutes wide (nyc_taxi's rush hours are like it): the half-hour
    profile (the outlook forecaster's) follows it where the hourly one cannot."""
    hours = np.arange(35 * 144) / 6 % 24
    y = 5 + 8 * np.exp(-(((hours - 8.4) / 0.35) ** 2)) + np.random.default_rng(5).normal(
        0, 0.3, len(hours))
    mean = _half_hour_errors(y, {"hourly": (24, True), "half-hourly": (48, True)}, 28)
    assert mean["half-hourly"] < 0.9 * mean["hourly"], mean  # 0.83-0.86 over 5 seeds


def test_past_must_lie_between_two_buckets_middles() -> None:
    state = new_forecast_state(np, 1, season=24)
    with pytest.raises(ValueError, match=r"past must be in \[0, 1\), not 1.0"):
        forecast_step(np, state, np.array([1.0]), 3, past=1.0)
    assert not state.n.any()  # nothing learned


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
    # (the residual's carry recovers a little of the weekend for the forecaster without days:
    # 0.52 here, 0.48 with the AR(1) carry it replaced)
    assert np.mean(with_days) < 0.6 * np.mean(without)
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
    assert float(np.abs(state.week).max()) < 0.1 * 10  # within 10% of the mean spend


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
            assert not state.week.any()  # a first week teaches level and daily profile
        forecast_step(np, state, np.array([v]), t % 24, params, (t // 24) % 7)
    assert state.week.any()


def test_several_horizons_of_one_scope_equal_one_forecast_each() -> None:
    # the scorer runs a scope's carry once for all its horizons (rolling windows ask for 24)
    from prsm_events.scoring import BatchScorer

    scorer = BatchScorer("numpy")
    y = _swinging(600, seed=5)
    for t, v in enumerate(y):
        scorer.step({"a": float(v), "b": float(y[-1 - t])}, {}, bucket=(t // 60) % 24)
    horizons = [0, 1, 2, 5, 60, 500, 3000]
    counts = [following(19, k, 48) for k in horizons]  # the outlook profile's half hours
    asked = ["a", "b"] * len(horizons)
    together = scorer.rest(asked, [c for c in counts for _ in "ab"])
    for i, scope in enumerate(asked):
        alone = scorer.rest([scope], [counts[i // 2]])
        assert together.mean[i] == alone.mean[0] and together.high[i] == alone.high[0]
        assert together.learned[i] == alone.learned[0] == 600
    # the carry is part of what was compared: without it the short horizons differ
    for key in CARRY_STATE:
        getattr(scorer.outlook_fc, key)[...] = 0
    without = scorer.rest(asked, [c for c in counts for _ in "ab"])
    assert np.abs(without.mean[2:8] - together.mean[2:8]).min() > 1e-6


def test_the_scorers_spend_outlook_tells_the_halves_of_an_hour_apart() -> None:
    # $1 a minute from 08:00 to 08:30 each day, nothing else: the spend outlook (half hours)
    # forecasts it in the first half hour, not the second; the detector's and the demand
    # forecaster's hourly profiles cannot tell the halves apart
    from prsm_events.scoring import BatchScorer

    scorer = BatchScorer("numpy")
    for t in range(4 * 1440):
        minute = t % 1440
        spend = 1.0 if 480 <= minute < 510 else 0.0
        scorer.step({"a": spend}, {"a": spend}, bucket=minute // 60,
                    day_share=(minute + 0.5) / 1440)
    day = 4 * 86400.0

    def ahead(start_h: float, width: float, buckets: int) -> list[float]:
        return profile_weights(day + start_h * 3600, day + start_h * 3600 + 1800, 60.0,
                               width, buckets)

    first, second = scorer.rest(["a", "a"], [ahead(8, 1800, 48), ahead(8.5, 1800, 48)]).mean
    assert first > 20 and second < 5, (first, second)
    hourly = scorer.rest(["a", "a"], [ahead(8, 3600, 24), ahead(8.5, 3600, 24)], demand=True)
    assert abs(hourly.mean[0] - hourly.mean[1]) < 0.35 * hourly.mean[0]
    with pytest.raises(ValueError, match="counts for 24 buckets; the spend forecaster's "
                                         "profile has 48"):
        scorer.rest(["a"], [ahead(8, 3600, 24)])
    with pytest.raises(ValueError, match="counts for 48 buckets; the demand"):
        scorer.rest(["a"], [ahead(8, 1800, 48)], demand=True)


def test_the_outlook_interval_is_scaled_by_what_its_self_check_learned() -> None:
    # the scorer checks the outlook forecaster's 6-hour totals against its interval; what it
    # learned scales the interval (not the forecast), fully from the check's horizon on
    from prsm_events.scoring import BatchScorer
    from prsm_events.scoring.rest_of_period import spread_scale

    scorer = BatchScorer("numpy", forecast=ForecastParams.every(600.0))
    rng = np.random.default_rng(4)
    level = 5.0
    for t in range(30 * 144):  # 10-minute intervals; a level that wanders now and then
        level = max(0.5, level + (rng.normal(0, 1.5) if t % 144 == 0 else 0.0))
        minute = (t * 10 + 5) % 1440
        scorer.step({"a": level + rng.normal(0, 0.5)}, {}, minute // 60,
                    day_share=minute / 1440)
    excess = float(scorer.outlook_fc.check.spread_excess[0])
    assert excess > 0.0 and scorer.outlook_fc.check.check_left[0] > 0  # wider than it thought
    counts = [[1.0] * 48, [6.0] * 48]  # a day, and 6 days ahead
    scaled = scorer.rest(["a", "a"], counts)
    state = scorer.outlook_fc.map(lambda v: v[..., :1])
    raw = forecast_rest(np, state, counts, params=scorer.params.forecast, calibrated=False)
    np.testing.assert_array_equal(scaled.mean, raw.mean)
    ratio = (scaled.high - scaled.mean) / (raw.high - raw.mean)
    want = spread_scale(np, np.array([excess]), 48.0, scorer.params.forecast)[0]
    np.testing.assert_allclose(ratio, [want, want], rtol=1e-12)


def test_a_young_scopes_interval_is_as_wide_as_what_it_has_seen() -> None:
    # the moments start from 0: without dividing by the weight gathered, an interval after
    # 5 intervals was a fifth as wide as the same process's after 500
    rng = np.random.default_rng(8)
    widths = {}
    for n in (5, 500):
        state = new_forecast_state(np, 1, season=1)
        for v in 10 + rng.normal(0, 2, n):
            forecast_step(np, state, np.array([v]), 0)
        rest = forecast_rest(np, state, [1])
        widths[n] = float(rest.high[0] - rest.low[0])
    assert 0.5 < widths[5] / widths[500] < 2.0


@pytest.mark.parametrize("seen", [5, 30])
def test_a_young_scopes_interval_holds_its_rate_uncertain(seen: int) -> None:
    """After a few intervals the rate itself is a guess, and it is in every interval ahead:
    the total of the next 500 was inside the interval for 16% (5 seen) / 24% (30 seen) of
    scopes when only the intervals' own noise was counted."""
    rng = np.random.default_rng(11)
    scopes, ahead = 4000, 500
    rate = rng.uniform(5, 50, scopes)
    state = new_forecast_state(np, scopes, season=1)
    for _ in range(seen):
        forecast_step(np, state, rate + rng.normal(0, 3, scopes), 0)
    rest = forecast_rest(np, state, [ahead])
    truth = ahead * rate + rng.normal(0, 3 * np.sqrt(ahead), scopes)
    inside = np.mean((rest.low <= truth) & (truth <= rest.high))
    assert 0.8 <= inside <= 0.97


def test_the_level_forgets_as_fast_per_minute_whatever_the_interval() -> None:
    moved = {}
    for interval_s, steps in ((600.0, 6), (60.0, 60)):  # one hour of spend at 2 per 10 min
        state = new_forecast_state(np, 1, season=1)
        state.n[...], state.level[...] = 1e6, 1.0 * interval_s / 600  # an old scope
        params = replace(ForecastParams.every(interval_s), gamma=0.0)  # the level alone
        for _ in range(steps):
            forecast_step(np, state, np.array([2.0 * interval_s / 600]), 0, params)
        moved[interval_s] = float(state.level[0]) * 600 / interval_s
    assert moved[60.0] == pytest.approx(moved[600.0], rel=0.05)
