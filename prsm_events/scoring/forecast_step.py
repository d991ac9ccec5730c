"""Spend forecasting for many scopes at once: level + daily and weekly profiles, with an interval.

Per scope, the spend of each interval is modelled as ``level + season[b] + week[d] + r``
where ``b`` is the interval's place in the season (hour of day, say) and ``d`` its day of the
week: level, daily profile and weekday offsets are smoothed exponentially (additive
Holt-Winters without trend, which budget periods rarely need, with a second, weekly season as
in Taylor's double-seasonal method, kept to one offset per weekday so that a scope costs 7
values, not 168). Where the data has no weekly pattern the offsets stay near zero. A young
scope's level is the running mean of what it has seen (weight ``1 / (n + 1)`` until that
falls below ``alpha``), not its first interval's spend slowly forgotten.

The residual ``r`` (what the profiles miss: a busy morning, a burst under way) is forecast by
an AR(3) whose coefficients are solved, when forecasting, from exponentially weighted
moments of the last residuals (Yule-Walker on a Toeplitz matrix, one closed-form 3x3 solve per
scope); its forecasts are damped by ``carry_damping`` per interval ahead, so a deviation is
expected to go on for a while and fade. The one-step prediction each step returns (what the
anomaly detector compares with) keeps a plain AR(1) carry, ``phi * r`` with ``phi`` the
residual's lag-1 autocorrelation: a richer carry follows an anomaly as it builds up. All
scopes share one clock, so ``b`` and ``d`` are scalars. The profile can be a step per bucket
(each interval reads and learns its bucket's value) or a line through the buckets' middles
(``past``: an interval between two middles reads both values in proportion and shares its
error between them likewise; ``profile_place`` finds them for a time of day).

``forecast_rest(counts, days)`` sums the rest of the budget period, given how many intervals
are left in each bucket (``following(bucket, k, m)`` for the ``k`` consecutive intervals after
``bucket``; ``hourly_counts`` for a stretch of wall-clock time, or ``profile_weights`` to read
the hourly profile as a line through the hours' middles, as the worker does) and on each weekday
(``weekday_counts``), with a 90% interval: the AR(3)'s one-step error variance times the
sum over the horizon of its squared cumulative impulse response (``k`` for a residual that
carries nothing; more where one interval's surprise carries into the next ones) plus ``k^2``
times the level's own error (``1/n`` of it while the level is a running mean of ``n``
intervals, ``alpha / (2 - alpha)`` after: a young scope's interval is wide).

>>> import numpy as np
>>> state = new_forecast_state(np, 1, season=4)
>>> for t in range(400):
...     _ = forecast_step(np, state, np.array([[1.0, 1.0, 5.0, 1.0][t % 4]]), t % 4)
>>> rest = forecast_rest(np, state, following(3, 4, 4))
>>> round(float(rest.mean[0]), 1)
8.0
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any

import numpy as np

from prsm_events.scoring.backend import backend_name

__all__ = ["CHECK_HORIZON_S", "CHECK_STATE", "FORECAST_BYTES_PER_SCOPE", "TUNED_EVERY_S",
           "ForecastParams", "RestOfPeriod", "check_step", "following", "forecast_rest",
           "forecast_step", "hourly_counts", "new_check_state", "new_forecast_state",
           "per_step", "profile_place", "profile_weights", "spread_scale",
           "weekday_counts", "weekday_of"]

Array = Any
Z90 = 1.6448536269514722
TUNED_EVERY_S = 600.0
"""The step (10 minutes) at which the level weight and the pacing controller were tuned."""
CHECK_HORIZON_S = 6 * 3600.0
"""How far ahead a forecaster checks its own interval (``check_step``)."""


def per_step(weight: float, steps: float) -> float:
    """The weight per step that compounds to ``weight`` over ``steps`` steps.

    >>> round(per_step(0.2, 1440.0), 8), round(per_step(0.3, 1.0), 12)
    (0.00015495, 0.3)
    """
    return float(1.0 - (1.0 - weight) ** (1.0 / max(steps, 1e-12)))


@dataclass(frozen=True)
class ForecastParams:
    """Smoothing weights; chosen on the forecasting benchmark
    (docs/decisions/2026-11-28-forecasters.md)."""

    alpha: float = 0.02  # level (1 / (n + 1) before that: the running mean while young)
    gamma: float = 0.05  # seasonal profile (per visit of a bucket)
    beta: float = 0.01  # error variance and residual autocorrelation
    weekly: float = 0.2  # weekday offsets (per day of that weekday)
    intervals_per_day: float = 1440.0  # spreads ``weekly`` over a day's intervals
    weekly_after_days: float = 7.0  # offsets learn once a scope has seen every weekday
    carry_damping: float = 0.93  # the residual's forecast j intervals ahead is damped by this^j
    carry_trust: float = 10.0  # AR coefficients scaled by n / (n + this): young fits are noise
    check_intervals: float = CHECK_HORIZON_S / TUNED_EVERY_S  # a self-check's horizon
    check_weight: float = 0.1  # weight of one self-check in the interval's scale

    @classmethod
    def every(cls, interval_s: float, timescale_s: float = TUNED_EVERY_S) -> ForecastParams:
        """The defaults for a forecaster stepped every ``interval_s``: weekday offsets spread
        over a day's intervals, and the level's weight per ``timescale_s`` (where ``alpha``
        was chosen) spread over the intervals in it (the level forgets 2% per 10 minutes
        whether it learns every minute or every 10).

        >>> round(ForecastParams.every(600.0).alpha, 6), round(ForecastParams.every(60.0).alpha, 6)
        (0.02, 0.002018)
        """
        base = cls()
        return cls(alpha=per_step(base.alpha, timescale_s / interval_s),
                   intervals_per_day=86400.0 / interval_s,
                   check_intervals=CHECK_HORIZON_S / interval_s)

    def __post_init__(self) -> None:
        if not 0.0 <= self.carry_damping < 1.0:
            raise ValueError(f"carry_damping must be in [0, 1), not {self.carry_damping}")
        if self.carry_trust < 0.0:
            raise ValueError(f"carry_trust must be >= 0, not {self.carry_trust}")

    @property
    def delta(self) -> float:
        """Weight of one interval in its weekday's offset."""
        return per_step(self.weekly, max(self.intervals_per_day, 1.0))


