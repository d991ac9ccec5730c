"""The forecast harness's aggregation check runs on any series (its figures are for
docs/benchmarks.md; the real series are in ../shared/data)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.forecast import (
    Ours,
    SeriesSpec,
    aggregated,
    ahead_errors,
    coverage_bounds,
    evaluate,
)

START = 1_400_000_000.0 - 1_400_000_000.0 % 3600 + 27 * 60  # a grid that never meets :00


def five_minute_series(days: int = 5) -> SeriesSpec:
    t = np.arange(days * 288)
    rng = np.random.default_rng(0)
    values = 10 + 5 * np.sin(2 * np.pi * t / 288) + rng.normal(0, 0.5, len(t))
    return SeriesSpec("synthetic", [float(v) for v in values], 288, 288, step_s=300.0,
                      start=START)


def test_aggregating_sums_whole_groups_and_keeps_the_clock() -> None:
    spec = five_minute_series()
    hourly = aggregated(spec, 12)
    assert len(hourly.values) == len(spec.values) // 12 and hourly.step_s == 3600.0
    assert hourly.values[1] == pytest.approx(sum(spec.values[12:24]))
    assert hourly.start == spec.start
    assert hourly.season == hourly.period == 24


def test_errors_are_measured_at_the_same_instants_at_every_aggregation() -> None:
    spec = five_minute_series()
    # its grid never meets a whole hour: it is measured every hour from its start (the first
    # version forecast only at whole clock hours and left such series out, as NaN)
    fine, coarse = ahead_errors(spec), ahead_errors(aggregated(spec, 12))
    assert all(math.isfinite(e) and 0 <= e < 0.2 for e in fine + coarse)


def test_coverage_bounds_resample_whole_periods() -> None:
    steady = [(9, 10)] * 12  # 90% in every period: nothing to resample
    assert coverage_bounds([steady]) == pytest.approx((0.9, 0.9))
    mixed = [(10, 10), (8, 10)] * 6  # 90% overall, 100% and 80% by period
    low, high = coverage_bounds([mixed])
    assert low < 0.9 < high and coverage_bounds([mixed]) == (low, high)  # fixed seed
    wide = coverage_bounds([[(10, 10), (8, 10)]])  # the same mix over 2 periods: wider
    assert wide[0] < low and wide[1] > high
    # a group: the mean of its series' coverage (a series of all misses pulls it to 45%)
    group = coverage_bounds([steady, [(0, 10)] * 12])
    assert group == pytest.approx((0.45, 0.45))


def test_rest_of_period_outcomes_are_counted_per_period() -> None:
    spec = five_minute_series(days=4)
    scores = evaluate(spec, lambda: Ours(spec), stride=12)
    periods = scores["rest periods"]
    # two days scored (after the first two), every hour: 24 forecasts per period
    assert [shown for _, shown in periods] == [24, 24]
    assert sum(inside for inside, _ in periods) / 48 == pytest.approx(scores["cover rest"])
    assert scores["width rest"] > 0
