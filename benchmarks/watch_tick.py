"""The worker's scoring tick with many budgets: how long it takes, and how long it holds the
event loop (where decisions are made) when run in the loop vs beside it (the worker's way).

    python benchmarks/watch_tick.py --budgets 10000 100000 1000000 --period day 24h
    python benchmarks/watch_tick.py --budgets 1000000 --period day --warm 12 --publish

Per size and period: that many budgets on as many tenants (half of the ``day`` ones paced), a
ledger holding spend in each budget (and in a rolling window's buckets), and a ``SpendWatch``
warmed up by ``--warm`` ticks of random spend and demand (its scopes are younger than a
day: the slower path of the forecasts). Then ticks alternate between the whole tick in the
loop (``BudgetLedger.figures`` then ``SpendWatch.tick``) and ``tick_off_loop`` (the figures
read in the loop in slices, the tick in a thread), while a coroutine in the loop wakes every
millisecond: the longest and the 99th percentile of the gaps between its wake-ups is how
long a decision could have waited. Medians over ``--repeat`` ticks of each. Python's
collector runs as in the worker (``streams.worker.GC_THRESHOLDS``).

After each tick, its pacing directives and lifts (``directives``) are made ready to publish
(``publish ms``: their JSON and partitions, beside the loop); with ``--publish``, published
as the worker does (``streams.scoring_timer.pacing_to_policies``) to a policies topic on a
broker (``PRSM_KAFKA_BOOTSTRAP``, else a local one), acknowledged by it. The loop gaps cover
the publishing too. With ``--warm 12`` or more, every budget is forecast past its limit (an
overrun alert once) and about half of the paced ones throttle: the steady state of a tick
with alerts and directives (fewer warm-up ticks: none yet).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import numpy as np
from aiokafka import AIOKafkaProducer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.harness import bench_broker, bench_home, machine_line  # noqa: E402
from prsm_events.accounting.budget_figures import BudgetFigures  # noqa: E402
from prsm_events.accounting.budgets import Budget  # noqa: E402
from prsm_events.accounting.ledger import BudgetLedger, BudgetState  # noqa: E402
from prsm_events.accounting.ledger_view import NANO  # noqa: E402
from prsm_events.accounting.periods import BUCKET_S, ROLLING  # noqa: E402
from prsm_events.errors import BackendUnavailable  # noqa: E402
from prsm_events.kafka.admin import ensure_topics  # noqa: E402
from prsm_events.kafka.connection import KafkaConnection  # noqa: E402
from prsm_events.kafka.partitioning import KeyPartitions, owner_partition  # noqa: E402
from prsm_events.kafka.topics import TopicSpec  # noqa: E402
from prsm_events.scoring import BatchScorer  # noqa: E402
from prsm_events.scoring.backend import array_module, backend_name  # noqa: E402
from prsm_events.watch.meter import MeterInterval, SpendMeter  # noqa: E402
from prsm_events.watch.spend_watch import SpendWatch, WatchReport  # noqa: E402
from streams.record_batches import RecordBatches  # noqa: E402
from streams.scoring_timer import (  # noqa: E402
    pacing_records,
    pacing_to_policies,
    tick_off_loop,
)
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

    def tick(self, interval: MeterInterval) -> WatchReport:
        return self.watch.tick(interval, self.budgets, self.figures(self.budgets), self.now)


class Policies:
    """Where a tick's pacing directives go: a producer as the worker's (``streams.app``) and
    a policies topic, or (``producer`` None) nowhere: their records are only made."""

    def __init__(self, producer: AIOKafkaProducer | None = None, topic: str = "") -> None:
        self.producer, self.topic = producer, topic
        self.places = KeyPartitions()

    async def publish(self, report: WatchReport) -> int:
        """Publish (or make) ``report``'s pacing records; how many there were."""
        if self.producer is None:
            records = await asyncio.to_thread(pacing_records, report, PARTITIONS, self.places)
            return len(records)
        await pacing_to_policies(RecordBatches(self.producer), self.topic, report, self.places)
        return len(report.paced) + len(report.lifts)


