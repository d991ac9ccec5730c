"""What a budget's pacing pressure means for one request (pure).

Pressure in [0, 1] (from ``prsm_events.scoring.pacing_step``) maps to nested shares of the
``low`` and ``normal`` requests, chosen by request id so that a retry gets the same answer:

- ``route_share`` (from pressure 0, full at 0.5): sent to a cheaper model that fits;
- ``defer_share`` (from 0.5, full at 0.75): ``low`` requests are deferred;
- ``throttle_share`` (from 0.75, full at 1.0): throttled.

(The ramps were chosen on the pacing benchmark: routing first keeps the most requests served.)

``high`` and ``critical`` requests are never paced; ``reserve`` nano-USD of the budget is kept
for them (``low``/``normal`` requests must leave it untouched).

>>> p = PacingAction.at("tenant:acme|day", pressure=0.625, reserve=0)
>>> p.route_share, p.defer_share, p.throttle_share
(1.0, 0.5, 0.0)
>>> p.step_for("any-id", "high") is None
True
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from prsm_events.accounting.ledger_view import NANO, usd
from prsm_events.scoring.rows_by_key import RowsByKey

__all__ = ["PACED_PRIORITIES", "PacingAction", "PacingActions", "PacingStep", "shares", "spread"]

PACED_PRIORITIES = frozenset({"low", "normal"})
PacingStep = Literal["route", "defer", "throttle"]


def spread(request_id: str) -> float:
    """A request's stable place in [0, 1): who falls within a share."""
    return zlib.crc32(request_id.encode()) / 2**32


ROUTE_RAMP, DEFER_RAMP, THROTTLE_RAMP = (0.0, 0.5), (0.5, 0.75), (0.75, 1.0)
"""(pressure where each share starts, where it is full)."""


def _ramp(pressure: float, start: float, full: float) -> float:
    return min(1.0, max(0.0, (pressure - start) / (full - start)))


def shares(pressure: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``PacingAction.at``'s route, defer and throttle shares of many pressures at once (the
    same figures, clipped to [0, 1] first as it does).

    >>> [x.tolist() for x in shares(np.array([0.625, 2.0]))]
    [[1.0, 1.0], [0.5, 1.0], [0.0, 1.0]]
    """
    p = np.clip(pressure, 0.0, 1.0)
    route, defer, throttle = (np.minimum(1.0, np.maximum(0.0, (p - start) / (full - start)))
                              for start, full in (ROUTE_RAMP, DEFER_RAMP, THROTTLE_RAMP))
    return route, defer, throttle


@dataclass(frozen=True, slots=True)
class PacingAction:
    """A budget's pacing action at one instant (``budget_key`` is ``<scope>|<period>``)."""

    budget_key: str
    pressure: float
    route_share: float
    defer_share: float
    throttle_share: float
    reserve: int
    """nano-USD kept for high/critical requests."""
    retry_after_s: float = 60.0

    @classmethod
    def at(cls, budget_key: str, pressure: float, reserve: int,
           retry_after_s: float = 60.0) -> PacingAction:
        p = min(1.0, max(0.0, float(pressure)))
        return cls(budget_key, p, _ramp(p, *ROUTE_RAMP), _ramp(p, *DEFER_RAMP),
                   _ramp(p, *THROTTLE_RAMP), max(0, int(reserve)), retry_after_s)

    def step_for(self, request_id: str, priority: str) -> PacingStep | None:
        """The pacing step this request falls in, strongest first, or None."""
        if priority not in PACED_PRIORITIES:
            return None
        u = spread(request_id)
        if u < self.throttle_share:
            return "throttle"
        if priority == "low" and u < self.defer_share:
            return "defer"
        if u < self.route_share:
            return "route"
        return None

    def figures(self) -> dict[str, float | str]:
        return {"budget": self.budget_key, "pressure": round(self.pressure, 4),
                "route_share": round(self.route_share, 4),
                "defer_share": round(self.defer_share, 4),
                "throttle_share": round(self.throttle_share, 4),
                "reserve_usd": usd(self.reserve)}


class PacingActions(RowsByKey[PacingAction]):
    """A tick's pacing actions by budget key, kept as arrays of pressure and reserve (USD,
    as the scorer gives them); an action is built when asked for.

    >>> actions = PacingActions(["tenant:a|day", "tenant:b|day"], [0.5, 0.9], [0.0, 2.0])
    >>> a = actions["tenant:b|day"]
    >>> round(a.throttle_share, 6), a.reserve, actions.throttling().tolist()
    (0.6, 2000000000, [1])
    """

    def __init__(self, keys: Sequence[str] = (), pressure: Sequence[float] | np.ndarray = (),
                 reserve: Sequence[float] | np.ndarray = (),
                 retry_after_s: float = 60.0) -> None:
        super().__init__(self.action)
        self.budget_keys = list(keys)
        self.pressure = np.asarray(pressure, dtype=np.float64)
        self.reserve = np.asarray(reserve, dtype=np.float64)
        self.retry_after_s = retry_after_s
        self.index(self.budget_keys)

    def action(self, row: int) -> PacingAction:
        return PacingAction.at(self.budget_keys[row], float(self.pressure[row]),
                               round(float(self.reserve[row]) * NANO), self.retry_after_s)

    def throttling(self) -> np.ndarray:
        """Rows whose action throttles (``throttle_share > 0``)."""
        return np.flatnonzero(self.pressure > THROTTLE_RAMP[0])
