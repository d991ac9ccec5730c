"""One step of the spend anomaly detector for many scopes at once (NumPy or fused CuPy).

Per scope, from the new value ``x`` (spend in the last interval) and what the forecaster
predicted for it (``prsm_events.scoring.forecast_step``: level, time-of-day and weekday profiles
and the decay of a burst under way), three signals, each unitless:

1. a point departure: the error ``|x - predicted| / sd`` (``sd``: the forecaster's one-step
   error deviation, bias-corrected, with a floor of 0.1% of the range seen so a flat series
   does not alarm on rounding; capped at ``cap``), as ``sigma``: how far it sits above its own
   long-run mean, in its long-run standard deviations (the scope's notion of "normal");
2. a sustained shift: the signed error averaged over the last ~``1 / shift_alpha`` intervals,
   in the same long-run terms (a runaway loop that raises spend steadily without one outlier);
3. a new extreme: ``x`` beyond every value seen so far by more than ``spatial`` of the range
   (with at least ``spatial_sigma`` of point departure).

Each of the first two is divided by the larger of a slowly decaying maximum of its recent
values (at least ``peak_floor``), so the first point of a new departure scores high and its
continuation lower (one incident, one alarm), and ``hour_weight`` times the largest departure
seen in the same hour-of-day bucket on earlier days (decaying by ``hour_decay`` at each visit
of the bucket), so what happens at that hour every day (a nightly batch job, a daily report)
is not news. The score is ``r / (1 + r)`` of the larger ratio (the sustained one weighted by
``shift_weight``, plus ``spatial_boost`` on a new extreme); it lies in [0, 1) and is
comparable across scopes, so one threshold serves every scope. ``sigma`` reports the larger
of the two departures.

The NumPy function is the reference; the CuPy path runs the same arithmetic as one fused
elementwise kernel (one read and one write of each state array per step).

>>> import numpy as np
>>> from prsm_events.scoring.forecast_step import forecast_step, new_forecast_state
>>> fc, state = new_forecast_state(np, 2, season=1), new_anomaly_state(np, 2, season=1)
>>> rng = np.random.default_rng(0)
>>> def step(x):
...     err_var = fc.err_var.copy()
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
from prsm_events.scoring.state_arrays import StateArrays

__all__ = ["ANOMALY_STATE", "AnomalyOut", "AnomalyParams", "AnomalyState", "anomaly_step",
           "new_anomaly_state"]

ANOMALY_STATE = ("n", "lo", "hi", "res_mean", "res_var", "peak", "shift", "shift_mean",
                 "shift_var", "shift_peak")
"""Per-scope values; besides them ``hour_peak`` holds one value per hour-of-day bucket."""
Array = Any


@dataclass(frozen=True)
class AnomalyParams:
    """Constants; the defaults were chosen on the NAB benchmark
    (docs/decisions/2026-11-28-anomaly-detector.md)."""

    error_beta: float = 0.01  # the forecaster's error-variance weight (for bias correction)
    long_alpha: float = 0.0002  # weight of a new value in the long-run mean/variance
    warmup: int = 50  # steps before a scope can score
    decay: float = 0.99  # per-step decay of the recent maxima
    cap: float = 50.0  # largest error counted (keeps one outlier from ruling the history)
    spread_floor: float = 0.1  # least long-run spread (a flat history still alarms)
    peak_floor: float = 2.0  # least recent maximum a departure is compared with
    shift_alpha: float = 0.1  # weight of the newest error in the sustained-shift mean
    shift_weight: float = 4.0  # sustained shift vs point departure in the score
    spatial: float = 0.01  # a new extreme must pass the range seen by this share of it
    spatial_sigma: float = 1.0  # ... with at least this point departure
    spatial_boost: float = 19.0  # added to a new extreme's ratio (its score >= 0.95)
    hour_weight: float = 3.0  # departures vs this times the same hour's on earlier days
    hour_decay: float = 0.995  # decay of that memory at each visit of the bucket

    def kernel_args(self) -> tuple[float, ...]:
        """The values of ``KERNEL_PARAMS``, in order."""
        return (self.error_beta, self.long_alpha, float(self.warmup), self.decay, self.cap,
                self.spread_floor, self.peak_floor, self.shift_alpha, self.shift_weight,
                self.spatial, self.spatial_sigma, self.spatial_boost, self.hour_weight,
                self.hour_decay)


@dataclass(frozen=True)
class AnomalyOut:
    score: Array  # [0, 1): comparable across scopes
    sigma: Array  # the larger departure (point or sustained), in long-run deviations (>= 0)
    expected: Array  # the forecast the value was compared with


@dataclass(eq=False)
class AnomalyState(StateArrays):
    """The detector's state for many scopes: the per-scope values (``ANOMALY_STATE``, in the
    kernel's order) and ``hour_peak``, shaped (buckets, scopes), bucket-major as the
    forecaster's profile (a step touches one contiguous row)."""

    n: Array
    lo: Array
    hi: Array
    res_mean: Array
    res_var: Array
    peak: Array
    shift: Array
    shift_mean: Array
    shift_var: Array
    shift_peak: Array
    hour_peak: Array


