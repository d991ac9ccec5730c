"""A tick's pacing throttle directives, kept as columns: one per throttling paced budget.

A tick over 10^6 budgets may have hundreds of thousands of budgets throttling, each re-issued
every interval (a pacing directive expires two intervals after it is sent, so that gateways
stop pacing by themselves when no worker does). Each is built as a ``ThrottleDirective`` only
when asked for (``directive``, iteration); the worker publishes the JSON values straight from
the columns (``values``: what ``ThrottleDirective.model_dump_json`` gives, about a tenth of its
cost).

>>> import numpy as np
>>> d = PacingDirectives(["tenant:a"], ["day"], np.array([0.9]), np.array([2.5]),
...                      now=1767225600.0, interval_s=60.0)
>>> [x.key for x in d], d.directive(0).allow_fraction, d.directive(0).details["reserve_usd"]
(['tenant:a|pacing:day'], 0.4, 2.5)
>>> d.directive(0).message
'pacing tenant:a|day: pressure 0.90, 60% of low/normal requests throttled'
>>> ThrottleDirective.model_validate_json(d.values()[0]) == d.directive(0)
True
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import numpy as np
import orjson

from prsm_events.accounting.ledger_view import NANO
from prsm_events.decisions.pacing import PACED_PRIORITIES, PacingAction, shares
from prsm_events.events.directives import ThrottleDirective

__all__ = ["PACING_ORIGIN", "PacingDirectives", "pacing_key", "round4"]

PACING_ORIGIN = "pacing:"
HOLD_INTERVALS = 2
"""A pacing directive lapses this many scoring intervals after it is sent."""
_PRIORITIES = sorted(PACED_PRIORITIES)


def pacing_key(scope: str, period: str) -> str:
    """The policies record key of a budget's pacing directive.

    >>> pacing_key("tenant:a", "day")
    'tenant:a|pacing:day'
    """
    return f"{scope}|{PACING_ORIGIN}{period}"


def _utc_text(epoch: float) -> str:
    """An instant as ``ThrottleDirective``'s JSON writes it (RFC 3339, ``Z``)."""
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


class PacingDirectives:
    """The pacing directives of one tick: for budget ``i`` (``scopes[i]``, ``periods[i]``),
    its pressure and reserve (USD) as the scorer gave them, issued at epoch ``now`` and
    lapsing ``HOLD_INTERVALS`` intervals of ``interval_s`` later."""

    def __init__(self, scopes: Sequence[str] = (), periods: Sequence[str] = (),
                 pressure: np.ndarray | Sequence[float] = (),
                 reserve: np.ndarray | Sequence[float] = (),
                 now: float = 0.0, interval_s: float = 60.0) -> None:
        if not len(scopes) == len(periods) == len(pressure) == len(reserve):
            raise ValueError("scopes, periods, pressure and reserve differ in length")
        self.scopes, self.periods = list(scopes), list(periods)
        self.pressure = np.asarray(pressure, dtype=np.float64)
        self.reserve = np.asarray(reserve, dtype=np.float64)
        self.now = now
        self.until = now + HOLD_INTERVALS * interval_s

    def __len__(self) -> int:
        return len(self.scopes)

    def keys(self) -> list[str]:
        """Each directive's record key (``<scope>|pacing:<period>``), in order."""
        return [pacing_key(s, p) for s, p in zip(self.scopes, self.periods, strict=True)]

    def action(self, i: int) -> PacingAction:
        return PacingAction.at(f"{self.scopes[i]}|{self.periods[i]}", float(self.pressure[i]),
                               round(float(self.reserve[i]) * NANO))

    def directive(self, i: int) -> ThrottleDirective:
        a = self.action(i)
        return ThrottleDirective(
            scope=self.scopes[i], origin=PACING_ORIGIN + self.periods[i], action="throttle",
            allow_fraction=round(1 - a.throttle_share, 4),
            until=datetime.fromtimestamp(self.until, UTC), reason="paced_throttle",
            message=_message(a.budget_key, a.pressure, a.throttle_share),
            ts=datetime.fromtimestamp(self.now, UTC), details=dict(a.figures()),
            priorities=tuple(_PRIORITIES))

    def __iter__(self) -> Iterator[ThrottleDirective]:
        return (self.directive(i) for i in range(len(self)))

    def values(self) -> list[bytes]:
        """Each directive's JSON value, in order: what ``directive(i).model_dump_json()``
        gives (the same fields, order and figures), built without the model."""
        until, ts = _utc_text(self.until), _utc_text(self.now)
        p = np.clip(self.pressure, 0.0, 1.0)  # as PacingAction.at, in arrays
        route, defer, share = shares(p)
        figures = zip(
            self.scopes, self.periods, p.tolist(), share.tolist(), round4(1 - share),
            round4(p), round4(route), round4(defer), round4(share),
            (np.maximum(0, np.rint(self.reserve * NANO)) / NANO).tolist(), strict=True)
        dumps, out = orjson.dumps, []
        for scope, period, pressure, throttle, allow, pressure4, route, defer, throttle4, \
                reserve in figures:
            budget = f"{scope}|{period}"
            out.append(dumps({
                "scope": scope, "origin": PACING_ORIGIN + period, "action": "throttle",
                "allow_fraction": allow, "until": until, "reason": "paced_throttle",
                "message": _message(budget, pressure, throttle),
                "ts": ts, "details": {
                    "budget": budget, "pressure": pressure4, "route_share": route,
                    "defer_share": defer, "throttle_share": throttle4, "reserve_usd": reserve},
                "priorities": _PRIORITIES}))
        return out


def round4(x: np.ndarray) -> list[float]:
    """``[round(v, 4) for v in x]`` (Python's rounding: to the nearest decimal, a tie to the
    even one) in arrays, Python's own only where ``x * 10^4`` is within 10^-6 of a tie
    (for ``|x| <= 1`` the product is off by at most 10^-12, so elsewhere both round alike).

    >>> round4(np.array([0.12345, 0.5, 1.0, 0.00004]))
    [0.1235, 0.5, 1.0, 0.0]
    """
    scaled = x * 1e4
    out: list[float] = (np.rint(scaled) / 1e4).tolist()
    for i in np.flatnonzero(np.abs(scaled - np.floor(scaled) - 0.5) < 1e-6).tolist():
        out[i] = round(float(x[i]), 4)
    return out


def _message(budget_key: str, pressure: float, throttle_share: float) -> str:
    return (f"pacing {budget_key}: pressure {pressure:.2f}, {throttle_share:.0%} of "
            "low/normal requests throttled")
