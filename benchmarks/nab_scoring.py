"""The Numenta Anomaly Benchmark's scoring method, written from its description.

Lavin & Ahmad, "Evaluating Real-time Anomaly Detection Algorithms - the Numenta Anomaly
Benchmark" (2015), and NAB v1.1's rules:

- the first 15% of each series (at most 750 rows) is probationary and not scored;
- a detection inside a labelled window earns ``tp * S(p) / S(-1)`` where ``p`` in [-1, 0) is
  its position relative to the window's right edge and ``S(p) = 2 / (1 + e^(5p)) - 1``; only
  the best (earliest) detection of a window counts; a window without one costs ``-fn``;
- a detection outside every window costs ``fp * S(d)`` where ``d`` is its distance past the
  previous window's right edge in units of that window's width (``-fp`` when no window
  precedes it, and ``S`` is -1 from ``d >= 3``);
- a detector's threshold is chosen once for the whole corpus, to maximise its total;
- the total is normalised so that never alarming scores 0 and alarming at the start of every
  window scores 100.

>>> from datetime import datetime, timedelta
>>> t = [datetime(2024, 1, 1) + timedelta(minutes=i) for i in range(100)]
>>> series = Series("demo/a.csv", t, [0.0] * 100, [(t[40], t[49])])
>>> perfect = [1.0 if i == 40 else 0.0 for i in range(100)]
>>> round(score_corpus({"perfect": [(series, perfect)]})["perfect"]["standard"].score, 1)
100.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

__all__ = ["PROFILES", "DetectorScore", "Profile", "Series", "scaled_sigmoid", "score_corpus"]

PROBATION_SHARE = 0.15
PROBATION_MAX_ROWS = 750


@dataclass(frozen=True)
class Profile:
    """Weights of an application profile (NAB's ``config/profiles.json``)."""

    tp: float
    fp: float
    fn: float


PROFILES: dict[str, Profile] = {
    "standard": Profile(tp=1.0, fp=0.11, fn=1.0),
    "reward_low_FP_rate": Profile(tp=1.0, fp=0.22, fn=1.0),
    "reward_low_FN_rate": Profile(tp=1.0, fp=0.11, fn=2.0),
}


@dataclass(frozen=True)
class Series:
    """One labelled series: ``name`` is ``<category>/<file>.csv``; windows are inclusive."""

    name: str
    timestamps: Sequence[datetime]
    values: Sequence[float]
    windows: Sequence[tuple[datetime, datetime]]


@dataclass(frozen=True)
class DetectorScore:
    """A detector's normalised score under one profile, at its best threshold."""

    score: float
    threshold: float
    raw: float
    tp: int
    fp: int
    fn: int


def scaled_sigmoid(position: float) -> float:
    """NAB's reward for a detection at ``position`` relative to a window's right edge.

    >>> round(scaled_sigmoid(-1.0), 5), scaled_sigmoid(0.0), scaled_sigmoid(3.0)
    (0.98661, 0.0, -1.0)
    """
    if position >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


@dataclass(frozen=True)
class _Point:
    score: float  # the detector's anomaly score (what thresholds cut)
    window: int  # global window id, or -1 outside every window
    reward: float  # unweighted NAB reward if this point alarms (tp part or fp part)


def _points(series: Series, scores: Sequence[float], first_window: int) -> list[_Point]:
    """Scorable points of one series (probation dropped), with their window and reward."""
    if len(scores) != len(series.timestamps):
        raise ValueError(f"{series.name}: {len(scores)} scores for {len(series.timestamps)} rows")
    ts = series.timestamps
    spans: list[tuple[int, int]] = []
    for start, end in series.windows:
        left = next((i for i, t in enumerate(ts) if t >= start), None)
        right = next((i for i in range(len(ts) - 1, -1, -1) if ts[i] <= end), None)
        if left is not None and right is not None and left <= right:
            spans.append((left, right))
    probation = min(math.floor(PROBATION_SHARE * len(ts)), PROBATION_SHARE * 5000)
    max_tp = scaled_sigmoid(-1.0)
    out: list[_Point] = []
    span_i = 0
    previous: tuple[int, int] | None = None
    for i, score in enumerate(scores):
        while span_i < len(spans) and spans[span_i][1] < i:
            previous = spans[span_i]
            span_i += 1
        inside = span_i < len(spans) and spans[span_i][0] <= i
        if inside:
            left, right = spans[span_i]
            width = right - left + 1
            reward = scaled_sigmoid(-(right - i + 1) / width) / max_tp
            window = first_window + span_i
        else:
            if previous is None:
                reward = -1.0
            else:
                width = previous[1] - previous[0] + 1
                reward = scaled_sigmoid(abs(previous[1] - i) / max(width - 1, 1))
            window = -1
        if i >= probation:
            out.append(_Point(float(score), window, reward))
    return out


def _best_threshold(points: list[_Point], windows: set[int], profile: Profile) -> DetectorScore:
    """Sweep every distinct score as the threshold (alarm iff score >= threshold)."""
    ranked = sorted(points, key=lambda p: p.score, reverse=True)
    best_in_window: dict[int, float] = {}
    fp_total = 0.0
    fp_count = 0
    missed = len(windows)
    tp_total = 0.0

    def total() -> float:
        return profile.tp * tp_total + profile.fp * fp_total - profile.fn * missed

    best = DetectorScore(0.0, math.inf, total(), 0, 0, missed)
    i = 0
    while i < len(ranked):
        threshold = ranked[i].score
        while i < len(ranked) and ranked[i].score == threshold:
            p = ranked[i]
            if p.window < 0:
                fp_total += p.reward
                fp_count += 1
            elif p.window not in best_in_window:
                best_in_window[p.window] = p.reward
                tp_total += p.reward
                missed -= 1
            elif p.reward > best_in_window[p.window]:
                tp_total += p.reward - best_in_window[p.window]
                best_in_window[p.window] = p.reward
            i += 1
        if total() > best.raw:
            best = DetectorScore(0.0, threshold, total(), len(best_in_window), fp_count, missed)
    return best


def score_corpus(
    results: dict[str, list[tuple[Series, Sequence[float]]]],
    profiles: dict[str, Profile] = PROFILES,
) -> dict[str, dict[str, DetectorScore]]:
    """Normalised NAB scores of each detector under each profile (null = 0, perfect = 100)."""
    out: dict[str, dict[str, DetectorScore]] = {}
    for detector, runs in results.items():
        points: list[_Point] = []
        windows: set[int] = set()
        next_window = 0
        for series, scores in runs:
            pts = _points(series, scores, next_window)
            points.extend(pts)
            windows.update(p.window for p in pts if p.window >= 0)
            next_window += len(series.windows)
        out[detector] = {}
        for name, profile in profiles.items():
            best = _best_threshold(points, windows, profile)
            null = -profile.fn * len(windows)
            perfect = profile.tp * len(windows)
            span = perfect - null
            normalised = 100.0 * (best.raw - null) / span if span else 0.0
            out[detector][name] = DetectorScore(
                normalised, best.threshold, best.raw, best.tp, best.fp, best.fn)
    return out
