"""Outlooks: calendar periods add the rest-of-period forecast to what is used; rolling windows
also subtract what will have left the window, and report its peak and first crossing."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prsm_events.accounting.budget_figures import BudgetFigures
from prsm_events.accounting.budgets import Budget
from prsm_events.accounting.ledger_view import NANO, BudgetView
from prsm_events.watch.outlook import (
    BudgetOutlook,
    OutlookColumns,
    Outlooks,
    overrun_alert,
    rolling_horizons,
)

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


# --- outlooks as columns (a tick over many budgets) ----------------------------------------

MONEY = st.floats(0.0, 200.0, allow_nan=False)


@st.composite
def calendar_case(draw: st.DrawFn) -> tuple[BudgetView, tuple[float, float, float]]:
    budget = Budget(scope="tenant:a", period="day", limit_usd=draw(st.sampled_from([0, 1, 50])))
    left_s = draw(st.sampled_from([0.0, 60.0, 43200.0]))
    view = BudgetView(budget, NOW, round(draw(MONEY) * NANO), round(draw(MONEY) * NANO),
                      NOW - 3600.0, NOW + left_s)
    mean, spread = draw(st.floats(-5.0, 300.0)), draw(st.floats(0.0, 50.0))
    return view, (mean, mean - spread, mean + spread)


@settings(max_examples=200, deadline=None)
@given(st.lists(calendar_case(), min_size=1, max_size=8))
def test_calendar_columns_equal_each_budgets_outlook(
        cases: list[tuple[BudgetView, tuple[float, float, float]]]) -> None:
    views = [v for v, _ in cases]
    mean, low, high = (np.array([rest[j] for _, rest in cases]) for j in range(3))
    columns = OutlookColumns.calendar([v.budget for v in views],
                                      BudgetFigures.of_views(views, NOW), mean, low, high)
    for i, (view, rest) in enumerate(cases):
        assert columns.outlook(i) == BudgetOutlook.of(view, rest)
    overruns = {i for i, (v, r) in enumerate(cases) if BudgetOutlook.of(v, r).overruns}
    assert overruns <= set(columns.may_overrun().tolist())


@st.composite
def rolling_case(draw: st.DrawFn) -> tuple[BudgetView, list[tuple[float, float, float]]]:
    horizons = rolling_horizons(24 * H, 60.0)
    releases = sorted(draw(st.lists(st.tuples(st.floats(0.0, 30.0), st.floats(0.0, 40.0)),
                                    max_size=6)))
    view = rolling_view(sum(usd for _, usd in releases) + draw(MONEY), releases,
                        limit=draw(st.sampled_from([1.0, 100.0, 400.0])),
                        reserved=draw(st.sampled_from([0.0, 2.5])))
    rate = draw(st.floats(0.0, 20.0))
    wobble = draw(st.lists(st.floats(-3.0, 3.0), min_size=len(horizons),
                           max_size=len(horizons)))
    ahead = [(rate * h / H + w, rate * h / H + w - 1.0, rate * h / H + w + 2.0)
             for h, w in zip(horizons, wobble, strict=True)]
    return view, ahead


@settings(max_examples=150, deadline=None)
@given(st.lists(rolling_case(), min_size=1, max_size=5))
def test_rolling_columns_equal_each_windows_outlook(
        cases: list[tuple[BudgetView, list[tuple[float, float, float]]]]) -> None:
    horizons = rolling_horizons(24 * H, 60.0)
    views = [v for v, _ in cases]
    mean, low, high = (np.array([[a[j] for a in ahead] for _, ahead in cases])
                       for j in range(3))
    columns = OutlookColumns.rolling([v.budget for v in views],
                                     BudgetFigures.of_views(views, NOW), horizons,
                                     mean, low, high)
    for i, (view, ahead) in enumerate(cases):
        assert columns.outlook(i) == BudgetOutlook.rolling(view, horizons, ahead)


def test_outlooks_build_an_outlook_only_when_asked() -> None:
    budgets = [Budget(scope=f"tenant:t{i}", period="day", limit_usd=10.0) for i in range(3)]
    views = [BudgetView(b, NOW, i * NANO, 0, NOW - H, NOW + H) for i, b in enumerate(budgets)]
    outlooks = Outlooks()
    outlooks.add(OutlookColumns.calendar(budgets[:2], BudgetFigures.of_views(views[:2], NOW),
                                         *(np.ones(2) for _ in range(3))))
    outlooks.add(OutlookColumns.calendar(budgets[2:], BudgetFigures.of_views(views[2:], NOW),
                                         *(np.ones(1) for _ in range(3))))
    assert list(outlooks) == [b.key for b in budgets] and len(outlooks) == 3
    assert [outlooks[b.key].spent_usd for b in budgets] == [0.0, 1.0, 2.0]
    assert "tenant:x|day" not in outlooks and outlooks.get("tenant:x|day") is None
    assert outlooks.figures()["tenant:t2|day"] == BudgetOutlook.of(views[2], (1, 1, 1)).figures()
