"""Budget snapshots as rows: every budget a worker answers for at a snapshot tick; between
them, only calendar budgets whose period closes before the next tick; records cut by size."""

from __future__ import annotations

import msgspec
import numpy as np

from prsm_events.accounting.budget_figures import BudgetFigures
from prsm_events.accounting.budgets import Budget
from prsm_events.accounting.ledger_view import NANO, BudgetView
from prsm_events.store.clickhouse import TABLE_COLUMNS
from prsm_events.store.snapshot_rows import SNAPSHOT_COLUMNS, SnapshotClock, snapshot_records
from prsm_events.watch.outlook import OutlookColumns, Outlooks

NOW = 86_400.0 * 3 - 30.0  # 30 s before the end of day 3


def outlooks(count: int = 3) -> Outlooks:
    budgets = [Budget(scope=f"tenant:t{i}", period="day", limit_usd=10) for i in range(count)]
    views = [BudgetView(b, now=NOW, spent=i * NANO, reserved=0, start=NOW + 30 - 86_400,
                        end=NOW + 30) for i, b in enumerate(budgets)]
    out = Outlooks()
    out.add(OutlookColumns.calendar(budgets, BudgetFigures.of_views(views, NOW),
                                    *(np.zeros(count) for _ in range(3))))
    week = Budget(scope="tenant:w", period="week", limit_usd=10)
    wv = BudgetView(week, now=NOW, spent=0, reserved=0, start=0.0, end=7 * 86_400.0)
    out.add(OutlookColumns.calendar([week], BudgetFigures.of_views([wv], NOW),
                                    *(np.zeros(1) for _ in range(3))))
    return out


def keys(records: list[bytes]) -> list[str]:
    return [msgspec.json.decode(line)["budget_key"]
            for r in records for line in r.splitlines()]


def test_a_snapshot_tick_writes_every_budget_the_worker_answers_for():
    assert TABLE_COLUMNS["budget_snapshots"] == SNAPSHOT_COLUMNS
    got = keys(snapshot_records(outlooks(), lambda b: b.scope != "tenant:t1"))
    assert got == ["tenant:t0|day", "tenant:t2|day", "tenant:w|week"]


def test_between_ticks_only_periods_closing_before_the_next_tick():
    got = keys(snapshot_records(outlooks(), lambda b: True, every=False, closing_within_s=60))
    assert got == ["tenant:t0|day", "tenant:t1|day", "tenant:t2|day"]  # not the week
    assert snapshot_records(outlooks(), lambda b: True, every=False, closing_within_s=10) == []


def test_records_are_cut_under_the_size_given_and_keep_every_row():
    one = len(snapshot_records(outlooks(1), lambda b: b.period == "day")[0])
    records = snapshot_records(outlooks(3), lambda b: True, max_bytes=2 * one)
    assert [len(r.splitlines()) for r in records] == [2, 2]
    assert all(len(r) <= 2 * one for r in records)
    assert keys(records) == keys(snapshot_records(outlooks(3), lambda b: True))


def test_the_clock_is_off_at_zero_and_due_once_per_interval():
    assert not SnapshotClock(0).due(100.0)
    clock = SnapshotClock(60.0)
    assert [clock.due(t) for t in (59.0, 60.0, 61.0, 119.9, 120.0)] == [
        True, True, False, False, True]
