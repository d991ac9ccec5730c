"""Spend and demand per scope over the current scoring interval (what the batch scorer eats).

Spend comes from usage events; demand from requests, priced at the model asked for whether or
not they are served (pacing compares the two).

>>> meter = SpendMeter()
>>> meter.add_spend(["global", "tenant:a"], 0.5)
>>> meter.add_demand(["tenant:a"], 2.0, high=True)
>>> got = meter.take()
>>> got.spend["tenant:a"], got.demand["tenant:a"], got.demand_high["tenant:a"], meter.take().spend
(0.5, 2.0, 2.0, {})

With a clock, each interval says how long it lasted (from the previous take):

>>> ticks = iter([100.0, 160.0, 223.5])
>>> timed = SpendMeter(clock=lambda: next(ticks))
>>> timed.take().seconds, timed.take().seconds
(60.0, 63.5)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = ["MeterInterval", "SpendMeter"]


@dataclass(frozen=True, slots=True)
class MeterInterval:
    spend: dict[str, float]
    demand: dict[str, float]
    demand_high: dict[str, float]
    """Demand of high and critical requests."""
    seconds: float | None = None
    """How long the interval lasted (None: the meter has no clock)."""


class SpendMeter:
    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._clock = clock
        self._since = None if clock is None else clock()
        self._spend: defaultdict[str, float] = defaultdict(float)
        self._demand: defaultdict[str, float] = defaultdict(float)
        self._high: defaultdict[str, float] = defaultdict(float)

    def add_spend(self, scopes: Iterable[str], cost_usd: float) -> None:
        for scope in scopes:
            self._spend[scope] += cost_usd

    def add_demand(self, scopes: Iterable[str], cost_usd: float, high: bool) -> None:
        for scope in scopes:
            self._demand[scope] += cost_usd
            if high:
                self._high[scope] += cost_usd

    def take(self) -> MeterInterval:
        """The interval so far; the meter starts a new one."""
        seconds = None
        if self._clock is not None and self._since is not None:
            at = self._clock()
            seconds, self._since = at - self._since, at
        out = MeterInterval(dict(self._spend), dict(self._demand), dict(self._high), seconds)
        self._spend.clear()
        self._demand.clear()
        self._high.clear()
        return out
