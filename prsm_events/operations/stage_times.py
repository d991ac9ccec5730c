"""How long requests spend in each stage of a worker: a histogram per stage (counts in fixed
buckets, Prometheus' ``le`` convention, and the sum), cheap enough to count every request.

A batch's stage counts once per request in it (``observe_batch``): each of its requests spent
that long there, one bucket increment for all of them (``prometheus_client.Histogram`` takes
one observation at a time, under a lock).

>>> times = StageTimes(("queued", "decided"))
>>> times.observe("queued", [0.002, 0.004, 0.2])
>>> times.observe_batch("decided", 0.003, 3)
>>> q = times.counts
>>> quantile_of(BOUNDS_S, q["queued"], 0.5), quantile_of(BOUNDS_S, q["decided"], 0.99)
(0.005, 0.003)
>>> times.as_dict()["queued"]["count"], round(times.as_dict()["decided"]["sum_s"], 6)
(3, 0.009)
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["BOUNDS_S", "StageTimes", "quantile_of"]

BOUNDS_S = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
            0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""The buckets' upper bounds (seconds); one more bucket holds what lies beyond."""


class StageTimes:
    """Requests' time in each of ``stages``."""

    def __init__(self, stages: Iterable[str], bounds: tuple[float, ...] = BOUNDS_S) -> None:
        self.stages = tuple(stages)
        self.bounds = bounds
        self.counts = {s: [0] * (len(bounds) + 1) for s in self.stages}
        self.sums = dict.fromkeys(self.stages, 0.0)

    def observe(self, stage: str, seconds: Iterable[float]) -> None:
        """Requests that each spent ``seconds[i]`` in ``stage`` (below 0, a clock's skew,
        counts as 0)."""
        counts, bounds, total = self.counts[stage], self.bounds, 0.0
        for s in seconds:
            s = s if s > 0.0 else 0.0
            counts[bisect_left(bounds, s)] += 1
            total += s
        self.sums[stage] += total

    def observe_batch(self, stage: str, seconds: float, requests: int) -> None:
        """``requests`` that spent ``seconds`` in ``stage`` together."""
        seconds = max(seconds, 0.0)
        self.counts[stage][bisect_left(self.bounds, seconds)] += requests
        self.sums[stage] += seconds * requests

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """Per stage (JSON): ``count`` (every request), ``sum_s``, and ``buckets``: [upper
        bound, requests at or below it] for each bound (cumulative)."""
        out: dict[str, dict[str, Any]] = {}
        for stage in self.stages:
            counts, running, buckets = self.counts[stage], 0, []
            for bound, n in zip(self.bounds, counts, strict=False):
                running += n
                buckets.append([bound, running])
            out[stage] = {"count": running + counts[-1], "sum_s": self.sums[stage],
                          "buckets": buckets}
        return out


def quantile_of(bounds: Sequence[float], counts: Sequence[int], q: float) -> float:
    """The upper bound of the bucket of ``counts`` (per bucket, not cumulative; one more than
    ``bounds``) that holds the ``q``-th quantile: inf beyond the last bound, NaN if empty.

    >>> quantile_of([0.001, 0.01], [1, 98, 1], 0.99), quantile_of([0.001, 0.01], [0, 0, 0], 0.5)
    (0.01, nan)
    """
    total = sum(counts)
    if total == 0:
        return math.nan
    wanted, running = q * total, 0
    for bound, c in zip((*bounds, math.inf), counts, strict=True):
        running += c
        if running >= wanted and c:
            return float(bound)
    return math.inf
