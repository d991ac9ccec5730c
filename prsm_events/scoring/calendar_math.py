"""Calendar arithmetic for forecasts: where an interval falls in the daily profile and the
week, and how many intervals each bucket and weekday holds between two times (UTC).

``following(bucket, k, m)`` counts the ``k`` consecutive intervals after ``bucket``;
``hourly_counts`` a stretch of wall-clock time; ``profile_weights`` reads the profile as a
line through its buckets' middles (as the worker does) and ``profile_place`` finds where one
interval lies on that line; ``weekday_counts`` and ``weekday_of`` the days of the week.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "following",
    "hourly_counts",
    "profile_place",
    "profile_weights",
    "profile_weights_ahead",
    "weekday_counts",
    "weekday_of",
]

Array = Any


def following(bucket: int, intervals: int, season: int) -> list[int]:
    """Intervals per bucket in the ``intervals`` consecutive ones after ``bucket``.

    >>> following(2, 5, 4)
    [1, 1, 1, 2]
    """
    cycles, partial = divmod(max(int(intervals), 0), season)
    counts = [cycles] * season
    for j in range(partial):
        counts[(bucket + 1 + j) % season] += 1
    return counts


def hourly_counts(start: float, end: float, interval_s: float) -> list[int]:
    """Intervals of ``interval_s`` per UTC hour of day between two epoch times (24 buckets).

    >>> c = hourly_counts(0.0, 7200.0, 60.0)
    >>> c[0], c[1], sum(c)
    (60, 60, 120)
    >>> sum(hourly_counts(1800.0, 31 * 86400.0, 60.0)) == (31 * 86400 - 1800) // 60
    True
    """
    return _counts(start, end, interval_s, 3600.0, 24, 0)


def profile_weights(start: float, end: float, interval_s: float, width: float = 3600.0,
                    buckets: int = 24) -> list[float]:
    """What each bucket's value weighs in the intervals of ``interval_s`` between two epoch
    times when the profile is read as a line through the buckets' middles: an interval whose
    middle is a quarter past a middle takes 3/4 of that bucket and 1/4 of the next. The
    weights add up to the number of intervals; whole cycles are counted once and multiplied.

    >>> w = profile_weights(0.0, 7200.0, 1800.0)  # middles at 0:15, 0:45, 1:15, 1:45
    >>> w[23], w[0], w[1], w[2]
    (0.25, 1.75, 1.75, 0.25)
    >>> profile_weights(0.0, 7200.0, 3600.0)[:3]  # hour-long intervals: the steps
    [1.0, 1.0, 0.0]
    """
    cycle_s = width * buckets
    k = round((end - start) / interval_s)
    per_cycle = round(cycle_s / interval_s)
    whole = k // per_cycle if per_cycle >= 1 and per_cycle * interval_s == cycle_s else 0

    def weights(count: int) -> Array:
        b0, w1 = _on_line(start + (np.arange(count) + 0.5) * interval_s, width, buckets)
        return (np.bincount(b0, 1.0 - w1, buckets)
                + np.bincount((b0 + 1) % buckets, w1, buckets))

    out = weights(k - whole * per_cycle)  # the cycle repeats: its tail starts where it did
    if whole:
        out = out + whole * weights(per_cycle)
    return [float(v) for v in out]


def profile_weights_ahead(start: float, ends: Sequence[float], interval_s: float,
                          width: float = 3600.0, buckets: int = 24) -> Array:
    """``profile_weights(start, end, ...)`` for each of ``ends``, as the rows of an array:
    the intervals are placed on the line once, for the farthest end, and summed between
    consecutive ends (the sums differ from ``profile_weights``'s only in the order of their
    additions). An end before ``start`` counts nothing.

    >>> rows = profile_weights_ahead(0.0, [7200.0, 3600.0], 1800.0)
    >>> rows[0].tolist() == profile_weights(0.0, 7200.0, 1800.0)
    True
    >>> rows[1][[23, 0, 1]].tolist()  # 0:15 and 0:45
    [0.25, 1.5, 0.25]
    """
    cycle_s = width * buckets
    per_cycle = round(cycle_s / interval_s)
    repeats = per_cycle >= 1 and per_cycle * interval_s == cycle_s
    k = np.array([max(0, round((end - start) / interval_s)) for end in ends], dtype=np.int64)
    whole = k // per_cycle if repeats else np.zeros_like(k)
    tail = k - whole * per_cycle  # the cycle repeats: its tail starts where it did
    cycles = bool(whole.any())
    points = np.union1d(tail, [per_cycle] if cycles else [])
    longest = int(points[-1]) if len(points) else 0
    b0, w1 = _on_line(start + (np.arange(longest) + 0.5) * interval_s, width, buckets)
    segment = np.searchsorted(points, np.arange(longest), side="right") * buckets
    size = len(points) * buckets
    sums = (np.bincount(segment + b0, 1.0 - w1, size)
            + np.bincount(segment + (b0 + 1) % buckets, w1, size))
    prefix = np.cumsum(sums.reshape(len(points), buckets), axis=0)
    rows = prefix[np.searchsorted(points, tail)] if len(points) else np.zeros((0, buckets))
    if cycles:
        rows = rows + whole[:, None] * prefix[np.searchsorted(points, per_cycle)]
    return rows


def profile_place(t: float, width: float = 3600.0, buckets: int = 24) -> tuple[int, float]:
    """Where an interval whose middle is the epoch time ``t`` lies in a profile of
    ``buckets`` of ``width`` seconds read as a line through their middles: the bucket whose
    middle it follows and how far it is toward the next one's (``forecast_step``'s
    ``bucket`` and ``past``; the reading ``profile_weights`` sums).

    >>> profile_place(900.0, 1800.0, 48), profile_place(2700.0, 1800.0, 48)  # 0:15, 0:45
    ((0, 0.0), (1, 0.0))
    >>> profile_place(1800.0, 1800.0, 48), profile_place(300.0, 1800.0, 48)  # 0:30, 0:05
    ((0, 0.5), (47, 0.6666666666666666))
    """
    bucket, past = _on_line(np.float64(t), width, buckets)
    return int(bucket), float(past)


def _on_line(t: Any, width: float, buckets: int) -> tuple[Any, Any]:
    """For times ``t`` (one or an array): the bucket whose middle each follows on the line
    through the buckets' middles, and how far toward the next one's, in [0, 1)."""
    past = (t % (width * buckets)) / width - 0.5  # buckets past the first one's middle
    low = np.floor(past)
    return low.astype(np.int64) % buckets, past - low


def weekday_of(t: float) -> int:
    """UTC weekday (Monday = 0) of an epoch time.

    >>> weekday_of(0.0), weekday_of(1_767_571_200.0)  # 1970-01-01 (Thu), 2026-01-05 (Mon)
    (3, 0)
    """
    return (int(t // 86400) + 3) % 7


def weekday_counts(start: float, end: float, interval_s: float) -> list[int]:
    """Intervals of ``interval_s`` per UTC weekday (Monday = 0) between two epoch times.

    >>> weekday_counts(0.0, 86400.0 * 1.5, 3600.0)  # 1970-01-01 was a Thursday
    [0, 0, 0, 24, 12, 0, 0]
    """
    return _counts(start, end, interval_s, 86400.0, 7, 3)


def _counts(start: float, end: float, interval_s: float, width: float, buckets: int,
            shift: int) -> list[int]:
    """Intervals per bucket of ``width`` seconds, cycling through ``buckets`` (the bucket of
    epoch 0 is ``shift``)."""
    counts = [0] * buckets

    def at(t: float) -> int:
        return (int(t // width) + shift) % buckets

    if end <= start:
        return counts
    first_end = min(end, (start // width + 1) * width)
    counts[at(start)] += round((first_end - start) / interval_s)
    if first_end >= end:
        return counts
    last_start = max(first_end, end // width * width)
    whole = round((last_start - first_end) / width)  # whole buckets in between
    per_bucket = round(width / interval_s)
    b0 = at(first_end)
    for b in range(buckets):
        counts[(b0 + b) % buckets] += per_bucket * (whole // buckets + (b < whole % buckets))
    counts[at(last_start)] += round((end - last_start) / interval_s)
    return counts
