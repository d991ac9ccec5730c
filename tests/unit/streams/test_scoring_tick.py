"""The scoring timer's tick runs beside the event loop: decisions go on meanwhile, the ledger is
read in the loop (where the agents change it), and a checkpoint never reads a half-done tick."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from prsm_events.accounting.budget_figures import BudgetFigures
from prsm_events.accounting.budgets import Budget
from prsm_events.accounting.ledger_view import BudgetView
from prsm_events.scoring import BatchScorer
from prsm_events.watch.meter import MeterInterval, SpendMeter
from prsm_events.watch.spend_watch import SpendWatch, WatchReport
from streams.scoring_timer import ScorerCheckpoints, tick_off_loop
from tests.factories import view as budget_view

NOW = 1_767_225_600.0 + 12 * 3600  # 2026-01-01 12:00 UTC
BUDGET = Budget(scope="tenant:a", period="day", limit_usd=10.0, pacing=True)


def interval() -> MeterInterval:
    meter = SpendMeter()
    meter.add_spend(["tenant:a"], 0.5)
    meter.add_demand(["tenant:a"], 1.0, high=False)
    return meter.take()


def view(budget: Budget) -> BudgetView:
    """$2 spent, halfway through the day."""
    return budget_view(budget, 2.0, now=NOW, start=NOW - 43200, end=NOW + 43200)


def figures(budgets: Sequence[Budget]) -> BudgetFigures:
    return BudgetFigures.of_views([view(b) for b in budgets], NOW)


class GatedWatch(SpendWatch):
    """Its tick waits (in its thread) until the loop has run a coroutine."""

    def __init__(self) -> None:
        super().__init__(BatchScorer("numpy"), interval_s=60.0)
        self.gate = threading.Event()
        self.log: list[str] = []

    def tick(self, *args: object, **kwargs: object) -> WatchReport:
        self.log.append("tick started")
        if not self.gate.wait(timeout=10):
            raise AssertionError("the loop did not run while the tick ran")
        report = super().tick(*args, **kwargs)  # type: ignore[arg-type]
        self.log.append("tick done")
        return report


async def test_the_loop_runs_while_a_tick_runs_and_reads_the_ledger_itself() -> None:
    watch = GatedWatch()
    loop_thread = threading.get_ident()
    read_in: set[int] = set()

    def ledger_figures(budgets: Sequence[Budget]) -> BudgetFigures:
        read_in.add(threading.get_ident())
        return figures(budgets)

    async def decide_meanwhile() -> None:
        while not watch.log:
            await asyncio.sleep(0.001)
        watch.log.append("decided")
        watch.gate.set()

    report, _ = await asyncio.gather(
        tick_off_loop(watch, interval(), [BUDGET], ledger_figures, NOW, asyncio.Lock()),
        decide_meanwhile())
    assert watch.log == ["tick started", "decided", "tick done"]
    assert read_in == {loop_thread}  # the figures are snapshots taken in the loop
    assert report.outlooks[BUDGET.key].spent_usd == pytest.approx(2.0)
    assert BUDGET.key in report.pacing


async def test_a_checkpoint_waits_for_the_tick_under_way(tmp_path: Path) -> None:
    watch = GatedWatch()
    checkpoints = ScorerCheckpoints(watch, tmp_path / "checkpoint.npz")

    async def save_meanwhile() -> None:
        while not watch.log:
            await asyncio.sleep(0.001)
        saving = asyncio.create_task(checkpoints.save())
        await asyncio.sleep(0.05)
        assert not saving.done()  # held by the tick
        watch.gate.set()
        await saving

    await asyncio.gather(
        tick_off_loop(watch, interval(), [BUDGET], figures, NOW, checkpoints.saving),
        save_meanwhile())
    assert checkpoints.status["saved_ticks"] == 1  # saved after the tick, not halfway


async def test_a_tick_cancelled_by_a_stop_still_finishes_before_the_last_save(
        tmp_path: Path) -> None:
    watch = GatedWatch()
    checkpoints = ScorerCheckpoints(watch, tmp_path / "checkpoint.npz")
    tick = asyncio.create_task(
        tick_off_loop(watch, interval(), [BUDGET], figures, NOW, checkpoints.saving))
    while not watch.log:
        await asyncio.sleep(0.001)
    tick.cancel()  # the worker stops: Faust cancels the timer
    saving = asyncio.create_task(checkpoints.on_stop())
    await asyncio.sleep(0.05)
    assert not saving.done()  # the thread is still in the tick
    watch.gate.set()
    await saving
    with pytest.raises(asyncio.CancelledError):
        await tick
    assert watch.log == ["tick started", "tick done"]
    assert checkpoints.status["saved_ticks"] == 1