@dataclass(frozen=True)
class RestOfPeriod:
    mean: Array  # predicted spend over the next k intervals (>= 0)
    low: Array  # 90% interval
    high: Array


def new_forecast_state(xp: ModuleType, n: int, season: int) -> dict[str, Array]:
    """Zeroed state for ``n`` scopes with ``season`` buckets per cycle and 7 weekdays.

    Profiles are stored bucket-major, ``(season, n)`` and ``(7, n)``: the bucket a step
    updates is one contiguous row (coalesced on a GPU)."""
    return {
        "n": xp.zeros(n, dtype=xp.float64),
        "level": xp.zeros(n, dtype=xp.float64),
        "err_var": xp.zeros(n, dtype=xp.float64),
        "res": xp.zeros(n, dtype=xp.float64),  # last residual after the update
        "res_var": xp.zeros(n, dtype=xp.float64),
        "res_cov": xp.zeros(n, dtype=xp.float64),  # E[r_t * r_(t-1)]
        **{k: xp.zeros(n, dtype=xp.float64) for k in CARRY_STATE},
        "season": xp.zeros((season, n), dtype=xp.float64),
        "week": xp.zeros((7, n), dtype=xp.float64),
    }


def forecast_step(
    xp: ModuleType, state: dict[str, Array], y: Array, bucket: int,
    params: ForecastParams = ForecastParams(), day: int | None = None, past: float = 0.0,
) -> Array:
    """Learn ``y`` (spend of the interval in ``bucket`` on weekday ``day``, Monday = 0; no
    weekly offsets without it); returns what was predicted for it.

    ``past``: how far the interval's middle lies past the middle of ``bucket`` toward the
    next bucket's, in [0, 1) (``profile_place``). The profile is then read as a line between
    the two buckets' values, and its error is shared between them in the same proportions; 0
    reads and learns ``bucket``'s value alone (a step per bucket)."""
    profile = state["season"]
    if not 0.0 <= past < 1.0:
        raise ValueError(f"past must be in [0, 1), not {past}")
    b0 = bucket % profile.shape[0]
    b1 = (b0 + 1) % profile.shape[0]
    if b1 == b0:
        past = 0.0  # one bucket: a flat profile
    col0, col1 = profile[b0], profile[b1]
    week, delta, after = weekday_row(state, day, params)
    if backend_name(xp) == "cupy":
        predicted = xp.empty_like(y)
        spare = col1 if b1 != b0 else xp.zeros_like(col0)  # never the same row twice
        _kernel()(y, params.alpha, params.gamma, delta, after, params.beta, past,
                  *(state[k] for k in SCALARS), col0, spare, week, predicted)
        return predicted
    b = params.beta
    n, level, res = state["n"], state["level"], state["res"]
    first = n == 0
    a_lvl = xp.maximum(params.alpha, 1.0 / (n + 1.0))  # young: the running mean
    column = (1.0 - past) * col0 + past * col1 if past else col0
    base = level + column + week
    predicted = xp.where(first, y, base + _phi(xp, state) * res)
    err = y - predicted
    pre = y - base
    new_level = xp.where(first, y,
                         a_lvl * (y - column - week) + (1 - a_lvl) * level)
    miss = params.gamma * (y - new_level - week - column)  # the profile's share of the error
    new_col0 = xp.where(first, 0.0, col0 + (1.0 - past) * miss)
    if past:
        col1[...] = xp.where(first, 0.0, col1 + past * miss)
        new_col = (1.0 - past) * new_col0 + past * col1
    else:
        new_col = new_col0
    d = xp.where(n >= after, delta, 0.0)
    new_week = xp.where(first, 0.0, d * (y - new_level - new_col) + (1 - d) * week)
    state["err_var"][...] = xp.where(first, 0.0, (1 - b) * state["err_var"] + b * err * err)
    state["res_cov"][...] = xp.where(first, 0.0, (1 - b) * state["res_cov"] + b * pre * res)
    state["res_var"][...] = xp.where(first, 0.0, (1 - b) * state["res_var"] + b * pre * pre)
    res2, res3 = state["res2"], state["res3"]
    for key, value in (("acov0", res * res), ("acov1", res * res2), ("acov2", res * res3),
                       ("pcov2", pre * res2), ("pcov3", pre * res3)):
        state[key][...] = xp.where(first, 0.0, (1 - b) * state[key] + b * value)
    res3[...] = res2
    res2[...] = res
    res[...] = y - new_level - new_col - new_week
    col0[...] = new_col0
    week[...] = new_week
    level[...] = new_level
    n[...] = n + 1
    return predicted


