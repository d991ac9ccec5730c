"""Forecast counts for scopes younger than one cycle of the profile (host side)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "young_counts",
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
