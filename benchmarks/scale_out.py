"""Scale-out: aggregate ingest and decision rates with 1, 2 and 3 worker processes.

    python benchmarks/scale_out.py --workers 1 2 3

Per worker count, on one broker: that many ``prsm worker`` processes in one group (6
partitions, so 1, 2 and 3 workers split them evenly; the first runs the ClickHouse sink, the
others ``PRSM_SINK=off``) start on empty topics, then take a backlog of ``--events`` usage
events in the SDK's envelopes of 500 (50 tenants), then a backlog of ``--requests`` decision
requests (20 tenants, each with a budget, and a global one). The rate is counted from the first
event (request) taken to the last, summed over the workers' ``/stats``; each figure is also
given as a ratio to one worker's in the same run. Every process shares this machine's cores
with the broker: on 2 cores more workers cannot add CPU, so this measures what a second and
third worker cost or give here, not what separate machines would.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.decisions import TENANTS, request  # noqa: E402
from benchmarks.harness import bench_broker, bench_home, machine_line, start_group  # noqa: E402
from benchmarks.ingest import make_events, preload  # noqa: E402
from prsm_events.accounting.budgets import Budget  # noqa: E402
from prsm_events.cli.worker_process import WorkerProcess  # noqa: E402

PARTITIONS = 6


def drain_rate(workers: list[WorkerProcess], count: Callable[[dict], int], n: int,
               load: Callable[[], None], timeout_s: float = 600.0) -> float:
    """Items/s from the first counted to the last, summed over the workers, after ``load()``."""
    base = sum(count(w.get("/stats")) for w in workers)
    load()
    started, first = None, 0
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = sum(count(w.get("/stats")) for w in workers) - base
        now = time.perf_counter()
        if started is None and done > 0:
            started, first = now, done
        if done >= n:
            assert started is not None
            return (n - first) / max(now - started, 1e-9)
        time.sleep(0.05)
    raise RuntimeError(f"the workers did not take {n} items within {timeout_s:.0f}s")


def one_count(bootstrap: str, home: Path, count: int, events: int, requests: int
              ) -> tuple[float, float]:
    name = f"scale{count}{uuid.uuid4().hex[:6]}"
    prefix = f"{name}."
    budgets = [Budget(scope=f"tenant:t{i}", period="day", limit_usd=1e6)
               for i in range(TENANTS)] + [Budget(scope="global", period="month",
                                                  limit_usd=1e9)]
    _, workers = start_group(bootstrap, home, name, count, PARTITIONS, budgets)
    try:
        usage = make_events(events, 50, 500)
        ingest = drain_rate(workers, lambda s: int(s["accepted"]), events,
                            lambda: asyncio.run(preload(bootstrap, f"{prefix}usage", usage)))
        run = uuid.uuid4().hex[:6]
        asks = [(*request(i, run), 1) for i in range(requests)]
        decide = drain_rate(workers, lambda s: int(s["decisions"]["requests"]), requests,
                            lambda: asyncio.run(preload(bootstrap, f"{prefix}requests", asks)))
    finally:
        for w in workers:
            w.stop()
    return ingest, decide


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--requests", type=int, default=40_000)
    args = ap.parse_args()
    with bench_home("scale") as home:
        bootstrap, broker = bench_broker(home / "broker")
        try:
            rates = {n: one_count(bootstrap, home, n, args.events, args.requests)
                     for n in args.workers}
        finally:
            if broker is not None:
                broker.stop()
    print(machine_line())
    print(f"partitions: {PARTITIONS}, usage: {args.events:,} events in envelopes of 500, "
          f"requests: {args.requests:,}")
    base = rates[args.workers[0]]
    print(f"| workers | ingest events/s | ratio to {args.workers[0]} | decisions/s | ratio |")
    print("|---:|---:|---:|---:|---:|")
    for n, (ingest, decide) in rates.items():
        print(f"| {n} | {ingest:,.0f} | {ingest / base[0]:.2f} | {decide:,.0f} | "
              f"{decide / base[1]:.2f} |")


if __name__ == "__main__":
    main()
