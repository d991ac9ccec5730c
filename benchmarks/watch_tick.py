"""The worker's scoring tick with many budgets: how long it takes, and how long it holds the
event loop (where decisions are made) when run in the loop vs beside it (the worker's way).

    python benchmarks/watch_tick.py --budgets 10000 --period day 24h

Per period: ``--budgets`` budgets on as many tenants (half of the ``day`` ones paced), a
ledger, and a ``SpendWatch`` warmed up by ``--warm`` ticks of random spend and demand. Then
ticks alternate between ``SpendWatch.tick`` called in the loop and ``tick_off_loop`` (ledger
views read in the loop in slices, the tick in a thread), while a coroutine in the loop wakes
every millisecond: the longest and the 99th percentile of the gaps between its wake-ups is
how long a decision could have waited. Medians over ``--repeat`` ticks of each.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.harness import machine_line  # noqa: E402
from prsm_events.accounting.budgets import Budget  # noqa: E402
from prsm_events.accounting.ledger import BudgetLedger  # noqa: E402
from prsm_events.accounting.ledger_view import BudgetView  # noqa: E402
from prsm_events.kafka.partitioning import owner_partition  # noqa: E402
from prsm_events.scoring import BatchScorer  # noqa: E402
from prsm_events.watch.meter import MeterInterval, SpendMeter  # noqa: E402
from prsm_events.watch.spend_watch import SpendWatch  # noqa: E402
from streams.scoring_timer import tick_off_loop  # noqa: E402

START = 1_767_225_600.0 + 3 * 86400  # a Sunday, 00:00 UTC


class Rig:
    def __init__(self, budgets: int, period: str, seed: int) -> None:
        self.budgets = [Budget(scope=f"tenant:t{i}", period=period, limit_usd=100.0,
                               pacing=period == "day" and i % 2 == 0) for i in range(budgets)]
        self.ledger = BudgetLedger({}, {}, partitions=1, partition_of=owner_partition)
        self.watch = SpendWatch(BatchScorer("numpy"), interval_s=60.0)
        self.rng = np.random.default_rng(seed)
        self.now = START

    def interval(self) -> MeterInterval:
        meter = SpendMeter()
        for b in self.budgets:
            meter.add_spend([b.scope], float(self.rng.gamma(2.0)))
            meter.add_demand([b.scope], float(self.rng.gamma(2.0)), high=False)
        self.now += 60.0
        return meter.take()

    def view(self, budget: Budget) -> BudgetView:
        return self.ledger.view(budget, budget.tenant or "", self.now)


async def one_tick(rig: Rig, off_loop: bool) -> tuple[float, float, float]:
    """(tick seconds, longest loop gap, p99 loop gap) for one tick."""
    gaps: list[float] = []
    done = asyncio.Event()

    async def wake_every_ms() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.001)
            t = time.perf_counter()
            gaps.append(t - last)
            last = t

    waker = asyncio.create_task(wake_every_ms())
    await asyncio.sleep(0.02)
    interval = rig.interval()
    started = time.perf_counter()
    if off_loop:
        await tick_off_loop(rig.watch, interval, rig.budgets, rig.view, rig.now, asyncio.Lock())
    else:
        rig.watch.tick(interval, rig.budgets, rig.view, rig.now)
    took = time.perf_counter() - started
    await asyncio.sleep(0.02)
    done.set()
    await waker
    return took, max(gaps), float(np.percentile(gaps, 99))


async def run(budgets: int, period: str, warm: int, repeat: int) -> None:
    rig = Rig(budgets, period, seed=0)
    for _ in range(warm):
        rig.watch.tick(rig.interval(), rig.budgets, rig.view, rig.now)
    results: dict[bool, list[tuple[float, float, float]]] = {False: [], True: []}
    for _ in range(repeat):
        for off_loop in (False, True):
            results[off_loop].append(await one_tick(rig, off_loop))
    for off_loop, rows in results.items():
        tick, longest, p99 = (statistics.median(r[i] for r in rows) for i in range(3))
        where = "beside the loop" if off_loop else "in the loop"
        print(f"{budgets:>8d} {period:>6s} {where:>16s} {tick * 1000:10.0f} "
              f"{longest * 1000:14.1f} {p99 * 1000:10.1f}", flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budgets", type=int, default=10_000)
    ap.add_argument("--period", nargs="+", default=["day", "24h"])
    ap.add_argument("--warm", type=int, default=30, help="ticks learned before measuring")
    ap.add_argument("--repeat", type=int, default=5, help="measured ticks of each kind")
    args = ap.parse_args(argv)
    print(machine_line())
    print(f"{'budgets':>8s} {'period':>6s} {'tick':>16s} {'tick ms':>10s} "
          f"{'longest gap ms':>14s} {'p99 gap ms':>10s}")
    for period in args.period:
        asyncio.run(run(args.budgets, period, args.warm, args.repeat))


if __name__ == "__main__":
    main()
