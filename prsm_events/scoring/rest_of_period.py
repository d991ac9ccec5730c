"""Forecasts to the end of a budget period with a 90% interval, and the forecaster's check of
its own interval.

``forecast_rest(counts, days)`` sums the intervals still to come, given how many lie in each
bucket of the profile and on each weekday (``calendar_math``). Its 90% interval: the AR(3)'s
one-step error variance times the sum over the horizon of its squared cumulative impulse
response (``k`` for a residual that carries nothing; more where one interval's surprise
carries into the next ones) plus ``k^2`` times the level's own error (``1/n`` of it while the
level is a running mean of ``n`` intervals, ``alpha / (2 - alpha)`` after: a young scope's
interval is wide). ``check_step`` compares the forecaster's interval with what came, every
``CHECK_HORIZON_S``, and ``spread_scale`` widens or narrows it by what that learned.

>>> import numpy as np
>>> from prsm_events.scoring.calendar_math import following
>>> from prsm_events.scoring.forecast_state import new_forecast_state
>>> from prsm_events.scoring.forecast_step import forecast_step
>>> state = new_forecast_state(np, 1, season=4)
>>> for t in range(400):
...     _ = forecast_step(np, state, np.array([[1.0, 1.0, 5.0, 1.0][t % 4]]), t % 4)
>>> round(float(forecast_rest(np, state, following(3, 4, 4)).mean[0]), 1)
8.0
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from prsm_events.scoring.forecast_params import ForecastParams
from prsm_events.scoring.forecast_state import ForecastState
from prsm_events.scoring.residual_carry import (
    ar3_coefficients,
    innovation_variance,
    residual_carry,
)

__all__ = [
    "RestOfPeriod",
    "check_step",
    "forecast_ahead",
    "forecast_rest",
    "spread_scale",
]

Array = Any

Z90 = 1.6448536269514722


@dataclass(frozen=True)


class RestOfPeriod:
    mean: Array  # predicted spend over the next k intervals (>= 0)
    low: Array  # 90% interval
    high: Array


def forecast_rest(xp: ModuleType, state: ForecastState, counts: Any,
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
    if state.check is not None and calibrated and params.check_intervals > 0:
        excess = state.check.spread_excess
        half = half * spread_scale(xp, excess if rows is None else excess[rows], k, params)
    return RestOfPeriod(mean, xp.maximum(mean - half, 0.0), mean + half)


def forecast_ahead(xp: ModuleType, state: ForecastState, counts: Any, days: Any = None,
                   params: ForecastParams | None = None, profile: Array | None = None,
                   calibrated: bool = True) -> RestOfPeriod:
    """``forecast_rest`` of every scope of ``state`` at several horizons at once, the same
    for every scope: ``counts[h]`` (and ``days[h]``) of horizon ``h``; each result is shaped
    (scopes, horizons). The profile is weighed with one matrix product (no per-scope copy of
    the counts); ``profile``: the one to weigh (``state.season`` if not given;
    ``young_scopes.young_profile`` for scopes younger than a cycle).

    >>> import numpy as np
    >>> from prsm_events.scoring.calendar_math import following
    >>> from prsm_events.scoring.forecast_state import new_forecast_state
    >>> from prsm_events.scoring.forecast_step import forecast_step
    >>> state = new_forecast_state(np, 2, season=4)
    >>> for t in range(400):
    ...     _ = forecast_step(np, state, np.array([1.0, 2.0]) * [1, 1, 5, 1][t % 4], t % 4)
    >>> ahead = forecast_ahead(np, state, [following(3, 4, 4), following(3, 8, 4)])
    >>> np.round(ahead.mean, 1).tolist()
    [[8.0, 16.0], [16.0, 32.0]]
    >>> bool(np.allclose(ahead.high[:, 1], forecast_rest(np, state, following(3, 8, 4)).high))
    True
    """
    params = params or ForecastParams()
    c = xp.asarray(counts, dtype=xp.float64)
    k = c.sum(axis=-1)
    seasonal = (state.season if profile is None else profile).T @ c.T
    if days is not None:
        seasonal = seasonal + state.week.T @ xp.asarray(days, dtype=xp.float64).T
    ar = ar3_coefficients(xp, state)
    carry = residual_carry(xp, state, k, params, None, ar, horizons=True)
    mean = xp.maximum(k * state.level[:, None] + seasonal + carry.mean, 0.0)
    level_error = xp.maximum(params.alpha / (2.0 - params.alpha),
                             1.0 / xp.maximum(state.n[:, None], 1.0))
    variance = (innovation_variance(xp, state, params, ar)[:, None]
                * (carry.spread + k * k * level_error))
    half = Z90 * xp.sqrt(variance)
    if state.check is not None and calibrated and params.check_intervals > 0:
        half = half * spread_scale(xp, state.check.spread_excess[:, None], k, params)
    return RestOfPeriod(mean, xp.maximum(mean - half, 0.0), mean + half)


def _rest_moments(xp: ModuleType, state: ForecastState, counts: Any, days: Any,
                  params: ForecastParams,
                  rows: Array | None = None) -> tuple[Array, Array, Array]:
    """Mean and variance of the forecast total (before the self-check's scale), and the
    intervals it covers (``forecast_rest``'s arguments)."""
    c = xp.asarray(counts, dtype=xp.float64)
    k = c.sum(axis=-1)

    def pick(a: Array) -> Array:
        return a if rows is None else a[..., rows]

    seasonal = _weighted(xp, pick(state.season), c)
    if days is not None:
        seasonal = seasonal + _weighted(xp, pick(state.week),
                                        xp.asarray(days, dtype=xp.float64))
    ar = ar3_coefficients(xp, state)
    carry = residual_carry(xp, state, k, params, rows, ar)
    level, n = pick(state.level), pick(state.n)
    mean = xp.maximum(k * level + seasonal + carry.mean, 0.0)
    # the level is an estimate (a running mean while young, then an EWMA): its error is in
    # every interval ahead alike
    level_error = xp.maximum(params.alpha / (2.0 - params.alpha), 1.0 / xp.maximum(n, 1.0))
    variance = pick(innovation_variance(xp, state, params, ar))
    return mean, variance * (carry.spread + k * k * level_error), k


def _weighted(xp: ModuleType, profile: Array, c: Array) -> Array:
    """Per scope, the sum over buckets of ``c`` times the profile."""
    return (profile * c.T).sum(axis=0) if c.ndim == 2 else c @ profile


def check_step(xp: ModuleType, state: ForecastState, y: Array,
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
    >>> from prsm_events.scoring.forecast_state import new_forecast_state
    >>> from prsm_events.scoring.forecast_step import forecast_step
    >>> state = new_forecast_state(np, 1, season=1, check=True)
    >>> params = ForecastParams(check_intervals=10.0)
    >>> rng = np.random.default_rng(0)
    >>> for t in range(5000):
    ...     y = np.array([100.0 + 20.0 * (t // 50 % 2) + rng.normal()])
    ...     _ = forecast_step(np, state, y, 0, params)
    ...     check_step(np, state, y, lambda: ([10.0], None), params)
    >>> float(spread_scale(np, state.check.spread_excess, 10.0, params)[0]) < 0.8
    True
    """
    check = state.check
    if check is None:
        raise ValueError("this forecaster keeps no self-check (new_forecast_state(check=True))")
    left, total = check.check_left, check.check_sum
    under_way = left > 0
    total[...] = xp.where(under_way, total + y, total)
    left[...] = xp.where(under_way, left - 1.0, left)
    ended = under_way & (left <= 0) & (check.check_var > 0)  # nothing to learn from 0
    var = check.check_var
    z2 = (total - check.check_mean) ** 2 / xp.where(var > 0, var, 1.0)
    w = params.check_weight
    excess = check.spread_excess
    excess[...] = xp.where(ended, (1 - w) * excess + w * (xp.minimum(z2, 100.0) - 1.0), excess)
    start = (left <= 0) & (state.n > 0)
    if not bool(start.any()):
        return
    mean, variance, _ = _rest_moments(xp, state, *ahead(), params)
    check.check_mean[...] = xp.where(start, mean, check.check_mean)
    check.check_var[...] = xp.where(start, variance, check.check_var)
    total[...] = xp.where(start, 0.0, total)
    left[...] = xp.where(start, float(round(params.check_intervals)), left)


def spread_scale(xp: ModuleType, excess: Array, k: Array, params: ForecastParams) -> Array:
    """What the self-check scales a ``k``-interval forecast's interval by: the square root of
    the mean squared z-score it learned (held within [0.5, 3]) at its horizon, phased in
    linearly over the horizons short of it (the next interval's is the model's). Beyond its
    horizon an excess (errors wider than the model said) is taken to grow with the horizon,
    as a level that drifts away does (its variance grows with the square of the horizon, the
    model's only with the horizon); a check that found the model too wide keeps its scale."""
    ratio = xp.asarray(k, dtype=xp.float64) / max(params.check_intervals, 1.0)
    grow = xp.where(excess > 0, xp.maximum(ratio, 1.0), 1.0)
    scale = xp.sqrt(xp.clip(1.0 + excess * grow, 0.25, 9.0))
    reach = xp.minimum(ratio, 1.0)
    return 1.0 + (scale - 1.0) * reach
