"""Spend forecasting for many scopes at once: level + daily and weekly profiles, with an interval.

Per scope, the spend of each interval is modelled as ``level + season[b] + week[d] + r``
where ``b`` is the interval's place in the season (hour of day, say) and ``d`` its day of the
week: level, daily profile and weekday offsets are smoothed exponentially (additive
Holt-Winters without trend, which budget periods rarely need, with a second, weekly season as
in Taylor's double-seasonal method, kept to one offset per weekday so that a scope costs 7
values, not 168). Where the data has no weekly pattern the offsets stay near zero. The
residual ``r`` decays geometrically, ``r' = phi * r``, with
``phi`` learned online as the residual's lag-1 autocorrelation (so a burst that is under way
is expected to continue for a while, then fade). The one-step error variance gives the
interval. All scopes share one clock, so ``b`` and ``d`` are scalars.

``forecast_rest(counts, days)`` sums the rest of the budget period, given how many intervals
are left in each bucket (``following(bucket, k, m)`` for the ``k`` consecutive intervals after
``bucket``; ``hourly_counts`` for a stretch of wall-clock time) and on each weekday
(``weekday_counts``), with a 90% interval that widens with ``sqrt(k)``.

>>> import numpy as np
>>> state = new_forecast_state(np, 1, season=4)
>>> for t in range(400):
...     _ = forecast_step(np, state, np.array([[1.0, 1.0, 5.0, 1.0][t % 4]]), t % 4)
>>> rest = forecast_rest(np, state, following(3, 4, 4))
>>> round(float(rest.mean[0]), 1)
8.0
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any

from prsm_events.scoring.backend import backend_name

__all__ = ["ForecastParams", "RestOfPeriod", "following", "forecast_rest", "forecast_step",
           "hourly_counts", "new_forecast_state", "weekday_counts", "weekday_of"]

Array = Any
Z90 = 1.6448536269514722


@dataclass(frozen=True)
class ForecastParams:
    """Smoothing weights; chosen on the forecasting benchmark (docs/benchmarks.md)."""

    alpha: float = 0.02  # level
    gamma: float = 0.05  # seasonal profile (per visit of a bucket)
    beta: float = 0.01  # error variance and residual autocorrelation
    weekly: float = 0.2  # weekday offsets (per day of that weekday)
    intervals_per_day: float = 1440.0  # spreads ``weekly`` over a day's intervals
    weekly_after_days: float = 7.0  # offsets learn once a scope has seen every weekday

    @property
    def delta(self) -> float:
        """Weight of one interval in its weekday's offset."""
        return float(1.0 - (1.0 - self.weekly) ** (1.0 / max(self.intervals_per_day, 1.0)))


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
        "season": xp.zeros((season, n), dtype=xp.float64),
        "week": xp.zeros((7, n), dtype=xp.float64),
    }


def forecast_step(
    xp: ModuleType, state: dict[str, Array], y: Array, bucket: int,
    params: ForecastParams = ForecastParams(), day: int | None = None,
) -> Array:
    """Learn ``y`` (spend of the interval in ``bucket`` on weekday ``day``, Monday = 0; no
    weekly offsets without it); returns what was predicted for it."""
    column = state["season"][bucket % state["season"].shape[0]]
    week, delta, after = weekday_row(state, day, params)
    if backend_name(xp) == "cupy":
        predicted = xp.empty_like(y)
        _kernel()(y, params.alpha, params.gamma, delta, after, params.beta,
                  *(state[k] for k in _SCALARS), column, week, predicted)
        return predicted
    b = params.beta
    n, level, res = state["n"], state["level"], state["res"]
    first = n == 0
    base = level + column + week
    predicted = xp.where(first, y, base + _phi(xp, state) * res)
    err = y - predicted
    pre = y - base
    new_level = xp.where(first, y,
                         params.alpha * (y - column - week) + (1 - params.alpha) * level)
    new_col = xp.where(first, 0.0,
                       params.gamma * (y - new_level - week) + (1 - params.gamma) * column)
    d = xp.where(n >= after, delta, 0.0)
    new_week = xp.where(first, 0.0, d * (y - new_level - new_col) + (1 - d) * week)
    state["err_var"][...] = xp.where(first, 0.0, (1 - b) * state["err_var"] + b * err * err)
    state["res_cov"][...] = xp.where(first, 0.0, (1 - b) * state["res_cov"] + b * pre * res)
    state["res_var"][...] = xp.where(first, 0.0, (1 - b) * state["res_var"] + b * pre * pre)
    res[...] = y - new_level - new_col - new_week
    column[...] = new_col
    week[...] = new_week
    level[...] = new_level
    n[...] = n + 1
    return predicted


