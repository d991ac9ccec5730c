"""What a budget's figures announce: threshold alerts (once per period) and block directives.

>>> from datetime import datetime, UTC
>>> from prsm_events.accounting.budgets import Budget
>>> from prsm_events.accounting.ledger_view import BudgetView, NANO
>>> b = Budget(scope="tenant:acme", period="day", limit_usd=10, alert_at=(0.5, 0.8))
>>> v = BudgetView(b, now=100.0, spent=9 * NANO, reserved=0, start=0.0, end=86400.0)
>>> out = budget_signals(v, None, exhausted_below=0.01)
>>> [a.observed for a in out.alerts], out.directive
([9.0, 9.0], None)
>>> spent = BudgetView(b, now=200.0, spent=10 * NANO, reserved=0, start=0.0, end=86400.0)
>>> again = budget_signals(spent, out.flags, exhausted_below=0.01)
>>> again.alerts, again.directive.action, again.directive.until.isoformat()
([], 'block', '1970-01-02T00:00:00+00:00')
>>> budget_signals(v, again.flags, 0.01).lift     # raised limit or rolled period: lift it
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prsm_events.accounting.ledger_view import BudgetView
from prsm_events.events.alerts import Alert
from prsm_events.events.directives import ThrottleDirective

__all__ = ["BudgetFlags", "Signals", "budget_signals"]


@dataclass(slots=True)
class BudgetFlags:
    """What was already announced for a budget: thresholds this period, an active block."""

    period_start: float = 0.0
    alerted: list[float] = field(default_factory=list)
    blocked_until: float | None = None

    def to_list(self) -> list[Any]:
        return [self.period_start, self.alerted, self.blocked_until]

    @classmethod
    def from_list(cls, raw: list[Any]) -> BudgetFlags:
        until = raw[2]
        return cls(float(raw[0]), [float(x) for x in raw[1]],
                   None if until is None else float(until))


@dataclass(frozen=True, slots=True)
class Signals:
    flags: BudgetFlags
    alerts: list[Alert]
    directive: ThrottleDirective | None
    lift: bool
    """True when an earlier block directive must be withdrawn (tombstone)."""


def _ts(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _unblock_at(view: BudgetView, below: float) -> float:
    if not view.rolling:
        return view.end
    excess = view.spent - (1 - below) * view.limit
    freed = 0
    for at, amount in view.releases:
        freed += amount
        if freed >= excess:
            return at
    return view.now + (view.end - view.start)


def budget_signals(view: BudgetView, flags: BudgetFlags | None, exhausted_below: float) -> Signals:
    """Alerts and directive changes due now for one budget, and the flags to store."""
    budget = view.budget
    flags = BudgetFlags(view.start) if flags is None else BudgetFlags(
        flags.period_start, list(flags.alerted), flags.blocked_until)
    if not view.rolling and flags.period_start != view.start:
        flags.period_start, flags.alerted = view.start, []
    alerts = []
    for fraction in budget.alert_at:
        crossed = view.spent >= fraction * view.limit
        if view.rolling and not crossed and fraction in flags.alerted:
            flags.alerted.remove(fraction)  # rolling windows re-arm once spend falls back
        if crossed and fraction not in flags.alerted:
            flags.alerted.append(fraction)
            alerts.append(Alert(
                alert_id=f"{budget.key}|{fraction:g}|{_ts(flags.period_start).isoformat()}"
                if not view.rolling else f"{budget.key}|{fraction:g}|{_ts(view.now).isoformat()}",
                ts=_ts(view.now), kind="budget_threshold", scope=budget.scope,
                severity="critical" if fraction >= 1 else "warning" if fraction >= 0.8
                else "info",
                observed=view.spent_usd, expected=round(fraction * budget.limit_usd, 9),
                score=round(view.spent / view.limit, 6) if view.limit else 1.0,
                message=f"{fraction:.0%} of the {budget.period} budget of {budget.scope} "
                f"(${budget.limit_usd:g}) is spent: ${view.spent_usd:.6f}",
                period=budget.period))
    directive = None
    lift = False
    exhausted = budget.hard and view.exhausted(exhausted_below)
    blocked = flags.blocked_until is not None and flags.blocked_until > view.now
    if exhausted and not blocked:
        until = _unblock_at(view, exhausted_below)
        flags.blocked_until = until
        directive = ThrottleDirective(
            scope=budget.scope, origin=f"budget:{budget.period}", action="block",
            until=_ts(until), reason="budget_exhausted",
            message=f"the {budget.period} budget of {budget.scope} (${budget.limit_usd:g}) is "
            f"spent: ${view.spent_usd:.6f}", ts=_ts(view.now),
            details={"limit_usd": budget.limit_usd, "spent_usd": view.spent_usd})
    elif not exhausted and flags.blocked_until is not None:
        flags.blocked_until = None
        lift = True
    return Signals(flags, alerts, directive, lift)
