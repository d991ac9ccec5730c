"""One contract for every detector (river style): graded scores, spikes rank high, and our
detector's single-series path equals the batch kernel's."""

from __future__ import annotations

import math

import numpy as np
import pytest

from prsm_events.anomaly import DETECTORS, SpendAnomalyDetector, ZScoreDetector
from prsm_events.scoring import BatchScorer
from prsm_events.scoring.anomaly_step import AnomalyParams


def noisy(n: int, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    return [10 + 3 * math.sin(i / 20) + float(rng.normal(0, 0.5)) for i in range(n)]


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_scores_are_graded_in_unit_interval_and_rank_a_spike_first(name: str) -> None:
    values = noisy(600)
    values[500] = 80.0
    detector = DETECTORS[name]()
    scores = [detector.update(x) for x in values]
    assert all(0.0 <= s <= 1.0 and math.isfinite(s) for s in scores)
    assert len(set(scores[200:])) > 10, "graded, not a binary alarm"
    assert int(np.argmax(scores[100:])) + 100 == 500


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_a_constant_series_never_crashes_or_alarms(name: str) -> None:
    detector = DETECTORS[name]()
    scores = [detector.update(5.0) for _ in range(300)]
    assert max(scores[100:]) <= max(scores[:100]) + 1e-9 or max(scores[100:]) < 0.5


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_same_input_same_scores(name: str) -> None:
    values = noisy(300, seed=4)
    a, b = DETECTORS[name](), DETECTORS[name]()
    assert [a.update(x) for x in values] == [b.update(x) for x in values]


def test_zscore_is_the_seeds_rule() -> None:
    d = ZScoreDetector()
    history = [10.0, 12.0, 8.0, 10.0, 12.0, 8.0]
    for x in history:
        d.update(x)
    mean, sd = float(np.mean(history)), float(np.std(history, ddof=1))
    d.update(mean + 4 * sd)
    assert d.last_z == pytest.approx(4.0)


def test_single_series_detector_equals_the_batch_scorer() -> None:
    data = np.array([noisy(400, seed=s) for s in range(5)]).T  # 400 steps x 5 scopes
    data[350, 2] += 40
    scorer = BatchScorer("numpy")
    batch = np.array([scorer.step({f"s{j}": float(v) for j, v in enumerate(row)}, {}, 0).score
                      for row in data])
    for j in range(5):
        single = SpendAnomalyDetector()
        np.testing.assert_allclose([single.update(float(x)) for x in data[:, j]], batch[:, j],
                                   rtol=1e-12)


@pytest.mark.parametrize("interval_s", [60.0, 300.0])
def test_a_timed_detector_is_set_up_as_the_worker_sets_up_its_scorer(interval_s: float) -> None:
    """Given times, the detector learns as the worker does at that scoring interval
    (``ForecastParams.every``): the NAB harness measures the worker's detector."""
    from datetime import UTC, datetime, timedelta

    from prsm_events.scoring.forecast_params import ForecastParams

    start = datetime(2026, 3, 2, 22, 0, tzinfo=UTC)
    values = noisy(600, seed=3)
    values[550] += 30
    scorer = BatchScorer("numpy", forecast=ForecastParams.every(interval_s))
    single = SpendAnomalyDetector()
    got, want = [], []
    for i, x in enumerate(values):
        at = start + timedelta(seconds=i * interval_s)
        got.append(single.update(x, at))
        want.append(float(scorer.step({"s": x}, {}, at.hour, at.weekday()).score[0]))
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert single.forecast.alpha == pytest.approx(ForecastParams.every(interval_s).alpha)
    assert single.forecast.alpha < ForecastParams().alpha  # 2% per 10 minutes, not per step


def test_one_incident_raises_one_top_score_not_a_run() -> None:
    """A sustained level shift scores high at its onset; its continuation scores lower."""
    values = noisy(800, seed=1)
    for i in range(600, 800):
        values[i] += 15.0
    d = SpendAnomalyDetector()
    scores = [d.update(x) for x in values]
    onset = max(scores[600:605])
    assert onset == max(scores[100:])  # the onset is the top score of the whole series
    assert max(scores[620:]) < 0.7 * onset


def _scores(values: list[float], **params: float) -> list[float]:
    d = SpendAnomalyDetector(AnomalyParams(**params))  # type: ignore[arg-type]
    return [d.update(x) for x in values]


def test_a_sustained_shift_without_an_outlier_is_caught_by_the_shift_signal() -> None:
    """A runaway loop that lifts spend by 3 noise deviations and stays there, never beyond
    the range seen: its onset stands out of the calm part through the average of the recent
    errors, not through any single point."""
    rng = np.random.default_rng(7)
    values = [10.0 + float(rng.normal(0, 1.0)) for _ in range(1500)]
    for i in range(1200, 1500):
        values[i] += 3.0
    values = [min(max(v, 6.0), 14.0) for v in values]
    values[1], values[2] = 6.0, 14.0  # the range is known from the start: no new extreme
    for params in ({}, {"shift_weight": 0.0}):
        scores = _scores(values, **params)
        onset, calm = max(scores[1200:1230]), max(scores[200:1200])
        if params:
            assert onset < calm + 0.05  # the point signal alone hardly tells them apart
        else:
            assert onset > calm + 0.05


def test_a_new_extreme_scores_high_and_bigger_departures_rank_higher() -> None:
    values = noisy(700, seed=2)
    top = max(values)
    values[500] = top + 0.2  # just above everything seen: a new extreme, modest departure
    values[650] = top + 30.0  # far above
    scores = _scores(values)
    plain = _scores(values, spatial_boost=0.0)
    assert scores[500] >= 0.95 > plain[500]
    assert scores[650] > scores[500]


def test_a_spike_at_the_same_hour_every_day_stops_being_news() -> None:
    """A nightly job spikes spend at 03:00 for ten days: on the eleventh the same spike at
    03:00 scores low, while the same spike at 15:00 still stands out; without the hour
    memory the 03:00 spike keeps scoring high."""
    from datetime import UTC, datetime, timedelta

    start = datetime(2026, 3, 2, tzinfo=UTC)
    steps = 11 * 288 + 200  # 5-minute intervals
    rng = np.random.default_rng(11)
    values = [10.0 + float(rng.normal(0, 0.5)) for _ in range(steps)]
    times = [start + timedelta(minutes=5 * i) for i in range(steps)]
    nightly = [d * 288 + 36 for d in range(11)]  # 03:00 each day
    for i in nightly:
        values[i] += 8.0
    afternoon = 10 * 288 + 180  # 15:00 on the eleventh day, as large
    values[afternoon] += 8.0
    values[1], values[2] = 0.0, 40.0  # the range is known: no new extremes

    def scores(**params: float) -> list[float]:
        d = SpendAnomalyDetector(AnomalyParams(**params))  # type: ignore[arg-type]
        return [d.update(x, t) for x, t in zip(values, times, strict=True)]

    with_memory, without = scores(), scores(hour_weight=0.0)
    calm = max(s for i, s in enumerate(with_memory[300:], 300)
               if i not in nightly and i != afternoon)
    assert with_memory[nightly[1]] > 0.7  # the second night is still news
    assert with_memory[nightly[-1]] < 0.5 and without[nightly[-1]] > 0.8
    assert with_memory[afternoon] > max(0.75, calm)
