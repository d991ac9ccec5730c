"""``prsm demo``: broker + worker + replay + spend report, then stop what it started."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import click

from prsm_events.errors import PrsmError
from prsm_events.settings import Settings
from prsm_events.worker_process import WorkerProcess

__all__ = ["run_demo"]


def run_demo(settings: Settings, trace: Path | None, *, speed: float, limit: int) -> None:
    from prsm_events.cli import fetch_spend_report, provision_topics, replay_trace
    from prsm_events.dev_broker import LocalBroker

    broker = None
    if not settings.kafka_bootstrap:
        broker = LocalBroker(settings.home, settings.broker_port)
        if broker.pid() is not None:
            broker = None  # already running: leave it running
            click.echo("using the running local broker", err=True)
        else:
            click.echo("starting the local Kafka broker ...", err=True)
            broker.start()
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
            if done >= sent:
                break
            time.sleep(0.5)
        else:
            raise PrsmError(f"the worker processed {done} of {sent} events in time")
        for by in ("tenant", "service", "model"):
            click.echo(f"\nspend by {by} (this run, from ClickHouse)")
            click.echo(fetch_spend_report(settings, by, since).render("table"), nl=False)
    finally:
        worker.stop()
        if broker is not None:
            broker.stop()