CARRY_STATE = ("res2", "res3", "acov0", "acov1", "acov2", "pcov2", "pcov3")
"""The residual AR(3)'s state: the two residuals before ``res``; E[r_t r_t], E[r_t r_(t-1)],
E[r_t r_(t-2)] over residuals after their update; E[pre r_(t-2)] and E[pre r_(t-3)] with ``pre``
the error of the step's base (``res_cov`` is the lag-1 one). A checkpoint written before they
existed loads with them at zero (learned again within a few hundred intervals)."""
SCALARS = ("n", "level", "err_var", "res", "res_var", "res_cov", *CARRY_STATE)
"""The per-scope (not per-bucket) state arrays, in the CUDA kernel's order."""
FORECAST_BYTES_PER_SCOPE = 8 * (1 + 2 * (len(SCALARS) + 3) + 1)
"""Bytes one ``forecast_step`` kernel moves per scope: y in; the per-scope state, the two
profile values and the weekday offset in and out; the prediction out."""


def weekday_row(state: dict[str, Array], day: int | None,
                params: ForecastParams) -> tuple[Array, float, float]:
    """The weekday offsets a step reads and writes, their weight, and the intervals a scope
    must have learned before they move (row 0, unchanged, when the day is unknown)."""
    if day is None:
        return state["week"][0], 0.0, 0.0
    return (state["week"][day % 7], params.delta,
            params.weekly_after_days * params.intervals_per_day)


def _phi(xp: ModuleType, state: dict[str, Array]) -> Array:
    """The residual's lag-1 autocorrelation, kept in [0, 0.98]."""
    ratio = state["res_cov"] / xp.maximum(state["res_var"], 1e-300)
    return xp.clip(ratio, 0.0, 0.98)


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


