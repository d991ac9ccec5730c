"""The forecaster's step in CUDA C: the CuPy elementwise kernel (``spend_step`` fuses its
body with the anomaly step's). The same source is compiled as C++ and checked against NumPy
in ``tests/unit/scoring/test_kernel_source.py``."""

from __future__ import annotations

from functools import cache
from typing import Any

__all__ = [
    "KERNEL",
    "KERNEL_BODY",
    "KERNEL_PARAMS",
    "forecast_kernel",
]

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


def forecast_kernel() -> Any:
    """The compiled kernel (CuPy only)."""
    import cupy  # only on the GPU path

    return cupy.ElementwiseKernel(*KERNEL)