def new_anomaly_state(xp: ModuleType, n: int, season: int = 24) -> AnomalyState:
    """Zeroed state for ``n`` scopes with ``season`` hour-of-day buckets."""
    return AnomalyState(**{name: xp.zeros(n, dtype=xp.float64) for name in ANOMALY_STATE},
                        hour_peak=xp.zeros((season, n), dtype=xp.float64))


def anomaly_step(
    xp: ModuleType, state: AnomalyState, x: Array, predicted: Array, err_var: Array,
    params: AnomalyParams | None = None, bucket: int = 0,
) -> AnomalyOut:
    """Score ``x`` (in hour-of-day ``bucket``) against ``predicted`` (and the forecaster's
    ``err_var`` before it learned ``x``), then learn it; updates ``state`` in place."""
    p = params or AnomalyParams()
    hour = hour_row(state, bucket)
    if backend_name(xp) == "cupy":
        return _step_cupy(xp, state, x, predicted, err_var, p, hour)
    s = state
    n = s.n
    first = n == 0
    span = s.hi - s.lo
    beyond = ((n > 0) & (span > 0)
              & ((x > s.hi + p.spatial * span) | (x < s.lo - p.spatial * span)))
    lo = xp.where(first, x, xp.minimum(s.lo, x))
    hi = xp.where(first, x, xp.maximum(s.hi, x))
    floor = 1e-3 * xp.maximum(hi - lo, 1e-9)
    corr = 1.0 - (1.0 - p.error_beta) ** n
    var_c = xp.where(n > 1, err_var / xp.where(n > 1, corr, 1.0), 0.0)
    sd = xp.sqrt(var_c) + floor
    residual = xp.where(first, 0.0, xp.minimum(xp.abs(x - predicted) / sd, p.cap))
    signed = xp.where(first, 0.0, xp.clip((x - predicted) / sd, -p.cap, p.cap))
    s.lo[...] = lo
    s.hi[...] = hi
    n1 = n + 1.0
    lcorr = 1.0 - (1.0 - p.long_alpha) ** n1
    warm = n1 > p.warmup
    # 1. point departure
    dd = residual - s.res_mean
    sigma = xp.where(warm, xp.maximum(dd / (xp.sqrt(s.res_var / lcorr) + p.spread_floor),
                                      0.0), 0.0)
    s.res_mean[...] = s.res_mean + p.long_alpha * dd
    s.res_var[...] = (1.0 - p.long_alpha) * (s.res_var + p.long_alpha * dd * dd)
    # 2. sustained shift (not learned from a scope's first value: there is no error yet)
    shift = xp.where(first, s.shift, (1.0 - p.shift_alpha) * s.shift + p.shift_alpha * signed)
    d2 = shift - s.shift_mean
    sigma2 = xp.where(warm, xp.abs(d2) / (xp.sqrt(s.shift_var / lcorr) + p.spread_floor), 0.0)
    s.shift[...] = shift
    s.shift_mean[...] = xp.where(first, s.shift_mean, s.shift_mean + p.long_alpha * d2)
    s.shift_var[...] = xp.where(first, s.shift_var, (1.0 - p.long_alpha)
                                   * (s.shift_var + p.long_alpha * d2 * d2))
    # each against its recent maximum and this hour's on earlier days
    usual = p.hour_weight * hour
    r1 = xp.where(warm, sigma / xp.maximum(xp.maximum(s.peak + 1e-9, p.peak_floor), usual),
                  0.0)
    r2 = xp.where(warm, p.shift_weight * sigma2 / xp.maximum(
        xp.maximum(s.shift_peak + 1e-9, p.peak_floor), usual), 0.0)
    s.peak[...] = xp.maximum(s.peak * p.decay, sigma)
    s.shift_peak[...] = xp.maximum(s.shift_peak * p.decay, sigma2)
    hour[...] = xp.maximum(hour * p.hour_decay, xp.maximum(sigma, sigma2))
    n[...] = n1
    # 3. a new extreme
    ratio = xp.maximum(r1, r2) + xp.where(beyond & (sigma >= p.spatial_sigma),
                                          p.spatial_boost, 0.0)
    return AnomalyOut(ratio / (1.0 + ratio), xp.maximum(sigma, sigma2),
                      xp.where(first, x, predicted))


