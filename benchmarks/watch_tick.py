"""The worker's scoring tick with many budgets: how long it takes, and how long it holds the
event loop (where decisions are made) when run in the loop vs beside it (the worker's way).

    python benchmarks/watch_tick.py --budgets 10000 100000 1000000 --period day 24h

Per size and period: that many budgets on as many tenants (half of the ``day`` ones paced), a
ledger holding spend in each budget (and in a rolling window's buckets), and a ``SpendWatch``
warmed up by ``--warm`` ticks of random spend and demand (its scopes are younger than a
day: the slower path of the forecasts). Then ticks alternate between the whole tick in the
loop (``BudgetLedger.figures`` then ``SpendWatch.tick``) and ``tick_off_loop`` (the figures
read in the loop in slices, the tick in a thread), while a coroutine in the loop wakes every
millisecond: the longest and the 99th percentile of the gaps between its wake-ups is how
long a decision could have waited. Medians over ``--repeat`` ticks of each. Python's
collector runs as in the worker (``streams.worker.GC_THRESHOLDS``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.harness import machine_line  # noqa: E402
from prsm_events.accounting.budget_figures import BudgetFigures  # noqa: E402
from prsm_events.accounting.budgets import Budget  # noqa: E402
from prsm_events.accounting.ledger import BudgetLedger, BudgetState  # noqa: E402
from prsm_events.accounting.ledger_view import NANO  # noqa: E402
from prsm_events.accounting.periods import BUCKET_S, ROLLING  # noqa: E402
from prsm_events.kafka.partitioning import owner_partition  # noqa: E402
from prsm_events.scoring import BatchScorer  # noqa: E402
from prsm_events.watch.meter import MeterInterval, SpendMeter  # noqa: E402
from prsm_events.watch.spend_watch import SpendWatch  # noqa: E402
from streams.scoring_timer import tick_off_loop  # noqa: E402
from streams.worker import GC_THRESHOLDS  # noqa: E402

START = 1_767_225_600.0 + 3 * 86400  # a Sunday, 00:00 UTC


class Rig:
    def __init__(self, budgets: int, period: str, seed: int, backend: str = "numpy") -> None:
        self.budgets = [Budget(scope=f"tenant:t{i}", period=period, limit_usd=100.0,
                               pacing=period == "day" and i % 2 == 0) for i in range(budgets)]
        self.ledger = BudgetLedger({}, {}, partitions=1, partition_of=owner_partition)
        self.watch = SpendWatch(BatchScorer(backend), interval_s=60.0)
        self.rng = np.random.default_rng(seed)
        self.now = START
        self._spend_in_ledger()

    def _spend_in_ledger(self) -> None:
        """Each budget's ledger row as the usage agent leaves it (a calendar row's spend; a
        rolling row's buckets over the last hours), as a restarted worker finds them."""
        spent = self.rng.integers(0, 50 * NANO, len(self.budgets)).tolist()
        for b, nano in zip(self.budgets, spent, strict=True):
            start, _ = self.ledger.bounds(b, self.now)
            if b.period in ROLLING:
                width = BUCKET_S[b.period]
                last = int(self.now // width) * width
                buckets = {last - k * width: nano // 4 for k in range(4)}
                self.ledger.states[b.key] = BudgetState(start, 0, buckets).to_list()
            else:
                self.ledger.states[b.key] = BudgetState(start, nano).to_list()

    def interval(self) -> MeterInterval:
        meter = SpendMeter()
        for b in self.budgets:
            meter.add_spend([b.scope], float(self.rng.gamma(2.0)))
            meter.add_demand([b.scope], float(self.rng.gamma(2.0)), high=False)
        self.now += 60.0
        return meter.take()

    def figures(self, budgets: Sequence[Budget]) -> BudgetFigures:
        return self.ledger.figures(budgets, self.now)

    def tick(self, interval: MeterInterval) -> None:
        self.watch.tick(interval, self.budgets, self.figures(self.budgets), self.now)


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

    interval = rig.interval()  # the agents' metering, not the tick's
    waker = asyncio.create_task(wake_every_ms())
    await asyncio.sleep(0.02)
    started = time.perf_counter()
    if off_loop:
        await tick_off_loop(rig.watch, interval, rig.budgets, rig.figures, rig.now,
                            asyncio.Lock())
    else:
        rig.tick(interval)
    took = time.perf_counter() - started
    await asyncio.sleep(0.02)
    done.set()
    await waker
    return took, max(gaps), float(np.percentile(gaps, 99))


async def run(budgets: int, period: str, warm: int, repeat: int, backend: str) -> None:
    rig = Rig(budgets, period, seed=0, backend=backend)
    for _ in range(warm):
        rig.tick(rig.interval())
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
    ap.add_argument("--budgets", type=int, nargs="+", default=[10_000])
    ap.add_argument("--period", nargs="+", default=["day", "24h"])
    ap.add_argument("--warm", type=int, default=5, help="ticks learned before measuring")
    ap.add_argument("--repeat", type=int, default=3, help="measured ticks of each kind")
    ap.add_argument("--backend", default="numpy", help="numpy | cupy | auto")
    args = ap.parse_args(argv)
    gc.set_threshold(*GC_THRESHOLDS)  # the collector as the worker runs it
    print(machine_line())
    print(f"{'budgets':>8s} {'period':>6s} {'tick':>16s} {'tick ms':>10s} "
          f"{'longest gap ms':>14s} {'p99 gap ms':>10s}")
    for budgets in args.budgets:
        for period in args.period:
            asyncio.run(run(budgets, period, args.warm, args.repeat, args.backend))


if __name__ == "__main__":
    main()