PARTITIONS = 4


async def one_tick(rig: Rig, off_loop: bool, policies: Policies
                   ) -> tuple[float, float, float, float, int]:
    """(tick seconds, publish seconds, longest loop gap, p99 loop gap, directives) for one
    tick."""
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
        report = await tick_off_loop(rig.watch, interval, rig.budgets, rig.figures, rig.now,
                                     asyncio.Lock())
    else:
        report = rig.tick(interval)
    ticked = time.perf_counter()
    directives = await policies.publish(report)
    published = time.perf_counter()
    await asyncio.sleep(0.02)
    done.set()
    await waker
    return (ticked - started, published - ticked, max(gaps), float(np.percentile(gaps, 99)),
            directives)


async def run(budgets: int, period: str, warm: int, repeat: int, backend: str,
              bootstrap: str | None) -> None:
    rig = Rig(budgets, period, seed=0, backend=backend)
    for _ in range(warm):
        rig.tick(rig.interval())
    policies = Policies()
    if bootstrap is not None:
        policies = Policies(AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", linger_ms=0,
            max_batch_size=256 * 1024, max_request_size=1_000_000),
            f"bench{uuid.uuid4().hex[:6]}.policies")
        await ensure_topics(KafkaConnection(bootstrap),
                            [TopicSpec(policies.topic, PARTITIONS, {"cleanup.policy": "compact"})])
        await policies.producer.start()  # type: ignore[union-attr]
    results: dict[bool, list[tuple[float, float, float, float, int]]] = {False: [], True: []}
    try:
        for _ in range(repeat):
            for off_loop in (False, True):
                results[off_loop].append(await one_tick(rig, off_loop, policies))
    finally:
        if policies.producer is not None:
            await policies.producer.stop()
    for off_loop, rows in results.items():
        tick, publish, longest, p99, directives = (statistics.median(r[i] for r in rows)
                                                   for i in range(5))
        where = "beside the loop" if off_loop else "in the loop"
        print(f"{budgets:>8d} {period:>6s} {where:>16s} {tick * 1000:10.0f} "
              f"{directives:>10.0f} {publish * 1000:10.0f} {longest * 1000:14.1f} "
              f"{p99 * 1000:10.1f}", flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budgets", type=int, nargs="+", default=[10_000])
    ap.add_argument("--period", nargs="+", default=["day", "24h"])
    ap.add_argument("--warm", type=int, default=5, help="ticks learned before measuring")
    ap.add_argument("--repeat", type=int, default=3, help="measured ticks of each kind")
    ap.add_argument("--backend", default="numpy", help="numpy | cupy | auto")
    ap.add_argument("--publish", action="store_true",
                    help="publish the pacing directives to a broker (else only make them)")
    args = ap.parse_args(argv)
    try:
        backend = backend_name(array_module(args.backend))
    except BackendUnavailable as exc:
        sys.exit(f"--backend {args.backend}: {exc}")
    gc.set_threshold(*GC_THRESHOLDS)  # the collector as the worker runs it
    print(machine_line())
    print(f"backend: {backend}")
    print(f"publish: {'to a broker, acknowledged' if args.publish else 'made, not sent'}")
    print(f"{'budgets':>8s} {'period':>6s} {'tick':>16s} {'tick ms':>10s} {'directives':>10s} "
          f"{'publish ms':>10s} {'longest gap ms':>14s} {'p99 gap ms':>10s}")
    with ExitStack() as stack:
        bootstrap = broker = None
        if args.publish:
            bootstrap, broker = bench_broker(stack.enter_context(bench_home("tick")))
            if broker is not None:
                stack.callback(broker.stop)
        for budgets in args.budgets:
            for period in args.period:
                asyncio.run(run(budgets, period, args.warm, args.repeat, backend,
                                bootstrap))


if __name__ == "__main__":
    main()
