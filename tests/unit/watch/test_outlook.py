"""Outlooks: calendar periods add the rest-of-period forecast to what is used; rolling windows
also subtract what will have left the window, and report its peak and first crossing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from prsm_events.accounting.budgets import Budget
from prsm_events.accounting.ledger_view import NANO, BudgetView
from prsm_events.watch.outlook import BudgetOutlook, overrun_alert, rolling_horizons

H = 3600.0
NOW = 1_000_000.0


def rolling_view(spent: float, releases: list[tuple[float, float]], limit: float = 100.0,
                 reserved: float = 0.0) -> BudgetView:
    budget = Budget(scope="tenant:a", period="24h", limit_usd=limit)
    return BudgetView(budget, NOW, round(spent * NANO), round(reserved * NANO),
                      NOW - 24 * H, NOW,
                      tuple((NOW + at_h * H, round(usd * NANO)) for at_h, usd in releases))


def at_iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def at(iso: str | None) -> float:
    assert iso is not None
    return datetime.fromisoformat(iso).timestamp()


def test_a_rolling_window_counts_what_leaves_it_and_finds_the_first_crossing() -> None:
    view = rolling_view(80.0, [(2.0, 30.0), (10.0, 20.0)])
    horizons = rolling_horizons(24 * H, 60.0)
    ahead = [(3.0 * h / H, 2.0 * h / H, 4.0 * h / H) for h in horizons]  # $3/h, 90%: 2-4
    o = BudgetOutlook.rolling(view, horizons, ahead)
    # window at +h: 80 - left by then + 3h; 30 + 3h from +10 h on: 100 at +23.33 h
    assert o.period_end_spend_usd == pytest.approx(30 + 72)  # the peak, one window ahead
    assert (o.low_usd, o.high_usd) == pytest.approx((30 + 48, 30 + 96))
    assert o.period_end == NOW + 24 * H and o.overruns
    assert at(o.exhaustion_ts) == pytest.approx(NOW + 23.333 * H, abs=60)
    assert o.figures()["window_peak"] is True and o.figures()["period_end"] == at_iso(NOW + 24 * H)
    alert = overrun_alert(o)
    assert "trailing 24h window" in alert.message and alert.severity == "warning"
    calendar = BudgetOutlook.of(BudgetView(Budget(scope="tenant:a", period="day",
                                                  limit_usd=10.0), NOW, 0, 0, NOW - H, NOW + H),
                                (1.0, 0.5, 1.5))
    assert "window_peak" not in calendar.figures()


def test_a_window_that_drains_faster_than_it_fills_peaks_now() -> None:
    view = rolling_view(90.0, [(1.0, 60.0)], reserved=5.0)
    horizons = rolling_horizons(24 * H, 60.0)
    o = BudgetOutlook.rolling(view, horizons, [(1.0 * h / H,) * 3 for h in horizons])
    assert o.period_end_spend_usd == pytest.approx(95.0) and o.period_end == NOW
    assert not o.overruns and o.exhaustion_ts is None
    full = BudgetOutlook.rolling(rolling_view(101.0, []), horizons,
                                 [(0.0, 0.0, 0.0)] * len(horizons))
    assert at(full.exhaustion_ts) == NOW  # already over


def test_horizons_are_even_and_no_shorter_than_an_interval() -> None:
    assert rolling_horizons(7 * 86400.0, 60.0) == [7 * H * (k + 1) for k in range(24)]
    assert rolling_horizons(3600.0, 3600.0) == [3600.0]
    assert rolling_horizons(3600.0, 7200.0) == [3600.0]
