"""The forecast harness's aggregation check runs on any series (its figures are for
docs/benchmarks.md; the real series are in ../shared/data)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.forecast import SeriesSpec, aggregated, ahead_errors

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
