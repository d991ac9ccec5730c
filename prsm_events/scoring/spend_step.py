"""The per-scope tick: forecaster step then anomaly step, fused into one kernel on CuPy.

NumPy runs the two reference functions one after the other; CuPy runs the same arithmetic in
one elementwise kernel that reads each state array once and writes it once (448 bytes per
scope per tick: of the daily and weekly profiles only the current bucket's rows).

>>> import numpy as np
>>> from prsm_events.scoring.anomaly_step import new_anomaly_state
>>> from prsm_events.scoring.forecast_step import new_forecast_state
>>> fc, an = new_forecast_state(np, 3, season=24), new_anomaly_state(np, 3)
>>> out = spend_step(np, fc, an, np.array([1.0, 2.0, 3.0]), bucket=5)
>>> out.expected.tolist(), fc.level.tolist()
([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
"""

from __future__ import annotations

from dataclasses import replace
from functools import cache
from types import ModuleType
from typing import Any

from prsm_events.scoring.anomaly_step import (
    ANOMALY_STATE,
    AnomalyOut,
    AnomalyParams,
    AnomalyState,
    anomaly_step,
    hour_row,
)
from prsm_events.scoring.anomaly_step import KERNEL_BODY as ANOMALY_BODY
from prsm_events.scoring.anomaly_step import KERNEL_PARAMS as ANOMALY_PARAMS
from prsm_events.scoring.anomaly_step import KERNEL_STATE as ANOMALY_OUT
from prsm_events.scoring.backend import backend_name
from prsm_events.scoring.forecast_params import ForecastParams
from prsm_events.scoring.forecast_state import ForecastState
from prsm_events.scoring.forecast_step import KERNEL_BODY as FORECAST_BODY
from prsm_events.scoring.forecast_step import KERNEL_PARAMS as FORECAST_STATE
from prsm_events.scoring.forecast_step import SCALARS as _FORECAST
from prsm_events.scoring.forecast_step import forecast_step, weekday_row

__all__ = ["BYTES_PER_SCOPE", "spend_step"]

Array = Any
BYTES_PER_SCOPE = 8 * (1 + 2 * (len(_FORECAST) + 2) + 2 * (len(ANOMALY_STATE) + 1) + 3)
"""Bytes one fused tick moves per scope: x in; forecaster state (and one value of each
profile) and anomaly state (and this hour's departure memory) in and out; score, sigma,
expected out."""


def spend_step(
    xp: ModuleType, forecast: ForecastState, anomaly: AnomalyState, x: Array,
    bucket: int, forecast_params: ForecastParams | None = None,
    anomaly_params: AnomalyParams | None = None, day: int | None = None,
) -> AnomalyOut:
    """Learn ``x`` (one interval's spend per scope, in ``bucket`` on weekday ``day``) and
    score it."""
    fp = forecast_params or ForecastParams()
    ap = replace(anomaly_params or AnomalyParams(), error_beta=fp.beta)
    if backend_name(xp) != "cupy":
        err_var = forecast.err_var.copy()
        predicted = forecast_step(xp, forecast, x, bucket, fp, day)
        return anomaly_step(xp, anomaly, x, predicted, err_var, ap, bucket)
    column = forecast.season[bucket % forecast.season.shape[0]]
    week, delta, after = weekday_row(forecast, day, fp)
    score, sigma, expected = xp.empty_like(x), xp.empty_like(x), xp.empty_like(x)
    _kernel()(x, fp.alpha, fp.gamma, delta, after, *ap.kernel_args(),
              *forecast.ordered(_FORECAST), column, week,
              *anomaly.ordered(ANOMALY_STATE), hour_row(anomaly, bucket), score, sigma,
              expected)
    return AnomalyOut(score, sigma, expected)


STEPWISE = "const double past = 0.0;\ndouble season1 = season;\n"
"""The detector's forecaster reads and learns its hour's value alone (``past`` 0; the next
hour's value is a local copy that nothing reads)."""
KERNEL = ("float64 y, float64 alpha, float64 gamma, float64 delta, float64 week_after, "
          + ANOMALY_PARAMS,
          FORECAST_STATE + ", float64 week, " + ANOMALY_OUT,
          STEPWISE + FORECAST_BODY + ANOMALY_BODY, "prsm_spend_step")
"""(in_params, out_params, operation, name) of the fused CuPy elementwise kernel."""


@cache
def _kernel() -> Any:
    import cupy  # only on the GPU path

    return cupy.ElementwiseKernel(*KERNEL)
