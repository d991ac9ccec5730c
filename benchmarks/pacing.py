"""Budget pacing on a real trace: no control vs a hard cap vs our policy vs our pacing.

    python benchmarks/pacing.py \
        --trace ../shared/data/azure-llm-2023/AzureLLMInferenceTrace_code.csv

The Azure LLM trace (one hour, 8,819 requests) is stretched over one budget day, spread over
tenants with request priorities (25% low, 45% normal, 20% high, 10% critical) and requested
models, and priced with the shipped catalog. Each tenant gets a hard ``day`` budget of
``--fractions`` (default 50% and 80%) of its unconstrained spend. Modes:

- ``none``: everything served at the requested model (the unconstrained spend);
- ``hard-cap``: served at the requested model until the budget is spent, then rejected
  (how most gateways behave);
- ``policy``: our decision policy without pacing (routes to a cheaper model or defers low
  priority once the budget is short);
- ``pacing``: our policy with ``pacing`` on: the worker's own scoring tick (``SpendMeter``,
  ``SpendWatch``, ``BatchScorer``: demand forecaster and pacing controller), every ``--tick-s``
  of budget time, sets each budget's pressure.

A worker runs for days, so its forecasters have history: ``--warm-days`` (default 1) days of the
same trace (tenants, priorities and models drawn anew) are replayed first and only the last day
is measured; ``--warm-days 0`` measures a cold start. Decisions go through ``AdmissionDesk`` and
``BudgetLedger`` (the worker's own code); usage settles at the estimate. Deferred requests are
retried once after ``retry_after_s``.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import random
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.harness import machine_line  # noqa: E402
from prsm_events.accounting.budgets import Budget, BudgetBook  # noqa: E402
from prsm_events.accounting.catalog import Catalog  # noqa: E402
from prsm_events.accounting.ledger import BudgetLedger, to_nano  # noqa: E402
from prsm_events.accounting.scopes import scopes_of  # noqa: E402
from prsm_events.cli.replay import read_trace  # noqa: E402
from prsm_events.decisions.admission import AdmissionDesk  # noqa: E402
from prsm_events.events.request import RequestEvent  # noqa: E402
from prsm_events.kafka.partitioning import owner_partition  # noqa: E402
from prsm_events.scoring.batch import BatchScorer  # noqa: E402
from prsm_events.scoring.forecast_params import ForecastParams  # noqa: E402
from prsm_events.scoring.pacing_step import PacingParams  # noqa: E402
from prsm_events.watch.meter import SpendMeter  # noqa: E402
from prsm_events.watch.spend_watch import SpendWatch  # noqa: E402

DAY = 86400.0
START = datetime(2026, 1, 5, tzinfo=UTC).timestamp()
PRIORITIES = (("low", 0.25), ("normal", 0.45), ("high", 0.20), ("critical", 0.10))
MODELS = ("gpt-4.1", "claude-sonnet-4", "gpt-4o", "gpt-5", "gemini-2.5-pro")
TENANTS = ("acme", "globex", "initech", "umbrella")


@dataclass(frozen=True)
class Req:
    t: float
    rid: str
    tenant: str
    priority: str
    model: str
    inp: int
    out: int


@dataclass
class Outcome:
    served: int = 0
    at_requested: int = 0
    quality: float = 0.0
    cost: float = 0.0
    hc_refused: int = 0
    refused: int = 0
    spent: dict[str, float] = field(default_factory=lambda: defaultdict(float))


def workload(trace: Path, seed: int, day: int = 0) -> list[Req]:
    """The trace as day ``day`` of the replay (tenants, priorities and models drawn by seed)."""
    rng = random.Random(seed)
    rows = read_trace(trace)
    span = max(r.offset_s for r in rows) or 1.0
    reqs = []
    for i, r in enumerate(rows):
        prio = rng.choices([p for p, _ in PRIORITIES], [w for _, w in PRIORITIES])[0]
        reqs.append(Req(START + day * DAY + r.offset_s / span * (DAY - 1), f"d{day}r{i}",
                        rng.choice(TENANTS), prio, rng.choice(MODELS), r.input_tokens,
                        r.output_tokens))
    return reqs


def period_end(t: float) -> float:
    return START + (int((t - START) // DAY) + 1) * DAY


def unconstrained(reqs: list[Req], catalog: Catalog) -> dict[str, float]:
    spend: dict[str, float] = defaultdict(float)
    for q in reqs:
        entry = catalog.lookup(q.model)
        assert entry is not None
        spend[q.tenant] += entry.cost(input_tokens=q.inp, output_tokens=q.out)
    return spend


def run_simple(reqs: list[Req], catalog: Catalog, limits: dict[str, float] | None) -> Outcome:
    out = Outcome()
    for q in reqs:
        entry = catalog.lookup(q.model)
        assert entry is not None
        cost = entry.cost(input_tokens=q.inp, output_tokens=q.out)
        if limits is not None and out.spent[q.tenant] + cost > limits[q.tenant]:
            out.refused += 1
            out.hc_refused += q.priority in ("high", "critical")
            continue
        out.served += 1
        out.at_requested += 1
        out.quality += entry.quality
        out.cost += cost
        out.spent[q.tenant] += cost
    return out


class Pacer:
    """The worker's scoring tick, unchanged: ``SpendMeter`` -> ``SpendWatch.tick`` (batch
    scorer: demand forecaster, pacing controller) -> the desk's pacing actions."""

    def __init__(self, book: BudgetBook, tick_s: float) -> None:
        self.book = book
        self.tick_s = tick_s
        self.meter = SpendMeter()
        self.watch = self._new_watch()

    def _new_watch(self) -> SpendWatch:
        return SpendWatch(BatchScorer("numpy", forecast=ForecastParams.every(self.tick_s),
                                      pacing=PacingParams.every(self.tick_s)), self.tick_s)

    def restart(self, checkpoint: bool) -> None:
        """A new worker process: from a checkpoint of this one (saved and restored by the
        worker's own ``ScorerCheckpoints``), or learning from scratch."""
        from streams.scoring_timer import ScorerCheckpoints  # the worker's glue (imports Faust)

        old, self.watch = self.watch, self._new_watch()
        if checkpoint:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "checkpoint.npz"
                asyncio.run(ScorerCheckpoints(old, path).save())
                ScorerCheckpoints(self.watch, path).restore()

    def tick(self, desk: AdmissionDesk, now: float) -> None:
        report = self.watch.tick(self.meter.take(), self.book,
                                 lambda b: desk.ledger.view(b, b.tenant or "", now), now)
        desk.pacing = report.pacing