def forecast_rest(xp: ModuleType, state: dict[str, Array], counts: Any,
                  days: Any = None, params: ForecastParams | None = None,
                  rows: Array | None = None, calibrated: bool = True) -> RestOfPeriod:
    """Spend predicted over the intervals still to come: ``counts[b]`` of them in bucket
    ``b`` and ``days[d]`` on weekday ``d`` (one list for every scope, or one row per scope;
    no weekday offsets without ``days``). With ``rows``, row ``i`` of the counts is a forecast
    for scope ``rows[i]`` of the state (several forecasts of one scope share its carry). A
    state with a self-check (``check_step``) has its interval scaled by what that learned,
    unless not ``calibrated``."""
    params = params or ForecastParams()
    mean, variance, k = _rest_moments(xp, state, counts, days, params, rows)
    half = Z90 * xp.sqrt(variance)
    if "spread_excess" in state and calibrated and params.check_intervals > 0:
        excess = state["spread_excess"]
        half = half * spread_scale(xp, excess if rows is None else excess[rows], k, params)
    return RestOfPeriod(mean, xp.maximum(mean - half, 0.0), mean + half)


def _rest_moments(xp: ModuleType, state: dict[str, Array], counts: Any, days: Any,
                  params: ForecastParams,
                  rows: Array | None = None) -> tuple[Array, Array, Array]:
    """Mean and variance of the forecast total (before the self-check's scale), and the
    intervals it covers (``forecast_rest``'s arguments)."""
    c = xp.asarray(counts, dtype=xp.float64)
    k = c.sum(axis=-1)

    def pick(a: Array) -> Array:
        return a if rows is None else a[..., rows]

    seasonal = _weighted(xp, pick(state["season"]), c)
    if days is not None:
        seasonal = seasonal + _weighted(xp, pick(state["week"]),
                                        xp.asarray(days, dtype=xp.float64))
    ar = ar3_coefficients(xp, state)
    carry = residual_carry(xp, state, k, params, rows, ar)
    level, n = pick(state["level"]), pick(state["n"])
    mean = xp.maximum(k * level + seasonal + carry.mean, 0.0)
    # the level is an estimate (a running mean while young, then an EWMA): its error is in
    # every interval ahead alike
    level_error = xp.maximum(params.alpha / (2.0 - params.alpha), 1.0 / xp.maximum(n, 1.0))
    variance = pick(innovation_variance(xp, state, params, ar))
    return mean, variance * (carry.spread + k * k * level_error), k


CHECK_STATE = ("check_mean", "check_var", "check_sum", "check_left", "spread_excess")
"""A forecaster's check of its own interval (``check_step``): the forecast total of the next
``check_intervals`` and its variance, what has come of it so far, the intervals still to
come (0: no check under way), and the learned scale of the interval's variance, less 1."""


def new_check_state(xp: ModuleType, n: int) -> dict[str, Array]:
    """Zeroed self-check state for ``n`` scopes (an interval's scale of 1)."""
    return {name: xp.zeros(n, dtype=xp.float64) for name in CHECK_STATE}


def check_step(xp: ModuleType, state: dict[str, Array], y: Array,
               ahead: Callable[[], tuple[Any, Any]], params: ForecastParams) -> None:
    """The self-check of the interval: after ``forecast_step`` learned ``y``, add it to the
    check under way; when one ends, learn from how far its total fell from the forecast in
    the model's own standard deviations (``spread_excess``: the mean squared z-score, weight
    ``check_weight`` per check, less 1); scopes with no check under way start one over the
    ``check_intervals`` to come (``ahead()`` gives their counts and days, as for
    ``forecast_rest``; called only then). The intervals that ``forecast_rest`` gives are
    scaled by it (``spread_scale``).

    A level that holds for 50 intervals and then jumps: the jumps swell the one-step errors
    the model's interval is made of, while a 10-interval total mostly lies within one level,
    so the check learns to narrow it:

    >>> import numpy as np
    >>> state = new_forecast_state(np, 1, season=1) | new_check_state(np, 1)
    >>> params = ForecastParams(check_intervals=10.0)
    >>> rng = np.random.default_rng(0)
    >>> for t in range(5000):
    ...     y = np.array([100.0 + 20.0 * (t // 50 % 2) + rng.normal()])
    ...     _ = forecast_step(np, state, y, 0, params)
    ...     check_step(np, state, y, lambda: ([10.0], None), params)
    >>> float(spread_scale(np, state["spread_excess"], 10.0, params)[0]) < 0.8
    True
    """
    left, total = state["check_left"], state["check_sum"]
    under_way = left > 0
    total[...] = xp.where(under_way, total + y, total)
    left[...] = xp.where(under_way, left - 1.0, left)
    ended = under_way & (left <= 0) & (state["check_var"] > 0)  # nothing to learn from 0
    var = state["check_var"]
    z2 = (total - state["check_mean"]) ** 2 / xp.where(var > 0, var, 1.0)
    w = params.check_weight
    excess = state["spread_excess"]
    excess[...] = xp.where(ended, (1 - w) * excess + w * (xp.minimum(z2, 100.0) - 1.0), excess)
    start = (left <= 0) & (state["n"] > 0)
    if not bool(start.any()):
        return
    mean, variance, _ = _rest_moments(xp, state, *ahead(), params)
    state["check_mean"][...] = xp.where(start, mean, state["check_mean"])
    state["check_var"][...] = xp.where(start, variance, state["check_var"])
    total[...] = xp.where(start, 0.0, total)
    left[...] = xp.where(start, float(round(params.check_intervals)), left)


