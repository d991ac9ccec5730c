"""Forecast counts for scopes younger than one cycle of the profile (host side)."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

__all__ = [
    "young_counts",
    "young_profile",
]


def young_counts(counts: Any, learned: Any, bucket: int, bucket_intervals: float,
                 into: float | None = None) -> Any:
    """Counts per bucket for forecasters that may not have seen every bucket yet (host).

    A scope younger than one cycle has learned only the buckets it has lived through. Its
    profile holds 0 for the others, so they would be forecast at its level alone, which is
    whatever the profile of the buckets it has seen did not absorb (a first hour that started
    with a burst left a level ten times the rate since, for the rest of the day). Their
    intervals are counted in the bucket that tells its rate now instead: the current one
    (``bucket``, of which ``into`` intervals have passed, all of it if not given) once the
    scope has lived at least half of it, else the one before. Scopes that have lived a whole
    cycle keep their counts.

    >>> young_counts([[1, 1, 1, 1]], [2.0], bucket=1, bucket_intervals=2.0).tolist()
    [[0.0, 4.0, 0.0, 0.0]]
    >>> young_counts([[1, 1, 1, 1]], [3.0], bucket=1, bucket_intervals=2.0).tolist()
    [[1.0, 3.0, 0.0, 0.0]]
    >>> young_counts([[1, 1, 1, 1]], [8.0], bucket=1, bucket_intervals=2.0).tolist()
    [[1.0, 1.0, 1.0, 1.0]]
    >>> young_counts([[2, 4, 4, 4]], [5.0], bucket=1, bucket_intervals=4.0, into=1).tolist()
    [[14.0, 0.0, 0.0, 0.0]]
    """
    c = np.asarray(counts, dtype=np.float64)
    n = np.asarray(learned, dtype=np.float64)
    c = np.broadcast_to(c, (len(n), c.shape[-1]))
    season = c.shape[-1]
    per = max(bucket_intervals, 1.0)
    young = np.flatnonzero(n < season * per)
    if not len(young):  # the usual case: every scope has lived a whole cycle
        return c
    n = n[young]
    here = np.minimum(n, per if into is None else float(into))  # intervals in this bucket
    before = np.ceil((n - here) / per)  # earlier buckets lived in
    settled = (here >= per / 2) | (before == 0)  # this bucket tells the rate now
    back = (bucket - np.arange(season)) % season  # buckets before the current one
    seen = (back[None, :] <= before[:, None]) & ((back[None, :] > 0) | settled[:, None])
    rate = np.where(settled, bucket % season, (bucket - 1) % season)
    rows = np.where(seen, c[young], 0.0)
    rows[np.arange(len(n)), rate] += np.where(seen, 0.0, c[young]).sum(axis=1)
    out = c.copy()
    out[young] = rows
    return out


def young_profile(xp: ModuleType, profile: Any, learned: Any, bucket: int,
                  bucket_intervals: float, into: float | None = None) -> Any:
    """The profile (buckets, scopes) that weighs any counts as ``young_counts`` would move
    them: a bucket a young scope has not lived through takes the value of the bucket that
    tells its rate now (``profile`` itself when every scope has lived a whole cycle). The
    same forecasts, without a copy of the counts per scope (``rest_of_period.forecast_ahead``).

    >>> import numpy as np
    >>> p = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [4.0, 4.0]])
    >>> counts = np.array([[1.0, 2.0, 3.0, 4.0]])
    >>> learned = [3.0, 8.0]
    >>> (counts @ young_profile(np, p, learned, bucket=1, bucket_intervals=2.0)).tolist()
    [[19.0, 30.0]]
    >>> [float(young_counts(counts, [n], 1, 2.0)[0] @ p[:, i]) for i, n in enumerate(learned)]
    [19.0, 30.0]
    """
    n = np.asarray(learned, dtype=np.float64)
    season = profile.shape[0]
    per = max(bucket_intervals, 1.0)
    young = np.flatnonzero(n < season * per)
    if not len(young):
        return profile
    n = n[young]
    here = np.minimum(n, per if into is None else float(into))
    before = np.ceil((n - here) / per)
    settled = (here >= per / 2) | (before == 0)
    back = (bucket - np.arange(season)) % season
    seen = (back[:, None] <= before[None, :]) & ((back[:, None] > 0) | settled[None, :])
    rate = np.where(settled, bucket % season, (bucket - 1) % season)
    every = len(young) == profile.shape[1]
    cols = xp.asarray(young, dtype=xp.int64)
    part = profile if every else profile[:, cols]
    at_rate = part[xp.asarray(rate, dtype=xp.int64), xp.arange(len(young))]
    moved = xp.where(xp.asarray(seen), part, at_rate[None, :])
    if every:
        return moved
    out = profile.copy()
    out[:, cols] = moved
    return out
