"""Spend forecasting for many scopes at once: level + daily and weekly profiles, with an interval.

Per scope, the spend of each interval is modelled as ``level + season[b] + week[d] + r``
where ``b`` is the interval's place in the season (hour of day, say) and ``d`` its day of the
week: level, daily profile and weekday offsets are smoothed exponentially (additive
Holt-Winters without trend, which budget periods rarely need, with a second, weekly season as
in Taylor's double-seasonal method, kept to one offset per weekday so that a scope costs 7
values, not 168). Where the data has no weekly pattern the offsets stay near zero. A young
scope's level is the running mean of what it has seen (weight ``1 / (n + 1)`` until that
falls below ``alpha``), not its first interval's spend slowly forgotten.

The residual ``r`` (what the profiles miss) keeps the moments its AR(3) carry is solved from
(``residual_carry``); the one-step prediction each step returns (what the anomaly detector
compares with) carries ``phi * r``, with ``phi`` the residual's lag-1 autocorrelation. All
scopes share one clock, so ``b`` and ``d`` are scalars. The profile can be a step per bucket
(each interval reads and learns its bucket's value) or a line through the buckets' middles
(``past``: an interval between two middles reads both values in proportion and shares its
error between them likewise; ``profile_place`` finds them for a time of day).

Forecasts over many intervals, with their interval, are in ``rest_of_period``; calendar
arithmetic in ``calendar_math``; the CUDA source in ``forecast_kernel``.

>>> import numpy as np
>>> state = new_forecast_state(np, 1, season=4)
>>> predicted = [float(forecast_step(np, state, np.array([[1.0, 1.0, 5.0, 1.0][t % 4]]),
...                                  t % 4)[0]) for t in range(400)]
>>> round(predicted[-2], 1), round(predicted[-1], 1)  # the profile learned: 5 then 1
(5.0, 1.0)
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from prsm_events.scoring.backend import backend_name
from prsm_events.scoring.forecast_kernel import KERNEL, KERNEL_BODY, KERNEL_PARAMS
from prsm_events.scoring.forecast_kernel import forecast_kernel as _kernel
from prsm_events.scoring.forecast_params import ForecastParams
from prsm_events.scoring.forecast_state import SCALARS, ForecastState, new_forecast_state

__all__ = [
    "FORECAST_BYTES_PER_SCOPE",
    "KERNEL",
    "KERNEL_BODY",
    "KERNEL_PARAMS",
    "SCALARS",
    "ForecastState",
    "forecast_step",
    "new_forecast_state",
    "weekday_row",
]

Array = Any
DEFAULTS = ForecastParams()


def forecast_step(
    xp: ModuleType, state: ForecastState, y: Array, bucket: int,
    params: ForecastParams = DEFAULTS, day: int | None = None, past: float = 0.0,
) -> Array:
    """Learn ``y`` (spend of the interval in ``bucket`` on weekday ``day``, Monday = 0; no
    weekly offsets without it); returns what was predicted for it.

    ``past``: how far the interval's middle lies past the middle of ``bucket`` toward the
    next bucket's, in [0, 1) (``profile_place``). The profile is then read as a line between
    the two buckets' values, and its error is shared between them in the same proportions; 0
    reads and learns ``bucket``'s value alone (a step per bucket)."""
    profile = state.season
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
                  *state.ordered(SCALARS), col0, spare, week, predicted)
        return predicted
    b = params.beta
    n, level, res = state.n, state.level, state.res
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
    res2, res3 = state.res2, state.res3
    for moment, value in ((state.err_var, err * err), (state.res_cov, pre * res),
                          (state.res_var, pre * pre), (state.acov0, res * res),
                          (state.acov1, res * res2), (state.acov2, res * res3),
                          (state.pcov2, pre * res2), (state.pcov3, pre * res3)):
        moment[...] = xp.where(first, 0.0, (1 - b) * moment + b * value)
    res3[...] = res2
    res2[...] = res
    res[...] = y - new_level - new_col - new_week
    col0[...] = new_col0
    week[...] = new_week
    level[...] = new_level
    n[...] = n + 1
    return predicted

FORECAST_BYTES_PER_SCOPE = 8 * (1 + 2 * (len(SCALARS) + 3) + 1)
"""Bytes one ``forecast_step`` kernel moves per scope: y in; the per-scope state, the two
profile values and the weekday offset in and out; the prediction out."""


def weekday_row(state: ForecastState, day: int | None,
                params: ForecastParams) -> tuple[Array, float, float]:
    """The weekday offsets a step reads and writes, their weight, and the intervals a scope
    must have learned before they move (row 0, unchanged, when the day is unknown)."""
    if day is None:
        return state.week[0], 0.0, 0.0
    return (state.week[day % 7], params.delta,
            params.weekly_after_days * params.intervals_per_day)


def _phi(xp: ModuleType, state: ForecastState) -> Array:
    """The residual's lag-1 autocorrelation, kept in [0, 0.98]."""
    ratio = state.res_cov / xp.maximum(state.res_var, 1e-300)
    return xp.clip(ratio, 0.0, 0.98)