def spread_scale(xp: ModuleType, excess: Array, k: Array, params: ForecastParams) -> Array:
    """What the self-check scales a ``k``-interval forecast's interval by: the square root of
    the mean squared z-score it learned (held within [0.5, 3]) at its horizon and beyond,
    phased in linearly over the horizons short of it (the next interval's is the model's)."""
    scale = xp.sqrt(xp.clip(1.0 + excess, 0.25, 9.0))
    reach = xp.minimum(xp.asarray(k, dtype=xp.float64) / max(params.check_intervals, 1.0), 1.0)
    return 1.0 + (scale - 1.0) * reach


def ar3_coefficients(xp: ModuleType, state: dict[str, Array]) -> tuple[Array, Array, Array]:
    """The residual's AR(3) coefficients per scope: the Toeplitz system of the residual's
    autocovariances solved by Cramer's rule for the cross-moments with the next error; scopes
    whose system is (nearly) singular get 0 (no carry).

    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> state = new_forecast_state(np, 1, season=1)
    >>> r = np.zeros(4000)
    >>> for t in range(2, 4000):  # AR(2): r_t = 1.2 r_(t-1) - 0.5 r_(t-2) + noise
    ...     r[t] = 1.2 * r[t - 1] - 0.5 * r[t - 2] + rng.normal()
    >>> for t in range(4000):
    ...     _ = forecast_step(np, state, np.array([100.0 + r[t]]), 0,
    ...                       ForecastParams(alpha=0.001, beta=0.005))
    >>> a1, a2, a3 = (round(float(a[0]), 1) for a in ar3_coefficients(np, state))
    >>> a1, a2, abs(a3) < 0.2
    (1.2, -0.5, True)
    """
    c0, c1, c2 = state["acov0"], state["acov1"], state["acov2"]
    p1, p2, p3 = state["res_cov"], state["pcov2"], state["pcov3"]
    # [[c0, c1, c2], [c1, c0, c1], [c2, c1, c0]] a = p
    m00 = c0 * c0 - c1 * c1
    m01 = c1 * c0 - c1 * c2
    m02 = c1 * c1 - c0 * c2
    det = c0 * m00 - c1 * m01 + c2 * m02
    ok = (c0 > 0) & (det > 1e-9 * c0 * c0 * c0)
    inv = 1.0 / xp.where(ok, det, 1.0)
    a1 = (p1 * m00 - c1 * (p2 * c0 - c1 * p3) + c2 * (p2 * c1 - c0 * p3)) * inv
    a2 = (c0 * (p2 * c0 - c1 * p3) - p1 * m01 + c2 * (c1 * p3 - p2 * c2)) * inv
    a3 = (c0 * (c0 * p3 - c1 * p2) - c1 * (c1 * p3 - c2 * p2) + p1 * m02) * inv
    return xp.where(ok, a1, 0.0), xp.where(ok, a2, 0.0), xp.where(ok, a3, 0.0)


@dataclass(frozen=True)
class ResidualCarry:
    """What the residual adds to a forecast total, and how much it widens its interval."""

    mean: Array  # what the residual adds to the next k intervals
    spread: Array  # variance of their total's error, in one-step error variances (k if none)


