"""The ledger's figures as columns (what a scoring tick reads) equal its views, budget by
budget: calendar and rolling, tenant and global, spent and reserved, across a period's end."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from prsm_events.accounting.budget_figures import BudgetFigures
from prsm_events.accounting.budgets import Budget, BudgetBook
from prsm_events.accounting.ledger import BudgetLedger, to_nano
from prsm_events.kafka.partitioning import owner_partition

DAY0 = 1_767_225_600.0 + 23 * 3600  # an hour before a day ends
TENANTS = ["a", "b", "c"]
BOOK = BudgetBook(
    [Budget(scope=f"tenant:{t}", period=p, limit_usd=5.0, timezone=tz)
     for t in TENANTS for p, tz in (("day", "UTC"), ("month", "Asia/Tokyo"), ("1h", "UTC"),
                                    ("24h", "UTC"))]
    + [Budget(scope="global", period="day", limit_usd=8.0),
       Budget(scope="global", period="1h", limit_usd=8.0),
       Budget(scope="tenant:a/service:chat", period="7d", limit_usd=2.0)])

STEP = st.tuples(st.sampled_from(TENANTS), st.floats(0.0, 2.0), st.sampled_from([0, 60, 1800]),
                 st.booleans())


def figures_equal(a: BudgetFigures, b: BudgetFigures) -> None:
    for name in ("used", "remaining", "start", "end"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    order_a = np.lexsort((a.release_at, a.release_row))
    order_b = np.lexsort((b.release_at, b.release_row))
    for name in ("release_row", "release_at", "release_nano"):
        assert np.array_equal(getattr(a, name)[order_a], getattr(b, name)[order_b]), name


@settings(max_examples=60, deadline=None)
@given(st.lists(STEP, max_size=40), st.sampled_from([None, frozenset({0, 2})]))
def test_the_ledgers_figures_are_its_views(steps: list[tuple[str, float, int, bool]],
                                           owned: frozenset[int] | None) -> None:
    ledger = BudgetLedger({}, {}, partitions=4, partition_of=owner_partition)
    ledger.owned = owned
    now = DAY0
    for offset, (tenant, usd, wait, reserve) in enumerate(steps):
        now += wait
        budgets = BOOK.applicable(["global", f"tenant:{tenant}", f"tenant:{tenant}/service:chat"])
        if reserve:
            ledger.reserve(tenant, f"r{offset}", budgets, to_nano(usd), now, ttl_s=600)
        else:
            ledger.settle(tenant, None, to_nano(usd), now, 0, offset, budgets)
    budgets = list(BOOK)
    ledger.take_dirty()  # rows written to the mapping, as a restarted worker finds them
    restarted = BudgetLedger(ledger.states, ledger.reservations, partitions=4,
                             partition_of=owner_partition)
    restarted.owned = owned
    for at in (now, now + 1800, now + 7200):  # later: periods and windows have moved on
        views = [ledger.view(b, b.tenant or "", at) for b in budgets]
        figures = ledger.figures(budgets, at)
        figures_equal(figures, BudgetFigures.of_views(views, at))
        figures_equal(restarted.figures(budgets, at), figures)
        halves = [ledger.figures(budgets[:5], at), ledger.figures(budgets[5:], at)]
        figures_equal(BudgetFigures.concat(halves), figures)
        rows = [7, 0, 3]
        figures_equal(figures.take(rows), BudgetFigures.of_views([views[i] for i in rows], at))


def test_released_sums_what_leaves_each_window_by_each_horizon() -> None:
    ledger = BudgetLedger({}, {}, partitions=1, partition_of=owner_partition)
    hour = Budget(scope="tenant:a", period="1h", limit_usd=5.0)
    for minute, usd in ((0, 1.0), (10, 2.0), (59, 4.0)):
        ledger.settle("a", None, to_nano(usd), DAY0 + minute * 60, 0, minute, [hour])
    figures = ledger.figures([hour], DAY0 + 3599)
    # the 1-minute buckets leave one hour after they end: at +61 s, +661 s and +3601 s
    assert figures.released([60.0, 61.0, 660.0, 661.0, 3601.0]).tolist() == [
        [0.0, 1.0, 1.0, 3.0, 7.0]]
