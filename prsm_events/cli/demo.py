"""``prsm demo``: broker + worker + replay + spend report + a budget with decisions and its
forecast, then stop what it started."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from prsm_events.cli.worker_process import WorkerProcess
from prsm_events.errors import PrsmError
from prsm_events.settings import Settings

__all__ = ["run_demo"]


def run_demo(settings: Settings, trace: Path | None, *, speed: float, limit: int) -> None:
    from prsm_events.cli.replay import replay_trace
    from prsm_events.cli.worker_api import fetch_report
    from prsm_events.kafka.admin import provision_topics, wait_for_broker
    from prsm_events.kafka.dev_broker import LocalBroker

    broker = None
    if not settings.kafka_bootstrap:
        broker = LocalBroker(settings.home, settings.broker_port)
        if broker.pid() is not None:
            broker = None  # already running: leave it running (it may still be starting)
            click.echo("using the running local broker", err=True)
            asyncio.run(wait_for_broker(settings.kafka))
        else:
            click.echo("starting the local Kafka broker ...", err=True)
            broker.start()
    # score every second (default 60 s) so that forecasts show within the demo
    settings = settings.model_copy(update={"scoring_interval_s": 1.0})
    worker = WorkerProcess(settings, settings.home / "logs" / "demo-worker.log")
    try:
        provision_topics(settings)
        click.echo("starting the worker ...", err=True)
        worker.start()
        before = worker.get("/stats")
        since = datetime.now(UTC)
        source = str(trace) if trace else "a synthetic workload"
        click.echo(f"replaying {source} (first {limit} rows, {speed:g}x) ...", err=True)
        sent = replay_trace(settings, trace, speed=speed, seed=0, tenants=5, limit=limit,
                            run_id=None)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            stats = worker.get("/stats")
            done = sum(stats[k] - before[k] for k in ("accepted", "dead_lettered", "duplicates"))
            # the report reads ClickHouse, which the sink writes after the tables count
            stored = stats["sink"]["rows"] - before["sink"]["rows"]
            if done >= sent and stored >= stats["accepted"] - before["accepted"]:
                break
            time.sleep(0.5)
        else:
            raise PrsmError(f"the worker processed {done} of {sent} events in time "
                            f"({stored} written to ClickHouse)")
        for by in ("tenant", "tenant,service", "provider,model"):
            click.echo(f"\nspend by {by} (this run, from ClickHouse)")
            click.echo(fetch_report(settings, "spend", {"by": by, "since": since.isoformat()}
                                    ).render("table"), nl=False)
        asyncio.run(demo_decisions(settings, worker))
    finally:
        worker.stop()
        if broker is not None:
            broker.stop()


async def demo_decisions(settings: Settings, worker: WorkerProcess, requests: int = 40) -> None:
    """A $0.05/day hard budget, then requests for gpt-4o ($0.0075 each), every admitted one
    followed by its usage event: watch allow turn into route, defer and throttle."""
    from prsm_events.accounting.budgets import Budget
    from prsm_events.events.request import RequestEvent
    from prsm_events.events.usage import UsageEvent
    from prsm_events.kafka.config_topics import budget_record, publish
    from prsm_events.sdk.decision_client import DecisionClient
    from prsm_events.sdk.publisher import UsagePublisher

    tenant = f"demo-{uuid.uuid4().hex[:6]}"
    budget = Budget(scope=f"tenant:{tenant}", period="day", limit_usd=0.05, alert_at=(0.5,))
    await publish(settings, "budgets", [budget_record(budget)])
    deadline = time.monotonic() + 10
    while budget.key not in {b["key"] for b in worker.get("/budgets").get("budgets", ())}:
        if time.monotonic() > deadline:
            raise PrsmError("the worker did not pick up the demo budget")
        await asyncio.sleep(0.1)
    click.echo(f"\ndecisions for {requests} gpt-4o requests of tenant {tenant} "
               f"against a ${budget.limit_usd:g}/day hard budget (each used as decided)")
    outcomes: Counter[tuple[str, str, str]] = Counter()
    async with DecisionClient(settings, timeout_s=5.0) as client, \
            UsagePublisher(settings.kafka, topic=settings.topic("usage")) as usage:
        for i in range(requests):
            d = await client.decide(RequestEvent(
                request_id=f"{tenant}-{i}", ts=datetime.now(UTC), tenant=tenant,
                service="chat", model="gpt-4o", est_input_tokens=1000, est_output_tokens=500,
                priority="low" if i % 4 == 3 else "normal", min_quality=0.8))
            outcomes[(d.action.value, d.reason.code, d.model or "-")] += 1
            if d.admitted:
                await usage.publish(UsageEvent(
                    event_id=f"u-{d.request_id}", ts=datetime.now(UTC), tenant=tenant,
                    service="chat", model=d.model, provider=d.provider,
                    request_id=d.request_id, cost_usd=d.est_cost_usd))
    click.echo(f"{'action':<9} {'reason':<22} {'model':<18} requests")
    for (action, code, model), n in sorted(outcomes.items()):
        click.echo(f"{action:<9} {code:<22} {model:<18} {n}")
    await asyncio.sleep(2.5)  # the last usage events settle; the scorer ticks
    for _ in range(40):  # after its start the worker skips intervals until it is current
        if "ticks" in (worker.get("/stats").get("scoring") or {}):
            break
        await asyncio.sleep(0.25)
    figures = next(b for b in worker.get_steady("/budgets")["budgets"]
                   if b["key"] == budget.key)
    click.echo(f"budget {budget.key}: spent ${figures['spent_usd']:.4f}, reserved "
               f"${figures['reserved_usd']:.4f} of ${budget.limit_usd:g}")
    f = figures.get("forecast") or {}
    if f.get("method") == "seasonal":
        click.echo(describe_forecast(f, budget.limit_usd if budget.hard else None))
    scoring = worker.get("/stats").get("scoring") or {}
    if "ticks" in scoring:
        click.echo(f"batch scoring: {scoring['scopes']} scopes on {scoring['backend']}, "
                   f"{scoring['ticks']} ticks, last {scoring['tick_ms']} ms")


def describe_forecast(f: dict[str, Any], hard_limit: float | None = None) -> str:
    """A budget's forecast for a person: while it is still learning, no interval; a hard
    budget forecast past its limit says that spend stops there (the forecast is demand).

    >>> print(describe_forecast({
    ...     "period_end_spend_usd": 903.89, "period_end": "2026-01-02T00:00:00",
    ...     "period_end_spend_low_usd": None, "period_end_spend_high_usd": None,
    ...     "exhaustion_ts": None, "learning": True}))  # doctest: +NORMALIZE_WHITESPACE
    forecast: still learning (too little history for the rest of the period); at the pace so
    far $903.8900 by 2026-01-02T00:00:00
    >>> describe_forecast({"period_end_spend_usd": 1.5, "period_end": "2026-01-02T00:00:00",
    ...                    "period_end_spend_low_usd": 1.25, "period_end_spend_high_usd": 1.75,
    ...                    "exhaustion_ts": None, "learning": False})
    'forecast: $1.5000 by 2026-01-02T00:00:00 (90%: $1.2500-$1.7500), not exhausted'
    >>> describe_forecast({"period_end_spend_usd": 1.5, "period_end": "2026-01-02T00:00:00",
    ...                    "period_end_spend_low_usd": 1.25, "period_end_spend_high_usd": 1.75,
    ...                    "exhaustion_ts": "2026-01-01T20:00:00", "learning": False},
    ...                   hard_limit=1.0).split("; ")[1]
    'a hard budget: admissions stop at its $1 limit'
    """
    exhausted = (f"exhausted at {f['exhaustion_ts']}" if f.get("exhaustion_ts")
                 else "not exhausted")
    capped = (f"; a hard budget: admissions stop at its ${hard_limit:g} limit"
              if hard_limit is not None and f["period_end_spend_usd"] > hard_limit else "")
    if f.get("learning"):
        return ("forecast: still learning (too little history for the rest of the period); "
                f"at the pace so far ${f['period_end_spend_usd']:.4f} by {f['period_end']}"
                + (f", {exhausted}" if f.get("exhaustion_ts") else "") + capped)
    return (f"forecast: ${f['period_end_spend_usd']:.4f} by {f['period_end']} (90%: "
            f"${f['period_end_spend_low_usd']:.4f}-${f['period_end_spend_high_usd']:.4f}), "
            f"{exhausted}{capped}")

