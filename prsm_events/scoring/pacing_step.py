"""One step of the pacing controller for many budgets at once (NumPy or fused CuPy).

Throttling-based smooth delivery, as in online-advertising budget pacing. Demand is the cost
of every request at its requested model, served or not. What the budget can still afford is
the ratio ``target = remaining / to_come`` (``to_come``: the demand expected for the rest of
the period, below); what the current pressure lets through is ``observed = spend / demand``
over recent intervals (exponentially weighted). Each budget's pressure ``p`` in [0, 1]
follows an integral controller on their ratio:

    error = observed / target - 1                (clipped to [-1, 1])
    p    += gain_up * error    when error > 0    (spending too fast: press)
    p    += gain_down * error  when error < 0    (room left: relax)

The target is re-planned from what is left at every step, so an early burst does not force
hours of catch-up throttling. With nothing left the pressure is held (the hard limit blocks
anyway; relaxing because nothing more is spent would only release a wave at the next
period). The pressure is turned into actions by ``prsm_events.decisions.pacing``.

``to_come`` is ``demand_rest``, the demand forecast for the rest of the period, once the
forecaster has a day of history. Before that (``young_left``: the intervals left in the
period while the forecaster is younger than a day, else 0) it has not seen the busy hours
yet and its forecast follows the last hour, so a quiet stretch would relax the pressure just
before the traffic comes back: ``to_come`` is at least the mean demand per interval since the
budget was first paced (``lived`` intervals) times the intervals left.
``reserve`` is the part of the budget kept for high and critical requests: their share of
recent demand times ``to_come`` (young: times the recent demand rate times the intervals left
if that is more), and at least a burst of them (the busiest ``BURST_WINDOW_S`` of high and
critical demand seen, its peak halving per ``BURST_HALF_LIFE_S``, scaled down in the last
window of the period): near the period end the forecast of what is to come is small, and a
burst that no forecast shows would otherwise find the budget spent by normal traffic. At
most what is left.

>>> import numpy as np
>>> state = new_pacing_state(np, 2)
>>> out = pacing_step(np, state, remaining=np.array([10.0, 10.0]),
...                   demand_rest=np.array([10.0, 40.0]), spend=np.array([1.0, 1.0]),
...                   demand=np.array([1.0, 1.0]), high_share=np.array([0.2, 0.2]),
...                   young_left=np.array([0.0, 200.0]),
...                   intervals_left=np.array([200.0, 200.0]))
>>> out.pressure.tolist(), out.reserve.tolist()
([0.0, 0.1], [2.0, 10.0])

After a quiet hour the young budget still keeps the demand it has seen on average, and the
other one, forecast to see nothing more, the burst of high and critical demand it has seen:

>>> for _ in range(60):
...     out = pacing_step(np, state, remaining=np.array([10.0, 10.0]),
...                       demand_rest=np.array([0.0, 0.0]), spend=np.zeros(2),
...                       demand=np.zeros(2), high_share=np.array([0.2, 0.2]),
...                       young_left=np.array([0.0, 100.0]),
...                       intervals_left=np.array([100.0, 100.0]))
>>> out.reserve.round(3).tolist()
[0.15, 0.328]
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any

from prsm_events.scoring.backend import backend_name
from prsm_events.scoring.forecast_params import TUNED_EVERY_S, per_step
from prsm_events.scoring.state_arrays import StateArrays

__all__ = ["BURST_HALF_LIFE_S", "BURST_STATE", "BURST_WINDOW_S", "PACING_STATE", "YOUNG_STATE",
           "PacingInputs", "PacingOut", "PacingParams", "PacingState", "new_pacing_state",
           "pacing_step"]

Array = Any


BURST_WINDOW_S = 900.0
"""The burst a budget keeps in reserve for high and critical requests: this long."""
BURST_HALF_LIFE_S = 86400.0
"""How fast the remembered burst fades."""


@dataclass(frozen=True)
class PacingParams:
    """Controller gains; chosen on the pacing benchmark (docs/decisions/2026-11-28-pacing.md)."""

    gain_up: float = 0.1
    gain_down: float = 0.1
    reserve_margin: float = 1.0  # multiplies the expected high/critical spend
    smoothing: float = 0.3  # weight of the last interval in the observed spend/demand
    burst_span: float = BURST_WINDOW_S / TUNED_EVERY_S  # intervals in a burst window
    burst_decay: float = 0.5 ** (TUNED_EVERY_S / BURST_HALF_LIFE_S)  # the peak, per interval

    @classmethod
    def every(cls, interval_s: float, timescale_s: float = TUNED_EVERY_S) -> PacingParams:
        """The defaults (chosen with 10-minute steps) for a controller stepped every
        ``interval_s``: gains in proportion, smoothing compounded, so the pressure moves as
        fast per ``timescale_s`` whatever the interval.

        >>> p = PacingParams.every(60.0)
        >>> round(p.gain_up, 4), round(p.smoothing, 4)
        (0.01, 0.035)
        """
        base, r = cls(), interval_s / timescale_s
        return cls(gain_up=base.gain_up * r, gain_down=base.gain_down * r,
                   reserve_margin=base.reserve_margin,
                   smoothing=per_step(base.smoothing, 1.0 / r),
                   burst_span=BURST_WINDOW_S / interval_s,
                   burst_decay=0.5 ** (interval_s / BURST_HALF_LIFE_S))


@dataclass(frozen=True)
class PacingInputs:
    """What the controller reads each tick, one value per budget (sequences or arrays)."""

    remaining: Any  # limit - spent - reserved
    demand_rest: Any  # forecast demand to the period's end
    spend: Any  # the last interval's spend
    demand: Any  # the last interval's demand (what was asked)
    high_share: Any  # share of high and critical requests in the demand
    young_left: Any  # intervals left while the demand forecaster is young, else 0
    intervals_left: Any  # intervals left in the period

    def as_arrays(self, xp: ModuleType) -> dict[str, Array]:
        """The inputs as float64 arrays of ``xp``, by name (``pacing_step``'s arguments)."""
        return {name: xp.asarray(getattr(self, name), dtype=xp.float64)
                for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class PacingOut:
    pressure: Array
    reserve: Array


PACING_STATE = ("pressure", "spend", "demand", "lived", "demand_mean", "burst_rate",
                "burst_peak")
YOUNG_STATE = ("lived", "demand_mean")
"""Added after the first checkpoints: such a checkpoint loads with them at zero (the guard's
mean starts again)."""
BURST_STATE = ("burst_rate", "burst_peak")
"""High and critical demand per interval over about a burst window (an average weighted
``1 / burst_span``) and its decaying peak; added later too (a checkpoint without them loads
with them at zero)."""


@dataclass(eq=False)
class PacingState(StateArrays):
    """The controller's state per budget (``PACING_STATE``, in the kernel's order)."""

    pressure: Array
    spend: Array
    demand: Array
    lived: Array
    demand_mean: Array
    burst_rate: Array
    burst_peak: Array


def new_pacing_state(xp: ModuleType, n: int) -> PacingState:
    """Zeroed state for ``n`` budgets."""
    return PacingState.zeros(xp, n)


def pacing_step(
    xp: ModuleType, state: PacingState, remaining: Array, demand_rest: Array,
    spend: Array, demand: Array, high_share: Array, young_left: Array,
    intervals_left: Array, params: PacingParams | None = None,
) -> PacingOut:
    """Move each budget's pressure so that spend fits what is left (see the module doc).

    ``spend`` and ``demand`` are the last interval's; ``remaining`` is limit - spent - reserved;
    ``intervals_left`` in the period (``young_left`` is it while the forecaster is young).
    """
    params = params or PacingParams()
    if backend_name(xp) == "cupy":
        reserve = xp.empty_like(remaining)
        _kernel()(remaining, demand_rest, spend, demand, high_share, young_left,
                  intervals_left, params.gain_up, params.gain_down, params.reserve_margin,
                  params.smoothing, 1.0 / max(params.burst_span, 1.0), params.burst_span,
                  params.burst_decay, *state.ordered(PACING_STATE), reserve)
        return PacingOut(state.pressure, reserve)
    w = params.smoothing
    state.spend[...] = (1 - w) * state.spend + w * spend
    state.demand[...] = (1 - w) * state.demand + w * demand
    state.lived[...] = state.lived + 1.0
    mean = state.demand_mean
    mean[...] = mean + (demand - mean) / state.lived
    left = xp.maximum(remaining, 0.0)
    to_come = xp.maximum(demand_rest, mean * young_left)
    target = left / xp.maximum(to_come, 1e-12)
    seen = state.demand > 1e-12
    observed = xp.where(seen, state.spend / xp.where(seen, state.demand, 1.0), 0.0)
    error = xp.clip(observed / xp.maximum(target, 1e-12) - 1.0, -1.0, 1.0)
    error = xp.where(seen, error, -1.0)
    error = xp.where(left > 0.0, error, 0.0)
    gain = xp.where(error > 0, params.gain_up, params.gain_down)
    state.pressure[...] = xp.clip(state.pressure + gain * error, 0.0, 1.0)
    to_come = xp.maximum(to_come, state.demand * young_left)
    rate, peak = state.burst_rate, state.burst_peak
    weight = 1.0 / max(params.burst_span, 1.0)
    rate[...] = (1 - weight) * rate + weight * high_share * demand
    peak[...] = xp.maximum(params.burst_decay * peak, rate)
    burst = peak * xp.minimum(intervals_left, params.burst_span)
    reserve = xp.maximum(params.reserve_margin * high_share * to_come, burst)
    return PacingOut(state.pressure, xp.minimum(left, reserve))


KERNEL_BODY = r"""
const double s = (1.0 - smoothing) * spend_ew + smoothing * spend;
const double d = (1.0 - smoothing) * demand_ew + smoothing * demand;
spend_ew = s;
demand_ew = d;
lived = lived + 1.0;
demand_mean = demand_mean + (demand - demand_mean) / lived;
const double left = fmax(remaining, 0.0);
const double to_come = fmax(demand_rest, demand_mean * young_left);
const double target = left / fmax(to_come, 1e-12);
const bool seen = d > 1e-12;
const double observed = seen ? s / d : 0.0;
const double error = left <= 0.0 ? 0.0
    : seen ? fmin(fmax(observed / fmax(target, 1e-12) - 1.0, -1.0), 1.0) : -1.0;
const double gain = error > 0.0 ? gain_up : gain_down;
pressure = fmin(fmax(pressure + gain * error, 0.0), 1.0);
burst_rate = (1.0 - burst_weight) * burst_rate + burst_weight * high_share * demand;
burst_peak = fmax(burst_decay * burst_peak, burst_rate);
const double burst = burst_peak * fmin(intervals_left, burst_span);
reserve = fmin(left, fmax(reserve_margin * high_share * fmax(to_come, d * young_left), burst));
"""


KERNEL = ("float64 remaining, float64 demand_rest, float64 spend, float64 demand, "
          "float64 high_share, float64 young_left, float64 intervals_left, float64 gain_up, "
          "float64 gain_down, float64 reserve_margin, float64 smoothing, "
          "float64 burst_weight, float64 burst_span, float64 burst_decay",
          "float64 pressure, float64 spend_ew, float64 demand_ew, float64 lived, "
          "float64 demand_mean, float64 burst_rate, float64 burst_peak, float64 reserve",
          KERNEL_BODY, "prsm_pacing_step")
"""(in_params, out_params, operation, name) of the CuPy elementwise kernel."""


@cache
def _kernel() -> Any:
    import cupy  # only on the GPU path

    return cupy.ElementwiseKernel(*KERNEL)
