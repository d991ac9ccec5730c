"""Spend forecasting for many scopes at once: level + seasonal profile, with an interval.

Per scope, the spend of each interval is modelled as ``level + season[b] + r`` where ``b`` is
the interval's place in the season (hour of day with hourly intervals, say): level and
seasonal profile are smoothed exponentially (additive Holt-Winters without trend, which budget
periods rarely need), and the residual ``r`` decays geometrically, ``r' = phi * r``, with
``phi`` learned online as the residual's lag-1 autocorrelation (so a burst that is under way
is expected to continue for a while, then fade). The one-step error variance gives the
interval. All scopes share one clock, so ``b`` is a scalar.

``forecast_rest(counts)`` sums the rest of the budget period, given how many intervals are
left in each bucket (``following(bucket, k, m)`` for the ``k`` consecutive intervals after
``bucket``; ``hourly_counts`` for a stretch of wall-clock time), with a 90% interval that
widens with ``sqrt(k)``.

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
           "hourly_counts", "new_forecast_state"]

Array = Any
Z90 = 1.6448536269514722


@dataclass(frozen=True)
class ForecastParams:
    """Smoothing weights; chosen on the forecasting benchmark (docs/benchmarks.md)."""

    alpha: float = 0.02  # level
    gamma: float = 0.05  # seasonal profile (per visit of a bucket)
    beta: float = 0.01  # error variance and residual autocorrelation


@dataclass(frozen=True)
class RestOfPeriod:
    mean: Array  # predicted spend over the next k intervals (>= 0)
    low: Array  # 90% interval
    high: Array


def new_forecast_state(xp: ModuleType, n: int, season: int) -> dict[str, Array]:
    """Zeroed state for ``n`` scopes with ``season`` buckets per cycle.

    The profile is stored bucket-major, ``(season, n)``: the bucket a step updates is one
    contiguous row (coalesced on a GPU)."""
    return {
        "n": xp.zeros(n, dtype=xp.float64),
        "level": xp.zeros(n, dtype=xp.float64),
        "err_var": xp.zeros(n, dtype=xp.float64),
        "res": xp.zeros(n, dtype=xp.float64),  # last residual after the update
        "res_var": xp.zeros(n, dtype=xp.float64),
        "res_cov": xp.zeros(n, dtype=xp.float64),  # E[r_t * r_(t-1)]
        "season": xp.zeros((season, n), dtype=xp.float64),
    }


def forecast_step(
    xp: ModuleType, state: dict[str, Array], y: Array, bucket: int,
    params: ForecastParams = ForecastParams(),
) -> Array:
    """Learn ``y`` (spend of the interval in ``bucket``); returns what was predicted for it."""
    column = state["season"][bucket % state["season"].shape[0]]
    if backend_name(xp) == "cupy":
        predicted = xp.empty_like(y)
        _kernel()(y, params.alpha, params.gamma, params.beta,
                  *(state[k] for k in _SCALARS), column, predicted)
        return predicted
    b = params.beta
    n, level, res = state["n"], state["level"], state["res"]
    first = n == 0
    base = level + column
    predicted = xp.where(first, y, base + _phi(xp, state) * res)
    err = y - predicted
    pre = y - base
    new_level = xp.where(first, y, params.alpha * (y - column) + (1 - params.alpha) * level)
    new_col = xp.where(first, 0.0, params.gamma * (y - new_level) + (1 - params.gamma) * column)
    state["err_var"][...] = xp.where(first, 0.0, (1 - b) * state["err_var"] + b * err * err)
    state["res_cov"][...] = xp.where(first, 0.0, (1 - b) * state["res_cov"] + b * pre * res)
    state["res_var"][...] = xp.where(first, 0.0, (1 - b) * state["res_var"] + b * pre * pre)
    res[...] = y - new_level - new_col
    column[...] = new_col
    level[...] = new_level
    n[...] = n + 1
    return predicted


_SCALARS = ("n", "level", "err_var", "res", "res_var", "res_cov")


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
    counts = [0] * 24
    if end <= start:
        return counts
    first_end = min(end, (start // 3600 + 1) * 3600)
    counts[int(start // 3600) % 24] += round((first_end - start) / interval_s)
    if first_end >= end:
        return counts
    last_start = max(first_end, end // 3600 * 3600)
    whole = round((last_start - first_end) / 3600)  # whole hours in between
    per_hour = round(3600 / interval_s)
    hour0 = int(first_end // 3600) % 24
    for b in range(24):
        counts[(hour0 + b) % 24] += per_hour * (whole // 24 + (1 if b < whole % 24 else 0))
    counts[int(last_start // 3600) % 24] += round((end - last_start) / interval_s)
    return counts


def forecast_rest(xp: ModuleType, state: dict[str, Array], counts: Any) -> RestOfPeriod:
    """Spend predicted over the intervals still to come: ``counts[b]`` of them in bucket
    ``b`` (one list for every scope, or one row per scope)."""
    season = state["season"]
    c = xp.asarray(counts, dtype=xp.float64)
    k = c.sum(axis=-1)
    seasonal = (season * c.T).sum(axis=0) if c.ndim == 2 else c @ season
    phi = _phi(xp, state)
    carry = state["res"] * phi * (1.0 - phi**k) / (1.0 - phi)
    mean = xp.maximum(k * state["level"] + seasonal + carry, 0.0)
    half = Z90 * xp.sqrt(state["err_var"] * k)
    return RestOfPeriod(mean, xp.maximum(mean - half, 0.0), mean + half)


KERNEL_BODY = r"""
const bool first = fn == 0.0;
const double prior_var = err_var;
const double phi = fmin(fmax(fres_cov / fmax(fres_var, 1e-300), 0.0), 0.98);
const double base = level + season;
const double pred = first ? y : base + phi * fres;
const double err = y - pred;
const double pre = y - base;
const double lvl = first ? y : alpha * (y - season) + (1.0 - alpha) * level;
const double col = first ? 0.0 : gamma * (y - lvl) + (1.0 - gamma) * season;
err_var = first ? 0.0 : (1.0 - beta) * err_var + beta * err * err;
fres_cov = first ? 0.0 : (1.0 - beta) * fres_cov + beta * pre * fres;
fres_var = first ? 0.0 : (1.0 - beta) * fres_var + beta * pre * pre;
fres = y - lvl - col;
season = col;
level = lvl;
fn = fn + 1.0;
"""
"""The forecaster's arithmetic for one scope in CUDA C (``spend_step`` fuses it with the
anomaly step). In: ``y``, ``alpha``, ``gamma``, ``beta``; state: ``fn``, ``level``,
``err_var``, ``fres``, ``fres_var``, ``fres_cov``, ``season``; defines ``pred`` (the forecast
of ``y``) and ``prior_var`` (the error variance before it)."""
KERNEL_PARAMS = ("float64 fn, float64 level, float64 err_var, float64 fres, float64 fres_var, "
                 "float64 fres_cov, float64 season")


KERNEL = ("float64 y, float64 alpha, float64 gamma, float64 beta",
          KERNEL_PARAMS + ", float64 predicted", KERNEL_BODY + "predicted = pred;\n",
          "prsm_forecast_step")
"""(in_params, out_params, operation, name) of the CuPy elementwise kernel."""


@cache
def _kernel() -> Any:
    import cupy  # only on the GPU path

    return cupy.ElementwiseKernel(*KERNEL)
