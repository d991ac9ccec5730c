"""Forecast accuracy on the real broker: a budget's day closes on a running worker, and the
report measures the worker's forecasts against what the day closed at.

A day cannot pass within a test, so the worker's clock is set back (libfaketime, an
LD_PRELOAD library made for this; monotonic time is left alone, so timeouts and the tick
keep real time) to a minute and a half before a whole hour, and the budget's time zone is
the one whose midnight that hour is. Once the worker has counted the day's events, its
clock steps forward (as a clock set by NTP does) to ``LAST_S`` before midnight: the minute
and a half is room to start on a loaded machine, not time the test must wait. A forecast is
shown with an interval (not learning) only once its scope has six hours of history, so the
worker starts from a checkpoint of that history, learned beforehand by the same scorer in
this process."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import msgspec
import numpy as np
import pytest

from prsm_events.accounting.budget_figures import BudgetFigures
from prsm_events.accounting.budgets import Budget
from prsm_events.accounting.periods import calendar_bounds
from prsm_events.cli.worker_api import fetch_report
from prsm_events.events.usage import UsageEvent
from prsm_events.kafka.config_topics import budget_record, publish
from prsm_events.scoring.checkpoint import write_checkpoint
from prsm_events.scoring.forecast_params import CHECK_HORIZON_S
from prsm_events.sdk.publisher import UsagePublisher
from prsm_events.store.snapshot_rows import SnapshotRow
from prsm_events.watch.meter import MeterInterval
from streams.scoring_timer import build_watch, checkpoint_path
from tests.integration.conftest import WorkerHandle, read_to_end, run, unique, wait_until

libfaketime = pytest.importorskip("libfaketime", reason="libfaketime sets the worker's clock")

pytestmark = pytest.mark.integration

TICK_S = 2.0
LEAD_S = 90.0
"""How long before the budget's midnight the worker's clock starts."""
LAST_S = 20.0
"""How long before midnight the worker's clock stands once it has counted the events (two
snapshots, ten ticks)."""


def clock_before_a_midnight(now: float) -> tuple[int, str]:
    """Seconds to set a clock back by so that it reads ``LEAD_S`` before a whole hour (at
    most an hour back: records it writes stay within what the broker takes), and the time
    zone (``Etc/GMT±N``) whose local midnight that hour is."""
    hour = math.floor((now + LEAD_S) / 3600) * 3600
    utc_hour = int(hour // 3600) % 24
    ahead = -utc_hour if utc_hour <= 12 else 24 - utc_hour  # the zone's UTC offset in hours
    return math.floor(hour - LEAD_S - now), "Etc/GMT" if ahead == 0 else f"Etc/GMT{-ahead:+d}"


def test_the_clock_stands_before_a_midnight_of_the_zone() -> None:
    at = datetime(2026, 12, 4, 22, 10, tzinfo=UTC).timestamp()
    # 22:00 UTC is midnight at UTC+2, which POSIX spells GMT-2
    assert clock_before_a_midnight(at) == (-690, "Etc/GMT-2")
    for minutes in range(0, 48 * 60, 7):
        now = at + 60 * minutes
        offset, zone = clock_before_a_midnight(now)
        assert -3600 < offset <= 0
        budget = Budget(scope="tenant:t", period="day", limit_usd=1.0, timezone=zone)
        _, end = calendar_bounds("day", budget.timezone,
                                 datetime.fromtimestamp(now + offset, UTC))
        assert end.timestamp() - (now + offset) == pytest.approx(LEAD_S, abs=1)


def seed_history(handle: WorkerHandle, scope: str, until: float) -> None:
    """Six and a half hours of a steady spend of ``scope``, learned by the scorer the worker
    runs, saved where the worker restores it from; the last interval ends at ``until``."""
    watch = build_watch(handle.settings)
    rng = np.random.default_rng(0)
    ticks = math.ceil((CHECK_HORIZON_S + 1800) / TICK_S)
    for i in range(ticks):
        at = until - (ticks - 1 - i) * TICK_S
        spend = {scope: 0.001 * (1.0 + 0.2 * float(rng.standard_normal()))}
        watch.tick(MeterInterval(spend, {}, {}), [], BudgetFigures.of_views([], at), at)
    write_checkpoint(checkpoint_path(handle.settings), watch.scorer.export(), TICK_S,
                     watch.memory())


def test_forecast_accuracy_against_the_day_the_worker_closed(kafka: str, tmp_path: Path) -> None:
    offset, zone = clock_before_a_midnight(time.time())
    tenant = unique("fa")
    budget = Budget(scope=f"tenant:{tenant}", period="day", limit_usd=10.0, timezone=zone)
    _, faked = libfaketime.get_reload_information()
    clock = tmp_path / "faketime"  # the offset, read again every second
    clock.write_text(f"{offset:+d}\n")
    handle = WorkerHandle("fa", kafka, tmp_path / "fa",
                          env={**faked, "FAKETIME_TIMESTAMP_FILE": str(clock),
                               "FAKETIME_NO_CACHE": "0", "FAKETIME_CACHE_DURATION": "1"},
                          scoring_interval_s=TICK_S, scoring_timescale_s=TICK_S,
                          snapshot_interval_s=10.0)
    seed_history(handle, budget.scope, time.time() + offset)
    handle.start()
    try:
        def worker_now() -> float:
            return time.time() + offset

        midnight = math.floor(worker_now() / 3600 + 1) * 3600
        run(publish(handle.settings, "budgets", [budget_record(budget)]))
        wait_until(lambda: any(b["key"] == budget.key
                               for b in handle.budgets()), 20, "the budget")
        wait_until(lambda: handle.get("/stats")["scoring"].get("ticks", 0) > 0, 20,
                   "a scored tick", details=lambda: handle.get("/stats")["scoring"])
        assert handle.get("/stats")["scoring"]["checkpoint"]["restored_scopes"] >= 1
        events = [UsageEvent(
            event_id=f"{tenant}-{i}", ts=datetime.fromtimestamp(worker_now(), UTC),
            tenant=tenant, service="chat", model="gpt-4o-mini", input_tokens=100,
            cost_usd=round(0.001 + 1e-9 * i, 9)) for i in range(30)]

        async def send() -> None:
            async with UsagePublisher(kafka, topic=handle.topic("usage")) as pub:
                await pub.publish_many(events)

        run(send())
        wait_until(lambda: handle.get("/stats")["accepted"] >= len(events), 20,
                   "the events counted")
        assert worker_now() < midnight - 3 * TICK_S, (
            f"the worker took too long to start: {midnight - worker_now():.1f} s of its day left")
        sent = sum(Decimal(repr(e.cost_usd)) for e in events)
        ahead = math.floor(midnight - LAST_S - worker_now())
        if ahead > 0:
            offset += ahead
            clock.write_text(f"{offset:+d}\n")

        # the day closes on the worker's clock; the next tick writes the new day's figures
        wait_until(lambda: worker_now() > midnight + 2 * TICK_S, LEAD_S, "the day to close")

        def accuracy() -> list[dict]:
            return fetch_report(handle.settings, "forecast-accuracy", {"tenant": tenant}).records

        wait_until(lambda: accuracy() != [], 60, "the closed day in forecast accuracy",
                   details=lambda: handle.get("/stats"))
        [row] = accuracy()

        # what the worker wrote for that day, read from the topic the sink writes from
        rows = {(r.budget_key, r.ts): r for record in run(read_to_end(
            kafka, handle.topic("snapshots"))) for r in msgspec.json.Decoder(
                SnapshotRow).decode_lines(record.value)}
        day = sorted((r for r in rows.values() if r.budget_key == budget.key
                      and r.period_end.timestamp() == midnight), key=lambda r: r.ts)
        closing = day[-1]
        assert midnight - closing.ts.timestamp() <= TICK_S  # the day's last tick wrote it
        assert Decimal(repr(closing.used_usd)) == sent  # it closed at what was sent
        forecasts = day[:-1]
        assert forecasts and not any(r.learning for r in day), "six hours were restored"
        closed = float(sent)
        assert (row["budget_key"], row["elapsed"], row["periods"], row["snapshots"]) == (
            budget.key, "75-100%", 1, len(forecasts))
        assert row["mean_abs_error"] == pytest.approx(
            np.mean([abs(r.forecast_usd - closed) / closed for r in forecasts]), rel=1e-9)
        assert row["coverage"] == pytest.approx(np.mean(
            [r.forecast_low_usd <= closed <= r.forecast_high_usd for r in forecasts]))
        assert row["mean_width"] == pytest.approx(np.mean(
            [(r.forecast_high_usd - r.forecast_low_usd) / closed for r in forecasts]), rel=1e-9)
    finally:
        handle.stop()