def run_desk(reqs: list[Req], catalog: Catalog, limits: dict[str, float], pacing: bool,
             tick_s: float, measured_from: float = START,
             restart: tuple[float, bool] | None = None) -> tuple[Outcome, dict[str, int]]:
    """Every request through the desk; outcomes count from ``measured_from`` (earlier days
    only warm the forecaster up). ``restart``: (time, from a checkpoint?) at which the
    worker is restarted."""
    budgets = [Budget(scope=f"tenant:{t}", period="day", limit_usd=limits[t], pacing=pacing)
               for t in TENANTS]
    ledger = BudgetLedger({}, {}, partitions=1, partition_of=owner_partition)
    desk = AdmissionDesk(BudgetBook(budgets), ledger, catalog, reservation_ttl_s=3600)
    pacer = Pacer(desk.book, tick_s) if pacing else None
    next_tick = START + tick_s
    out = Outcome()
    codes: dict[str, int] = defaultdict(int)
    queue = [(q.t, 0, i, q) for i, q in enumerate(reqs)]
    heapq.heapify(queue)
    offset = 0
    while queue:
        t, attempt, seq, q = heapq.heappop(queue)
        while pacer is not None and t >= next_tick:
            if restart is not None and next_tick >= restart[0]:
                pacer.restart(checkpoint=restart[1])
                restart = None
            pacer.tick(desk, next_tick)
            next_tick += tick_s
        now = datetime.fromtimestamp(t, UTC)
        request = RequestEvent(request_id=q.rid, ts=now, tenant=q.tenant, service="chat",
                               model=q.model, est_input_tokens=q.inp, est_output_tokens=q.out,
                               priority=q.priority)
        d = desk.admit(request, now)
        measured = t >= measured_from
        if measured:
            codes[d.reason.code] += 1
        if pacer is not None and attempt == 0:
            asked = catalog.lookup(q.model)
            assert asked is not None
            pacer.meter.add_demand(scopes_of(q.tenant, service="chat", model=q.model),
                                   asked.cost(input_tokens=q.inp, output_tokens=q.out),
                                   high=q.priority in ("high", "critical"))
        if d.action.value == "defer" and attempt == 0 and d.retry_after_s is not None \
                and t + d.retry_after_s < period_end(t):
            heapq.heappush(queue, (t + d.retry_after_s, 1, seq, q))
            continue
        if not d.admitted:
            out.refused += measured
            out.hc_refused += measured and q.priority in ("high", "critical")
            continue
        entry = catalog.lookup(d.model or q.model, d.provider)
        assert entry is not None
        cost = entry.cost(input_tokens=q.inp, output_tokens=q.out)
        offset += 1
        desk.ledger.settle(q.tenant, q.rid, to_nano(cost), t, 0, offset,
                           desk.budgets_for(request, entry.model))
        if pacer is not None:
            pacer.meter.add_spend(scopes_of(q.tenant, service="chat", model=entry.model), cost)
        if not measured:
            continue
        out.served += 1
        out.at_requested += entry.model == q.model
        out.quality += entry.quality
        out.cost += cost
        out.spent[q.tenant] += cost
    return out, dict(codes)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trace", type=Path,
                    default=ROOT.parent / "shared" / "data" / "azure-llm-2023"
                    / "AzureLLMInferenceTrace_code.csv")
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.5, 0.8])
    ap.add_argument("--tick-s", type=float, default=600.0, help="pacing tick, budget seconds")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--codes", action="store_true", help="print reason-code counts")
    ap.add_argument("--restart-at", type=float, default=None, metavar="HOURS",
                    help="also restart the paced worker this many hours into the measured "
                    "day, from its checkpoint and from scratch")
    ap.add_argument("--warm-days", type=int, default=1,
                    help="days replayed before the measured one (the worker runs for days: its "
                    "forecaster has history); each day draws tenants/priorities anew")
    args = ap.parse_args(argv)
    if not args.trace.exists():
        sys.exit(f"trace not found: {args.trace}")
    catalog = Catalog.shipped()
    reqs = workload(args.trace, args.seed, args.warm_days)  # the measured day
    warm = [q for d in range(args.warm_days)
            for q in workload(args.trace, args.seed + 1 + d, d)]
    measured_from = START + args.warm_days * DAY
    free = unconstrained(reqs, catalog)
    hc = sum(q.priority in ("high", "critical") for q in reqs)
    print(machine_line())
    print(f"{len(reqs)} requests ({hc} high/critical), unconstrained spend "
          f"${sum(free.values()):.2f} over {len(TENANTS)} tenants, catalog {catalog.version}")
    print(f"{'budget':>7s} {'mode':19s}{'overspend $':>12s}{'hi/crit refused':>16s}"
          f"{'served':>8s}{'at requested':>13s}{'avg quality':>12s}{'cost $':>9s}")
    for frac in args.fractions:
        limits = {t: free[t] * frac for t in TENANTS}
        runs = {"none": (run_simple(reqs, catalog, None), {}),
                "hard-cap": (run_simple(reqs, catalog, limits), {}),
                "policy": run_desk(warm + reqs, catalog, limits, False, args.tick_s,
                                   measured_from),
                "pacing": run_desk(warm + reqs, catalog, limits, True, args.tick_s,
                                   measured_from)}
        if args.restart_at is not None:
            at = measured_from + args.restart_at * 3600
            for name, checkpoint in (("restart-checkpoint", True), ("restart-cold", False)):
                runs[name] = run_desk(warm + reqs, catalog, limits, True, args.tick_s,
                                      measured_from, (at, checkpoint))
        for mode, (o, codes) in runs.items():
            over = sum(max(0.0, o.spent[t] - limits[t]) for t in TENANTS)
            print(f"{frac:7.0%} {mode:19s}{over:12.4f}{o.hc_refused:16d}"
                  f"{o.served / len(reqs):8.1%}{o.at_requested / len(reqs):13.1%}"
                  f"{o.quality / len(reqs):12.3f}{o.cost:9.2f}")
            if args.codes and codes:
                print("          " + ", ".join(f"{k}={v}" for k, v in sorted(codes.items())))


if __name__ == "__main__":
    main()