_SCALARS = ("n", "level", "err_var", "res", "res_var", "res_cov")


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
                  days: Any = None) -> RestOfPeriod:
    """Spend predicted over the intervals still to come: ``counts[b]`` of them in bucket
    ``b`` and ``days[d]`` on weekday ``d`` (one list for every scope, or one row per scope;
    no weekday offsets without ``days``)."""
    c = xp.asarray(counts, dtype=xp.float64)
    k = c.sum(axis=-1)
    seasonal = _weighted(xp, state["season"], c)
    if days is not None:
        seasonal = seasonal + _weighted(xp, state["week"], xp.asarray(days, dtype=xp.float64))
    phi = _phi(xp, state)
    carry = state["res"] * phi * (1.0 - phi**k) / (1.0 - phi)
    mean = xp.maximum(k * state["level"] + seasonal + carry, 0.0)
    half = Z90 * xp.sqrt(state["err_var"] * k)
    return RestOfPeriod(mean, xp.maximum(mean - half, 0.0), mean + half)


def _weighted(xp: ModuleType, profile: Array, c: Array) -> Array:
    """Per scope, the sum over buckets of ``c`` times the profile."""
    return (profile * c.T).sum(axis=0) if c.ndim == 2 else c @ profile


KERNEL_BODY = r"""
const bool first = fn == 0.0;
const double prior_var = err_var;
const double phi = fmin(fmax(fres_cov / fmax(fres_var, 1e-300), 0.0), 0.98);
const double base = level + season + week;
const double pred = first ? y : base + phi * fres;
const double err = y - pred;
const double pre = y - base;
const double lvl = first ? y : alpha * (y - season - week) + (1.0 - alpha) * level;
const double col = first ? 0.0 : gamma * (y - lvl - week) + (1.0 - gamma) * season;
const double dl = fn >= week_after ? delta : 0.0;
const double wk = first ? 0.0 : dl * (y - lvl - col) + (1.0 - dl) * week;
err_var = first ? 0.0 : (1.0 - beta) * err_var + beta * err * err;
fres_cov = first ? 0.0 : (1.0 - beta) * fres_cov + beta * pre * fres;
fres_var = first ? 0.0 : (1.0 - beta) * fres_var + beta * pre * pre;
fres = y - lvl - col - wk;
season = col;
week = wk;
level = lvl;
fn = fn + 1.0;
"""
"""The forecaster's arithmetic for one scope in CUDA C (``spend_step`` fuses it with the
anomaly step). In: ``y``, ``alpha``, ``gamma``, ``delta``, ``week_after``, ``beta``; state:
``fn``, ``level``, ``err_var``, ``fres``, ``fres_var``, ``fres_cov``, ``season``, ``week``;
defines ``pred`` (the forecast of ``y``) and ``prior_var`` (the error variance before it)."""
KERNEL_PARAMS = ("float64 fn, float64 level, float64 err_var, float64 fres, float64 fres_var, "
                 "float64 fres_cov, float64 season, float64 week")


KERNEL = ("float64 y, float64 alpha, float64 gamma, float64 delta, float64 week_after, "
          "float64 beta",
          KERNEL_PARAMS + ", float64 predicted", KERNEL_BODY + "predicted = pred;\n",
          "prsm_forecast_step")
"""(in_params, out_params, operation, name) of the CuPy elementwise kernel."""


@cache
def _kernel() -> Any:
    import cupy  # only on the GPU path

    return cupy.ElementwiseKernel(*KERNEL)
