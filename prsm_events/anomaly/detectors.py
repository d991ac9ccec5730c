"""Online anomaly detectors with one interface: ``update(x)`` scores ``x``, then learns it.

Every score is graded in [0, 1] (higher is more anomalous) so that thresholds can be compared
and tuned; the three detectors:

- ``ZScoreDetector``: the seed's rule, a z-score against the whole history's mean and standard
  deviation (anomaly above 3 sigma, "high" above 5), graded as ``sigmoid(|z| - 3)``;
- ``HalfSpaceTreesDetector``: river's HalfSpaceTrees on min-max scaled values;
- ``SpendAnomalyDetector``: ours (``prsm_events.scoring.anomaly_step`` for one scope).

>>> d = ZScoreDetector()
>>> scores = [d.update(x) for x in [10, 11, 9, 10, 11, 9, 10, 40]]
>>> round(d.last_z, 1), scores[-1] > 0.99
(36.7, True)
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol

import numpy as np

from prsm_events.scoring.anomaly_step import AnomalyParams, new_anomaly_state
from prsm_events.scoring.forecast_params import TUNED_EVERY_S, ForecastParams
from prsm_events.scoring.forecast_step import new_forecast_state
from prsm_events.scoring.spend_step import spend_step

__all__ = ["DETECTORS", "Detector", "HalfSpaceTreesDetector", "SpendAnomalyDetector",
           "ZScoreDetector"]


class Detector(Protocol):
    def update(self, x: float, at: datetime | None = None) -> float:
        """The anomaly score of ``x`` (observed ``at``) in [0, 1] given the past; then learn
        ``x``."""
        ...


class ZScoreDetector:
    """z = |x - mean| / sd over the whole history (Welford)."""

    def __init__(self) -> None:
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.last_z = 0.0

    def update(self, x: float, at: datetime | None = None) -> float:
        if self.n >= 2:
            sd = math.sqrt(self.m2 / (self.n - 1))
            z = abs(x - self.mean) / sd if sd > 0 else (0.0 if x == self.mean else math.inf)
        else:
            z = 0.0
        self.last_z = z
        self.n += 1
        delta = x - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (x - self.mean)
        return 1.0 / (1.0 + math.exp(-(min(z, 700.0) - 3.0)))


class HalfSpaceTreesDetector:
    """river's ``HalfSpaceTrees`` behind a ``MinMaxScaler`` (its inputs must be in [0, 1])."""

    def __init__(self, seed: int = 42, **params: Any) -> None:
        try:
            from river import anomaly, compose, preprocessing
        except ImportError:
            raise ImportError("the HalfSpaceTrees baseline needs river: "
                              "pip install 'prsm-events[baselines]'") from None

        self.model = compose.Pipeline(
            preprocessing.MinMaxScaler(), anomaly.HalfSpaceTrees(seed=seed, **params))

    def update(self, x: float, at: datetime | None = None) -> float:
        features = {"x": x}
        score = float(self.model.score_one(features))
        self.model.learn_one(features)
        return score


class SpendAnomalyDetector:
    """Our detector for one series: the seasonal forecaster's one-step error, scored (the
    batch scorer runs the same two steps for many scopes). ``at`` picks the hour-of-day
    bucket of the forecaster's daily profile and the weekday offset; the spacing of the
    first two times sets how many intervals make a day and the level's weight per interval,
    as the worker sets them for its scoring interval (``ForecastParams.every``). Without
    ``at``, one bucket, no weekday offsets and the weights per interval as given."""

    def __init__(self, params: AnomalyParams | None = None,
                 forecast: ForecastParams | None = None,
                 timescale_s: float = TUNED_EVERY_S) -> None:
        self.params = params or AnomalyParams()
        self.forecast = forecast or ForecastParams()
        self.timescale_s = timescale_s
        self.state = new_anomaly_state(np, 1)
        self.forecaster = new_forecast_state(np, 1, season=24)
        self.last_sigma = 0.0
        self.last_expected = 0.0
        self.last_at: datetime | None = None
        self.spaced = False

    def update(self, x: float, at: datetime | None = None) -> float:
        if at is not None and not self.spaced:
            if self.last_at is not None and at > self.last_at:
                gap = (at - self.last_at).total_seconds()
                timed = ForecastParams.every(gap, self.timescale_s)
                self.forecast = replace(self.forecast, alpha=timed.alpha,
                                        intervals_per_day=timed.intervals_per_day)
                self.spaced = True
            self.last_at = at
        out = spend_step(np, self.forecaster, self.state, np.array([x], dtype=np.float64),
                         0 if at is None else at.hour, self.forecast, self.params,
                         None if at is None else at.weekday())
        self.last_sigma = float(out.sigma[0])
        self.last_expected = float(out.expected[0])
        return float(out.score[0])


DETECTORS: dict[str, type[Detector]] = {
    "zscore": ZScoreDetector,
    "halfspacetrees": HalfSpaceTreesDetector,
    "prsm": SpendAnomalyDetector,
}
