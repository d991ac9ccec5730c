"""Nothing acknowledged is lost, nothing counted twice: worker crashes, ClickHouse outages."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import pytest

from prsm_events.catalog import Catalog
from prsm_events.models import UsageEvent
from prsm_events.pricing import price_usage
from prsm_events.publisher import UsagePublisher
from tests.integration.conftest import run, wait_until

pytestmark = pytest.mark.integration
CATALOG = Catalog.shipped()


def events(prefix: str, n: int, tenants: int = 3) -> list[UsageEvent]:
    now = datetime.now(UTC)
    return [UsageEvent(event_id=f"{prefix}{i}", ts=now, tenant=f"t{i % tenants}",
                       service="chat", model="gpt-4.1-mini", input_tokens=100 + i,
                       output_tokens=10 + i % 7) for i in range(n)]


def publish(kafka: str, topic: str, batch: list[UsageEvent]) -> None:
    async def go() -> None:
        async with UsagePublisher(kafka, topic=topic) as pub:
            await pub.publish_many(batch)

    run(go())


def totals(batch: list[UsageEvent]) -> tuple[int, float]:
    return len(batch), sum(price_usage(e, CATALOG).cost_usd for e in batch)


def table_totals(worker, tenants: int = 3) -> tuple[int, float]:
    rows = [worker.spend(f"tenant:t{i}") for i in range(tenants)]
    return sum(r["events"] for r in rows), sum(r["cost_usd"] for r in rows)


def store_totals(worker) -> tuple[int, float]:
    rows = worker.report("tenant")
    return sum(r["events"] for r in rows), sum(r["cost_usd"] for r in rows)


def test_tables_survive_a_clean_restart_and_a_crash(start_worker, kafka, tmp_path):
    home = tmp_path / "restart"
    worker = start_worker("it-restart", home=home)
    first = events("r1-", 300)
    publish(kafka, worker.topic("usage"), first)
    wait_until(lambda: worker.processed() >= 300, what="first batch processed")
    worker.stop()  # clean stop: offsets committed, state only in the changelog

    worker = start_worker("it-restart", home=home)  # memory store: rebuilt from changelog
    assert table_totals(worker) == pytest.approx(totals(first))

    second = events("r2-", 3000)
    publish(kafka, worker.topic("usage"), second)
    wait_until(lambda: worker.get("/stats")["accepted"] >= 200, what="part of the burst")
    worker.kill()  # crash in the middle of the burst: uncommitted offsets are re-delivered

    worker = start_worker("it-restart", home=home)
    expected = totals(first + second)
    wait_until(lambda: table_totals(worker)[0] >= expected[0], timeout=90,
               what="all events counted after the crash",
               details=lambda: (table_totals(worker), worker.get("/stats")))
    assert table_totals(worker) == pytest.approx(expected)
    assert store_totals(worker) == pytest.approx(expected)


def test_nothing_is_lost_while_clickhouse_is_unavailable(start_worker, kafka, tmp_path):
    home = tmp_path / "outage"
    dsn = f"chdb://{home / 'clickhouse'}"
    (home / "clickhouse").mkdir(parents=True)
    # Another process holds the embedded ClickHouse data directory: the worker's store
    # cannot open it, exactly as when a ClickHouse server is down.
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, clickhouse_connect; c = clickhouse_connect.get_client(dsn=sys.argv[1]);"
         " print('locked', flush=True); sys.stdin.read()", dsn],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"locked"
        worker = start_worker("it-outage", home=home, clickhouse_dsn=dsn)
        assert worker.get("/health")["clickhouse"] == "unavailable"
        batch = events("o-", 120)
        publish(kafka, worker.topic("usage"), batch)
        wait_until(lambda: worker.get("/stats")["sink_failures"] >= 3, what="sink retries")
        assert worker.get("/stats")["accepted"] == 0  # held back, not acknowledged
    finally:
        assert holder.stdin is not None
        holder.stdin.close()  # ClickHouse comes back
        holder.wait(timeout=30)
    wait_until(lambda: worker.get("/stats")["accepted"] >= 120, timeout=90,
               what="sink caught up", details=lambda: worker.get("/stats"))
    assert worker.get("/health")["clickhouse"] == "up"
    assert store_totals(worker) == pytest.approx(totals(batch))
    assert table_totals(worker) == pytest.approx(totals(batch))
