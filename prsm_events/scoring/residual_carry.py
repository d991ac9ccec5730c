"""The residual's AR(3) carry: what the daily and weekly profiles miss (a busy morning, a
burst under way), forecast from exponentially weighted moments of the last residuals.

The coefficients are solved when forecasting (Yule-Walker on a Toeplitz matrix, one
closed-form 3x3 solve per scope) and scaled by ``n / (n + carry_trust)`` while a scope is
young; the forecasts are damped by ``carry_damping`` per interval ahead, so a deviation is
expected to go on for a while and fade. The one-step prediction ``forecast_step`` returns (what
the anomaly detector compares with) keeps a plain AR(1) carry instead: a richer carry follows
an anomaly as it builds up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from prsm_events.scoring.forecast_params import ForecastParams
from prsm_events.scoring.forecast_state import ForecastState

__all__ = [
    "ResidualCarry",
    "ar3_coefficients",
    "carry_horizon",
    "innovation_variance",
    "residual_carry",
]

Array = Any


def ar3_coefficients(xp: ModuleType, state: ForecastState) -> tuple[Array, Array, Array]:
    """The residual's AR(3) coefficients per scope: the Toeplitz system of the residual's
    autocovariances solved by Cramer's rule for the cross-moments with the next error; scopes
    whose system is (nearly) singular get 0 (no carry).

    >>> import numpy as np
    >>> from prsm_events.scoring.forecast_state import new_forecast_state
    >>> from prsm_events.scoring.forecast_step import forecast_step
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
    c0, c1, c2 = state.acov0, state.acov1, state.acov2
    p1, p2, p3 = state.res_cov, state.pcov2, state.pcov3
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


def residual_carry(xp: ModuleType, state: ForecastState, k: Array,
                   params: ForecastParams, rows: Array | None = None,
                   ar: tuple[Array, Array, Array] | None = None,
                   horizons: bool = False) -> ResidualCarry:
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
    ``ar``: the coefficients if already solved. ``horizons``: ``k`` lists horizons asked of
    every scope; the results are shaped (scopes, horizons)."""
    trust = state.n / (state.n + params.carry_trust)
    a1, a2, a3 = (a * trust for a in (ar or ar3_coefficients(xp, state)))
    r1, r2, r3 = state.res, state.res2, state.res3
    bound = xp.maximum(xp.maximum(xp.abs(r1), xp.abs(r2)),
                       xp.maximum(xp.abs(r3), 3.0 * xp.sqrt(xp.maximum(state.acov0, 0.0))))
    full = xp.asarray(k, dtype=xp.float64)
    steps = int(min(float(full.max()) if full.size else 0.0,
                    carry_horizon(params.carry_damping)))
    # whole intervals: a count summed from moved parts (``young_counts``) may fall an ulp
    # short of one; a fraction beyond them counts as settled, like those past ``steps``
    k = xp.minimum(xp.floor(full + 1e-6), float(steps))
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
    if horizons:
        picked = [sums[int(j)] for j in k.tolist()]
        carry, spread, response = (xp.stack([p[i] for p in picked], axis=-1) for i in range(3))
    elif k.ndim == 0:
        carry, spread, response = sums[int(k)]
    else:
        carry = spread = response = xp.zeros_like(k)
        for j in wanted - {0}:
            at = k == j
            carry = xp.where(at, sums[j][0], carry)
            spread = xp.where(at, sums[j][1], spread)
            response = xp.where(at, sums[j][2], response)
    return ResidualCarry(carry, spread + xp.maximum(full - k, 0.0) * response * response)


def innovation_variance(xp: ModuleType, state: ForecastState, params: ForecastParams,
                        ar: tuple[Array, Array, Array] | None = None) -> Array:
    """Variance of the one-step error of the base plus the (trust-scaled) AR(3) carry: the
    base's error variance less what the carry explains (at least 5% of it). The moments
    are averages that start from 0, so a young scope's are divided by the weight they have
    gathered (``1 - (1 - beta)^(n - 1)``; 0 before a second interval)."""
    n = state.n
    trust = n / (n + params.carry_trust)
    a = ar or ar3_coefficients(xp, state)
    explained = (2.0 - trust) * trust * (a[0] * state.res_cov + a[1] * state.pcov2
                                         + a[2] * state.pcov3)
    gathered = 1.0 - (1.0 - params.beta) ** xp.maximum(n - 1.0, 0.0)
    variance = xp.maximum(state.res_var - explained, 0.05 * state.res_var)
    return variance / xp.where(gathered > 0, gathered, 1.0)


def carry_horizon(damping: float) -> int:
    """Intervals after which ``damping**j`` is below 0.1%.

    >>> carry_horizon(0.93), carry_horizon(0.0)
    (96, 1)
    """
    if damping <= 0.0:
        return 1
    return max(1, math.ceil(math.log(1e-3) / math.log(damping)))
