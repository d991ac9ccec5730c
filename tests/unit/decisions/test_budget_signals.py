"""Threshold alerts once per period; block directives when a hard budget is spent."""

from __future__ import annotations

from datetime import UTC, datetime

from prsm_events.accounting.budgets import Budget
from prsm_events.accounting.ledger_view import NANO, BudgetView
from prsm_events.decisions.budget_signals import BudgetFlags, budget_signals
from tests.factories import view

DAY = 86400.0


def test_each_threshold_alerts_once_per_period() -> None:
    b = Budget(scope="tenant:a", period="day", limit_usd=10, alert_at=(0.5, 0.8))
    first = budget_signals(view(b, 6), None, 0.01)
    assert [a.expected for a in first.alerts] == [5.0]
    assert first.alerts[0].kind == "budget_threshold" and first.alerts[0].severity == "info"
    second = budget_signals(view(b, 7), first.flags, 0.01)
    assert second.alerts == []
    third = budget_signals(view(b, 8.5), second.flags, 0.01)
    assert [(a.expected, a.severity) for a in third.alerts] == [(8.0, "warning")]
    # the next day re-arms both thresholds
    next_day = budget_signals(view(b, 9, now=DAY + 5, start=DAY), third.flags, 0.01)
    assert [a.expected for a in next_day.alerts] == [5.0, 8.0]
    assert next_day.alerts[0].alert_id != first.alerts[0].alert_id


def test_block_once_then_lift_when_the_period_rolls() -> None:
    b = Budget(scope="tenant:a", period="day", limit_usd=10)
    spent = budget_signals(view(b, 9.95), None, 0.01)
    assert spent.directive is not None and spent.directive.key == "tenant:a|budget:day"
    assert spent.directive.until == datetime.fromtimestamp(DAY, UTC)
    assert budget_signals(view(b, 10), spent.flags, 0.01).directive is None  # already sent
    rolled = budget_signals(view(b, 0, now=DAY + 1, start=DAY), spent.flags, 0.01)
    assert rolled.lift and rolled.flags.blocked_until is None


def test_soft_budgets_alert_but_never_block() -> None:
    b = Budget(scope="tenant:a", period="day", limit_usd=10, hard=False, alert_at=(1.0,))
    out = budget_signals(view(b, 12), None, 0.01)
    assert out.directive is None and [a.severity for a in out.alerts] == ["critical"]


def test_rolling_block_lasts_until_enough_spend_leaves_the_window() -> None:
    b = Budget(scope="tenant:a", period="1h", limit_usd=10)
    releases = ((4000.0, 6 * NANO), (5000.0, 4 * NANO))
    v = BudgetView(b, 1000.0, 10 * NANO, 0, 1000.0 - 3600, 1000.0, releases)
    out = budget_signals(v, BudgetFlags(), 0.01)
    assert out.directive is not None
    assert out.directive.until == datetime.fromtimestamp(4000.0, UTC)