def residual_carry(xp: ModuleType, state: dict[str, Array], k: Array,
                   params: ForecastParams, rows: Array | None = None,
                   ar: tuple[Array, Array, Array] | None = None) -> ResidualCarry:
    """What the residual adds to the next ``k`` intervals (``k`` per scope, or one for all;
    with ``rows``, per forecast of scope ``rows[i]``): the AR(3)'s forecasts (coefficients
    scaled by ``n / (n + carry_trust)``), the j-th damped by ``carry_damping**(j - 1)`` and
    each held within the larger of 3 standard deviations of the residual and its last three
    values (an unstable fit cannot run away); forecasts beyond the point where the damping
    leaves 0.1% are left out. The forecasts are run once per scope; the sums the horizons ask
    for are kept as they pass.

    ``spread``: a shock now moves the next intervals by the AR(3)'s impulse response (damped
    and held within 3 likewise), so the total's error variance is the one-step variance times
    the sum over the horizon of the squared cumulative responses (``k`` when the residual
    carries nothing); beyond the damping's horizon the response's sum is taken as settled.
    ``ar``: the coefficients if already solved."""
    trust = state["n"] / (state["n"] + params.carry_trust)
    a1, a2, a3 = (a * trust for a in (ar or ar3_coefficients(xp, state)))
    r1, r2, r3 = state["res"], state["res2"], state["res3"]
    bound = xp.maximum(xp.maximum(xp.abs(r1), xp.abs(r2)),
                       xp.maximum(xp.abs(r3), 3.0 * xp.sqrt(xp.maximum(state["acov0"], 0.0))))
    full = xp.asarray(k, dtype=xp.float64)
    steps = int(min(float(full.max()) if full.size else 0.0,
                    carry_horizon(params.carry_damping)))
    k = xp.minimum(full, float(steps))
    wanted = {int(v) for v in xp.unique(k).tolist()}
    zero = xp.zeros_like(r1)
    sums = {0: (zero, zero, zero + 1.0)}  # intervals -> (carry, spread, cumulative response)
    total, spread, weight = zero, zero, 1.0
    s1, s2, s3, response = zero + 1.0, zero, zero, zero + 1.0  # impulse response
    for j in range(1, steps + 1):
        spread = spread + response * response
        nxt = xp.minimum(xp.maximum(a1 * r1 + a2 * r2 + a3 * r3, -bound), bound)
        total = total + weight * nxt
        shock = xp.minimum(xp.maximum(a1 * s1 + a2 * s2 + a3 * s3, -3.0), 3.0)
        response = response + weight * shock
        if j in wanted:
            sums[j] = (total, spread, response)
        r1, r2, r3 = nxt, r1, r2
        s1, s2, s3 = shock, s1, s2
        weight *= params.carry_damping
    if rows is not None:
        sums = {j: tuple(v[rows] for v in vs) for j, vs in sums.items()}
    if k.ndim == 0:
        carry, spread, response = sums[int(k)]
    else:
        carry = spread = response = xp.zeros_like(k)
        for j in wanted - {0}:
            at = k == j
            carry = xp.where(at, sums[j][0], carry)
            spread = xp.where(at, sums[j][1], spread)
            response = xp.where(at, sums[j][2], response)
    return ResidualCarry(carry, spread + (full - k) * response * response)


def innovation_variance(xp: ModuleType, state: dict[str, Array], params: ForecastParams,
                        ar: tuple[Array, Array, Array] | None = None) -> Array:
    """Variance of the one-step error of the base plus the (trust-scaled) AR(3) carry: the
    base's error variance less what the carry explains (at least 5% of it). The moments
    are averages that start from 0, so a young scope's are divided by the weight they have
    gathered (``1 - (1 - beta)^(n - 1)``; 0 before a second interval)."""
    n = state["n"]
    trust = n / (n + params.carry_trust)
    a = ar or ar3_coefficients(xp, state)
    explained = (2.0 - trust) * trust * (a[0] * state["res_cov"] + a[1] * state["pcov2"]
                                         + a[2] * state["pcov3"])
    gathered = 1.0 - (1.0 - params.beta) ** xp.maximum(n - 1.0, 0.0)
    variance = xp.maximum(state["res_var"] - explained, 0.05 * state["res_var"])
    return variance / xp.where(gathered > 0, gathered, 1.0)


