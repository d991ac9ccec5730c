"""One step of the spend anomaly detector for many scopes at once (NumPy or fused CuPy).

Per scope, from the new value ``x`` (spend in the last interval) and what the forecaster
predicted for it (``prsm_events.scoring.forecast_step``: level, time-of-day profile and the
decay of a burst under way):

1. residual: ``|x - predicted| / sd`` with ``sd`` the forecaster's one-step error deviation
   (bias-corrected, and with a floor of 0.1% of the range seen, so a flat series does not
   alarm on rounding; capped at ``cap``);
2. sigma: how far that residual sits above its own long-run mean, in its long-run standard
   deviations (the residual's history is the scope's notion of "normal");
3. score: sigma relative to a slowly decaying maximum of recent sigmas, mapped to [0, 1) as
   ``r / (1 + r)``. The first point of a new departure scores high; its continuation scores
   lower, so one incident raises one alarm. The score is unitless, so one threshold serves
   every scope.

The NumPy function is the reference; the CuPy path runs the same arithmetic as one fused
elementwise kernel (one read and one write of each state array per step).

>>> import numpy as np
>>> from prsm_events.scoring.forecast_step import forecast_step, new_forecast_state
>>> fc, state = new_forecast_state(np, 2, season=1), new_anomaly_state(np, 2)
>>> rng = np.random.default_rng(0)
>>> def step(x):
...     err_var = fc["err_var"].copy()
...     return anomaly_step(np, state, x, forecast_step(np, fc, x, 0), err_var)
>>> for _ in range(200):
...     out = step(1.0 + rng.normal(0, 0.1, 2))
>>> out = step(np.array([1.0, 9.0]))
>>> bool(out.score[1] > 0.9 > out.score[0])
True
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any

from prsm_events.scoring.backend import backend_name

__all__ = ["ANOMALY_STATE", "AnomalyOut", "AnomalyParams", "anomaly_step", "new_anomaly_state"]

ANOMALY_STATE = ("n", "lo", "hi", "res_mean", "res_var", "peak")
Array = Any


@dataclass(frozen=True)
class AnomalyParams:
    """Constants; the defaults were chosen on the NAB benchmark (docs/benchmarks.md)."""

    error_beta: float = 0.01  # the forecaster's error-variance weight (for bias correction)
    long_alpha: float = 0.0005  # weight of a new residual in its long-run mean/variance
    warmup: int = 50  # steps before a scope can score
    decay: float = 0.995  # per-step decay of the recent-sigma maximum
    cap: float = 50.0  # largest residual counted (keeps one outlier from ruling the history)
    spread_floor: float = 0.1  # least spread of the residual (a flat history still alarms)


@dataclass(frozen=True)
class AnomalyOut:
    score: Array  # [0, 1): comparable across scopes
    sigma: Array  # residual's long-run standard deviations above normal (>= 0)
    expected: Array  # the forecast the value was compared with


def new_anomaly_state(xp: ModuleType, n: int) -> dict[str, Array]:
    """Zeroed state for ``n`` scopes."""
    return {name: xp.zeros(n, dtype=xp.float64) for name in ANOMALY_STATE}


def anomaly_step(
    xp: ModuleType, state: dict[str, Array], x: Array, predicted: Array, err_var: Array,
    params: AnomalyParams | None = None,
) -> AnomalyOut:
    """Score ``x`` against ``predicted`` (and the forecaster's ``err_var`` before it learned
    ``x``), then learn it; updates ``state`` in place."""
    p = params or AnomalyParams()
    if backend_name(xp) == "cupy":
        return _step_cupy(xp, state, x, predicted, err_var, p)
    n = state["n"]
    first = n == 0
    lo = xp.where(first, x, xp.minimum(state["lo"], x))
    hi = xp.where(first, x, xp.maximum(state["hi"], x))
    floor = 1e-3 * xp.maximum(hi - lo, 1e-9)
    corr = 1.0 - (1.0 - p.error_beta) ** n
    var_c = xp.where(n > 1, err_var / xp.where(n > 1, corr, 1.0), 0.0)
    residual = xp.where(first, 0.0, xp.minimum(
        xp.abs(x - predicted) / (xp.sqrt(var_c) + floor), p.cap))
    state["lo"][...] = lo
    state["hi"][...] = hi
    n1 = n + 1.0
    dd = residual - state["res_mean"]
    lcorr = 1.0 - (1.0 - p.long_alpha) ** n1
    warm = n1 > p.warmup
    scale = xp.sqrt(state["res_var"] / lcorr) + p.spread_floor
    sigma = xp.where(warm, xp.maximum(dd / scale, 0.0), 0.0)
    state["res_mean"][...] = state["res_mean"] + p.long_alpha * dd
    state["res_var"][...] = (1.0 - p.long_alpha) * (state["res_var"] + p.long_alpha * dd * dd)
    ratio = xp.where(warm, sigma / (state["peak"] + 1e-9), 0.0)
    state["peak"][...] = xp.maximum(state["peak"] * p.decay, sigma)
    n[...] = n1
    return AnomalyOut(ratio / (1.0 + ratio), sigma, xp.where(first, x, predicted))


KERNEL_BODY = r"""
const bool a_first = an == 0.0;
const double lo2 = a_first ? y : fmin(lo, y);
const double hi2 = a_first ? y : fmax(hi, y);
const double floor_ = 1e-3 * fmax(hi2 - lo2, 1e-9);
const double var_c = an > 1.0 ? prior_var / (1.0 - pow(1.0 - beta, an)) : 0.0;
const double residual = a_first ? 0.0 : fmin(fabs(y - pred) / (sqrt(var_c) + floor_), cap);
lo = lo2;
hi = hi2;
const double n1 = an + 1.0;
const double dd = residual - res_mean;
const double lcorr = 1.0 - pow(1.0 - long_alpha, n1);
const bool warm = n1 > warmup;
const double sig = warm ? fmax(dd / (sqrt(res_var / lcorr) + spread_floor), 0.0) : 0.0;
res_mean = res_mean + long_alpha * dd;
res_var = (1.0 - long_alpha) * (res_var + long_alpha * dd * dd);
const double ratio = warm ? sig / (peak + 1e-9) : 0.0;
peak = fmax(peak * decay, sig);
an = n1;
score = ratio / (1.0 + ratio);
sigma = sig;
expected = a_first ? y : pred;
"""
"""The detector's arithmetic for one scope in CUDA C (``spend_step`` fuses it after the
forecaster's). In: ``y``, ``pred``, ``prior_var`` and the parameters; state: ``an``, ``lo``,
``hi``, ``res_mean``, ``res_var``, ``peak``; out: ``score``, ``sigma``, ``expected``."""
KERNEL_PARAMS = ("float64 beta, float64 long_alpha, float64 warmup, float64 decay, "
                 "float64 cap, float64 spread_floor")
KERNEL_STATE = ("float64 an, float64 lo, float64 hi, float64 res_mean, float64 res_var, "
                "float64 peak, float64 score, float64 sigma, float64 expected")


KERNEL = ("float64 y, float64 pred, float64 prior_var, " + KERNEL_PARAMS, KERNEL_STATE,
          KERNEL_BODY, "prsm_anomaly_step")
"""(in_params, out_params, operation, name) of the CuPy elementwise kernel."""


@cache
def _kernel() -> Any:
    import cupy  # only on the GPU path

    return cupy.ElementwiseKernel(*KERNEL)


def _step_cupy(xp: ModuleType, s: dict[str, Array], x: Array, predicted: Array,
               err_var: Array, p: AnomalyParams) -> AnomalyOut:
    score = xp.empty_like(x)
    sigma = xp.empty_like(x)
    expected = xp.empty_like(x)
    _kernel()(x, predicted, err_var, p.error_beta, p.long_alpha, float(p.warmup), p.decay, p.cap,
              p.spread_floor,
              *(s[k] for k in ANOMALY_STATE), score, sigma, expected)
    return AnomalyOut(score, sigma, expected)