KERNEL_BODY = r"""
const bool a_first = an == 0.0;
const double span = hi - lo;
const bool beyond = an > 0.0 && span > 0.0
    && (y > hi + spatial * span || y < lo - spatial * span);
const double lo2 = a_first ? y : fmin(lo, y);
const double hi2 = a_first ? y : fmax(hi, y);
const double floor_ = 1e-3 * fmax(hi2 - lo2, 1e-9);
const double var_c = an > 1.0 ? prior_var / (1.0 - pow(1.0 - beta, an)) : 0.0;
const double sd = sqrt(var_c) + floor_;
const double residual = a_first ? 0.0 : fmin(fabs(y - pred) / sd, cap);
const double signed_ = a_first ? 0.0 : fmin(fmax((y - pred) / sd, -cap), cap);
lo = lo2;
hi = hi2;
const double n1 = an + 1.0;
const double lcorr = 1.0 - pow(1.0 - long_alpha, n1);
const bool warm = n1 > warmup;
const double dd = residual - res_mean;
const double sig = warm ? fmax(dd / (sqrt(res_var / lcorr) + spread_floor), 0.0) : 0.0;
res_mean = res_mean + long_alpha * dd;
res_var = (1.0 - long_alpha) * (res_var + long_alpha * dd * dd);
const double sh = a_first ? shift : (1.0 - shift_alpha) * shift + shift_alpha * signed_;
const double d2 = sh - shift_mean;
const double sig2 = warm ? fabs(d2) / (sqrt(shift_var / lcorr) + spread_floor) : 0.0;
shift = sh;
if (!a_first) {
    shift_mean = shift_mean + long_alpha * d2;
    shift_var = (1.0 - long_alpha) * (shift_var + long_alpha * d2 * d2);
}
const double usual = hour_weight * hour_peak;
const double r1 = warm ? sig / fmax(fmax(peak + 1e-9, peak_floor), usual) : 0.0;
const double r2 = warm ? shift_weight * sig2 / fmax(fmax(shift_peak + 1e-9, peak_floor), usual)
    : 0.0;
peak = fmax(peak * decay, sig);
shift_peak = fmax(shift_peak * decay, sig2);
hour_peak = fmax(hour_peak * hour_decay, fmax(sig, sig2));
an = n1;
const double ratio = fmax(r1, r2) + (beyond && sig >= spatial_sigma ? spatial_boost : 0.0);
score = ratio / (1.0 + ratio);
sigma = fmax(sig, sig2);
expected = a_first ? y : pred;
"""
"""The detector's arithmetic for one scope in CUDA C (``spend_step`` fuses it after the
forecaster's). In: ``y``, ``pred``, ``prior_var`` and the parameters; state: ``an``, ``lo``,
``hi``, ``res_mean``, ``res_var``, ``peak``, ``shift``, ``shift_mean``, ``shift_var``,
``shift_peak``; out: ``score``, ``sigma``, ``expected``."""
KERNEL_PARAMS = ("float64 beta, float64 long_alpha, float64 warmup, float64 decay, "
                 "float64 cap, float64 spread_floor, float64 peak_floor, float64 shift_alpha, "
                 "float64 shift_weight, float64 spatial, float64 spatial_sigma, "
                 "float64 spatial_boost, float64 hour_weight, float64 hour_decay")
KERNEL_STATE = ("float64 an, float64 lo, float64 hi, float64 res_mean, float64 res_var, "
                "float64 peak, float64 shift, float64 shift_mean, float64 shift_var, "
                "float64 shift_peak, float64 hour_peak, float64 score, float64 sigma, "
                "float64 expected")


KERNEL = ("float64 y, float64 pred, float64 prior_var, " + KERNEL_PARAMS, KERNEL_STATE,
          KERNEL_BODY, "prsm_anomaly_step")
"""(in_params, out_params, operation, name) of the CuPy elementwise kernel."""


@cache
def _kernel() -> Any:
    import cupy  # only on the GPU path

    return cupy.ElementwiseKernel(*KERNEL)


def hour_row(state: AnomalyState, bucket: int) -> Array:
    """The ``hour_peak`` row a step in ``bucket`` reads and writes (a view)."""
    table = state.hour_peak
    return table[bucket % table.shape[0]]


def _step_cupy(xp: ModuleType, s: AnomalyState, x: Array, predicted: Array,
               err_var: Array, p: AnomalyParams, hour: Array) -> AnomalyOut:
    score = xp.empty_like(x)
    sigma = xp.empty_like(x)
    expected = xp.empty_like(x)
    _kernel()(x, predicted, err_var, *p.kernel_args(),
              *s.ordered(ANOMALY_STATE), hour, score, sigma, expected)
    return AnomalyOut(score, sigma, expected)