def carry_horizon(damping: float) -> int:
    """Intervals after which ``damping**j`` is below 0.1%.

    >>> carry_horizon(0.93), carry_horizon(0.0)
    (96, 1)
    """
    if damping <= 0.0:
        return 1
    return max(1, math.ceil(math.log(1e-3) / math.log(damping)))


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


def _weighted(xp: ModuleType, profile: Array, c: Array) -> Array:
    """Per scope, the sum over buckets of ``c`` times the profile."""
    return (profile * c.T).sum(axis=0) if c.ndim == 2 else c @ profile


KERNEL_BODY = r"""
const bool first = fn == 0.0;
const double prior_var = err_var;
const double phi = fmin(fmax(fres_cov / fmax(fres_var, 1e-300), 0.0), 0.98);
const double col_now = (1.0 - past) * season + past * season1;
const double base = level + col_now + week;
const double pred = first ? y : base + phi * fres;
const double err = y - pred;
const double pre = y - base;
const double al = fmax(alpha, 1.0 / (fn + 1.0));
const double lvl = first ? y : al * (y - col_now - week) + (1.0 - al) * level;
const double miss = gamma * (y - lvl - week - col_now);
const double col0 = first ? 0.0 : season + (1.0 - past) * miss;
const double col1 = first ? 0.0 : season1 + past * miss;
const double col = (1.0 - past) * col0 + past * col1;
const double dl = fn >= week_after ? delta : 0.0;
const double wk = first ? 0.0 : dl * (y - lvl - col) + (1.0 - dl) * week;
err_var = first ? 0.0 : (1.0 - beta) * err_var + beta * err * err;
fres_cov = first ? 0.0 : (1.0 - beta) * fres_cov + beta * pre * fres;
fres_var = first ? 0.0 : (1.0 - beta) * fres_var + beta * pre * pre;
facov0 = first ? 0.0 : (1.0 - beta) * facov0 + beta * fres * fres;
facov1 = first ? 0.0 : (1.0 - beta) * facov1 + beta * fres * fres2;
facov2 = first ? 0.0 : (1.0 - beta) * facov2 + beta * fres * fres3;
fpcov2 = first ? 0.0 : (1.0 - beta) * fpcov2 + beta * pre * fres2;
fpcov3 = first ? 0.0 : (1.0 - beta) * fpcov3 + beta * pre * fres3;
fres3 = fres2;
fres2 = fres;
fres = y - lvl - col - wk;
season1 = col1;
season = col0;
week = wk;
level = lvl;
fn = fn + 1.0;
"""
"""The forecaster's arithmetic for one scope in CUDA C (``spend_step`` fuses it with the
anomaly step). In: ``y``, ``alpha``, ``gamma``, ``delta``, ``week_after``, ``beta``,
``past``; state: ``fn``, ``level``, ``err_var``, ``fres``, ``fres_var``, ``fres_cov``, the
AR(3) moments (``fres2``, ``fres3``, ``facov0..2``, ``fpcov2``, ``fpcov3``), ``season`` and
``season1`` (the profile's values in the interval's bucket and the next; written in that
order, so that the bucket's own value wins should the two be one), ``week``; defines ``pred``
(the forecast of ``y``) and ``prior_var`` (the error variance before it)."""
KERNEL_PARAMS = ("float64 fn, float64 level, float64 err_var, float64 fres, float64 fres_var, "
                 "float64 fres_cov, float64 fres2, float64 fres3, float64 facov0, "
                 "float64 facov1, float64 facov2, float64 fpcov2, float64 fpcov3, "
                 "float64 season")
"""The kernel's per-scope state parameters (``season1`` and ``week`` follow them)."""


KERNEL = ("float64 y, float64 alpha, float64 gamma, float64 delta, float64 week_after, "
          "float64 beta, float64 past",
          KERNEL_PARAMS + ", float64 season1, float64 week, float64 predicted",
          KERNEL_BODY + "predicted = pred;\n",
          "prsm_forecast_step")
"""(in_params, out_params, operation, name) of the CuPy elementwise kernel."""


@cache
def _kernel() -> Any:
    import cupy  # only on the GPU path

    return cupy.ElementwiseKernel(*KERNEL)
