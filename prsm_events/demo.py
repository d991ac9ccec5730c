"""``prsm demo``: broker + worker + replay + spend report, then stop what it started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import click
import orjson

from prsm_events.errors import PrsmError
from prsm_events.settings import Settings

__all__ = ["WorkerProcess", "run_demo"]


class WorkerProcess:
    """``prsm worker`` in a child process, with its HTTP API as the readiness probe."""

    def __init__(self, settings: Settings, log_path: Path, env: dict[str, str] | None = None):
        self.settings = settings
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 120.0) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "prsm_events", "worker"], stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise PrsmError(f"worker exited; see {self.log_path}:\n"
                                + self.log_path.read_text(errors="replace")[-3000:])
            try:
                if self.get("/health").get("ready"):
                    return  # tables recovered from their changelogs, partitions assigned
            except OSError:
                pass
            time.sleep(0.5)
        raise PrsmError(f"worker did not answer within {timeout_s:.0f}s; see {self.log_path}")

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(f"{self.settings.web_url}{path}", timeout=10) as resp:
            return orjson.loads(resp.read())

    def stop(self, timeout_s: float = 60.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def run_demo(settings: Settings, trace: Path | None, *, speed: float, limit: int) -> None:
    from prsm_events.cli import _ensure_topics, fetch_spend_report, replay_trace
    from prsm_events.dev_broker import LocalBroker

    broker = None
    if not settings.kafka_bootstrap:
        broker = LocalBroker(settings.home, settings.broker_port)
        if broker.pid() is not None:
            broker = None  # already running: leave it running
            click.echo("using the running local broker", err=True)
        else:
            click.echo("starting the local Kafka broker ...", err=True)
            LocalBroker(settings.home, settings.broker_port).start()
    worker = WorkerProcess(settings, settings.home / "logs" / "demo-worker.log")
    try:
        _ensure_topics(settings)
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
