"""What a forecaster keeps per scope: level, residual moments, daily profile, weekday offsets,
and optionally the check of its own interval (``rest_of_period.check_step``).

>>> import numpy as np
>>> state = new_forecast_state(np, 3, season=24, check=True)
>>> state.season.shape, state.level.shape, state.check is not None
((24, 3), (3,), True)
>>> sorted(state.arrays())[:3]
['acov0', 'acov1', 'acov2']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Self

from prsm_events.scoring.state_arrays import StateArrays

__all__ = [
    "CARRY_STATE",
    "CHECK_STATE",
    "SCALARS",
    "CheckState",
    "ForecastState",
    "new_check_state",
    "new_forecast_state",
]

Array = Any

CARRY_STATE = ("res2", "res3", "acov0", "acov1", "acov2", "pcov2", "pcov3")
"""The residual AR(3)'s state: the two residuals before ``res``; E[r_t r_t], E[r_t r_(t-1)],
E[r_t r_(t-2)] over residuals after their update; E[pre r_(t-2)] and E[pre r_(t-3)] with ``pre``
the error of the step's base (``res_cov`` is the lag-1 one). A checkpoint written before they
existed loads with them at zero (``checkpoint_format``; learned again within a few hundred
intervals)."""
SCALARS = ("n", "level", "err_var", "res", "res_var", "res_cov", *CARRY_STATE)
"""The per-scope (not per-bucket) state arrays, in the CUDA kernel's order."""
CHECK_STATE = ("check_mean", "check_var", "check_sum", "check_left", "spread_excess")
"""A forecaster's check of its own interval (``check_step``): the forecast total of the next
``check_intervals`` and its variance, what has come of it so far, the intervals still to
come (0: no check under way), and the learned scale of the interval's variance, less 1."""


@dataclass(eq=False)
class CheckState(StateArrays):
    """The self-check's state (``CHECK_STATE``), one value per scope."""

    check_mean: Array
    check_var: Array
    check_sum: Array
    check_left: Array
    spread_excess: Array


@dataclass(eq=False)
class ForecastState(StateArrays):
    """A forecaster's state for many scopes: the per-scope values (``SCALARS``), the daily
    profile ``season`` shaped (buckets, scopes) and the weekday offsets ``week`` (7, scopes),
    stored bucket-major so that the bucket a step updates is one contiguous row (coalesced on
    a GPU); ``check`` when the forecaster checks its own interval."""

    n: Array
    level: Array
    err_var: Array
    res: Array  # last residual after the update
    res_var: Array
    res_cov: Array  # E[r_t * r_(t-1)]
    res2: Array
    res3: Array
    acov0: Array
    acov1: Array
    acov2: Array
    pcov2: Array
    pcov3: Array
    season: Array
    week: Array
    check: CheckState | None = None

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return (*SCALARS, "season", "week")

    def arrays(self) -> dict[str, Array]:
        own = super().arrays()
        return own if self.check is None else own | self.check.arrays()

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, Array]) -> Self:
        check = (CheckState.from_arrays(arrays) if all(k in arrays for k in CHECK_STATE)
                 else None)
        return cls(**{name: arrays[name] for name in cls.names()}, check=check)


def new_forecast_state(xp: ModuleType, n: int, season: int, check: bool = False
                       ) -> ForecastState:
    """Zeroed state for ``n`` scopes with ``season`` buckets per cycle and 7 weekdays (and a
    self-check with an interval's scale of 1, with ``check``)."""
    def zeros(*shape: int) -> Array:
        return xp.zeros(shape, dtype=xp.float64)

    return ForecastState(**{name: zeros(n) for name in SCALARS}, season=zeros(season, n),
                         week=zeros(7, n), check=new_check_state(xp, n) if check else None)


def new_check_state(xp: ModuleType, n: int) -> CheckState:
    """Zeroed self-check state for ``n`` scopes (an interval's scale of 1)."""
    return CheckState.zeros(xp, n)
