"""Escrow of a global budget: how much of it is usable, and how fast allotments follow demand.

    python benchmarks/escrow.py --workers 1 2 3

Per worker count: that many ``prsm worker`` processes in one group (6 partitions) and a
global hard budget of ``--limit`` USD. Four DecisionClients send requests ($0.0075 each) at
``--rate`` requests/s, open loop: for ``--spread-s`` seconds from 12 tenants spread over every
partition, then only from the tenants of one partition (the demand shifts) until the budget
is spent. A request deferred with ``awaiting_allotment`` is asked again after its
``retry_after_s`` with the same ``request_id``, as a gateway would.

Reported per worker count: what was admitted as a share of the limit (utilisation; above
1.00 would be overspend); the requests deferred at least once in the 2 s after the shift (how
fast the allotments followed the demand) and later (while the budget's last allotment, spread
over partitions, was gathered where the requests were); the answer latency after the shift
from first ask to final answer (p50 / p99, retries included); and when the last deferral came.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.harness import bench_broker, bench_home, machine_line, start_group  # noqa: E402
from prsm_events.accounting.budgets import Budget  # noqa: E402
from prsm_events.events.request import RequestEvent  # noqa: E402
from prsm_events.kafka.partitioning import owner_partition  # noqa: E402
from prsm_events.sdk.decision_client import DecisionClient  # noqa: E402
from prsm_events.settings import Settings  # noqa: E402

PARTITIONS = 6
COST = 0.0075  # gpt-4o, 1,000 input and 500 output tokens


def ask(tenant: str) -> RequestEvent:
    return RequestEvent.model_validate({
        "request_id": f"{tenant}-{uuid.uuid4().hex[:12]}",
        "ts": datetime.now(UTC).isoformat(), "tenant": tenant,
        "service": "chat", "model": "gpt-4o", "est_input_tokens": 1000,
        "est_output_tokens": 500})


async def load(settings: Settings, rate: float, spread_s: float, limit: float) -> dict:
    spread = [f"t{i}" for i in range(12)]
    hot = [t for t in (f"h{i}" for i in range(300)) if owner_partition(t, PARTITIONS) == 5][:4]
    clients = [DecisionClient(settings, timeout_s=60.0) for _ in range(4)]
    for c in clients:
        await c.start()
    out: list[tuple[float, float, bool, int, float]] = []  # (asked, answered, admitted, waits)
    deferrals: list[float] = []

    async def one(i: int, tenant: str, at: float) -> None:
        r = ask(tenant)
        waits = 0
        while True:
            d = await clients[i % 4].decide(r)
            if d.reason.code != "awaiting_allotment":
                break
            waits += 1
            deferrals.append(time.monotonic())
            await asyncio.sleep(d.retry_after_s or 0.25)
        out.append((at, time.monotonic(), d.admitted, waits, d.est_cost_usd))

    try:
        tasks = []
        start = time.monotonic()
        shift = start + spread_s
        most = int((spread_s + 2 * limit / COST / rate + 10) * rate)
        for i in range(most):
            at = start + i / rate
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            tenant = spread[i % len(spread)] if at < shift else hot[i % len(hot)]
            tasks.append(asyncio.ensure_future(one(i, tenant, at)))
            refused = [o for o in out[-20:] if not o[2]]
            if len(refused) == 20:
                break
        await asyncio.gather(*tasks)
    finally:
        for c in clients:
            await c.stop()
    after = sorted(o[1] - o[0] for o in out if o[0] >= shift)
    late = [t for t in deferrals if t >= shift]
    windows: dict[int, list[int]] = {}  # half seconds after the shift: [asked, deferred]
    for o in out:
        if o[0] >= shift:
            w = windows.setdefault(int((o[0] - shift) * 2), [0, 0])
            w[0] += 1
            w[1] += bool(o[3])
    print("after the shift, per half second (asked, deferred):",
          [tuple(windows[k]) for k in sorted(windows)])
    soon = [o for o in out if shift <= o[0] < shift + 2]
    return {
        "admitted": sum(o[4] for o in out if o[2]),
        "soon": len(soon), "soon_deferred": sum(1 for o in soon if o[3]),
        "later_deferred": sum(1 for o in out if o[0] >= shift + 2 and o[3]),
        "p50": after[len(after) // 2] * 1000 if after else 0.0,
        "p99": after[int(len(after) * 0.99)] * 1000 if after else 0.0,
        "last_s": (max(late) - shift) if late else 0.0,
    }


def one_count(bootstrap: str, home: Path, count: int, args: argparse.Namespace) -> dict:
    name = f"escrow{count}{uuid.uuid4().hex[:6]}"
    budget = Budget(scope="global", period="day", limit_usd=args.limit)
    first, workers = start_group(bootstrap, home, name, count, PARTITIONS, [budget])
    try:
        deadline = time.monotonic() + 60
        while not all(w.get("/health")["budgets"] == 1 for w in workers):
            if time.monotonic() > deadline:
                raise RuntimeError("the workers did not read the budget")
            time.sleep(0.2)
        time.sleep(5)  # the group settles (a rebalance per worker that joined)
        return asyncio.run(load(first, args.rate, args.spread_s, args.limit))
    finally:
        for w in workers:
            w.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--limit", type=float, default=6.0)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--spread-s", type=float, default=3.0)
    args = ap.parse_args()
    with bench_home("escrow") as home:
        bootstrap, broker = bench_broker(home / "broker")
        try:
            results = {n: one_count(bootstrap, home, n, args) for n in args.workers}
        finally:
            if broker is not None:
                broker.stop()
    print(machine_line())
    print(f"partitions: {PARTITIONS}, global budget ${args.limit:g}, {args.rate:g} requests/s "
          f"of ${COST}: {args.spread_s:g} s spread over 12 tenants, then one partition's")
    print("| workers | admitted / limit | deferred in the 2 s after the shift | deferred "
          "later | answer p50 / p99 after the shift (ms) | last deferral after the shift (s) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n, r in results.items():
        print(f"| {n} | {r['admitted'] / args.limit:.4f} | {r['soon_deferred']} of "
              f"{r['soon']} | {r['later_deferred']} | {r['p50']:.0f} / {r['p99']:.0f} | "
              f"{r['last_s']:.2f} |")

if __name__ == "__main__":
    main()
