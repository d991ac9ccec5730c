"""Several worker processes in one consumer group behave as one: they split the partitions,
every event is counted once across them through a SIGKILL of one, and the one sink (in one
worker; the others run with PRSM_SINK=off) makes one report that holds every event once."""

from __future__ import annotations

import pytest

from prsm_events.cli.worker_api import fetch_spend_report
from tests.integration.conftest import unique, wait_until
from tests.integration.test_recovery import events, publish, table_totals, totals

pytestmark = pytest.mark.integration

TENANTS = 12


def union_totals(workers) -> tuple[int, float]:
    """Events and cost in the spend tables of all ``workers`` together (each serves the
    tenants of its own partitions)."""
    parts = [table_totals(w, tenants=TENANTS) for w in workers]
    return sum(p[0] for p in parts), sum(p[1] for p in parts)


@pytest.mark.parametrize("count", [2, 3])
def test_workers_split_the_work_survive_a_kill_and_make_one_report(
        count, start_worker, kafka, tmp_path):
    name = unique(f"it-group{count}")
    common = {"app_id": name, "topic_prefix": f"{name}.", "partitions": 6}
    workers = [start_worker(f"w{i}", home=tmp_path / f"w{i}", sink="worker" if i == 0 else "off",
                            **common) for i in range(count)]
    sink, victim = workers[0], workers[-1]
    assert [w.get("/health")["sink"] for w in workers] == ["ok"] + ["off"] * (count - 1)

    batch = events("grp-", 30_000, tenants=TENANTS)
    publish(kafka, sink.topic("usage"), batch, batch_events=100)
    wait_until(lambda: all(w.get("/stats")["accepted"] > 0 for w in workers), timeout=120,
               what="every worker took a share", details=lambda: [
                   w.get("/stats")["accepted"] for w in workers])
    victim.kill()  # SIGKILL mid-burst: its uncommitted messages go to the others
    alive = workers[:-1]

    expected = totals(batch)
    wait_until(lambda: union_totals(alive)[0] >= expected[0], timeout=180,
               what="the survivors counted every event",
               details=lambda: (union_totals(alive), [w.get("/stats") for w in alive]))
    assert union_totals(alive) == pytest.approx(expected)
    report = sink.stored("tenant", expected[0], timeout=120)
    assert (sum(r["events"] for r in report), sum(r["cost_usd"] for r in report)) == (
        expected[0], pytest.approx(expected[1]))
    assert len(report) == TENANTS
    # `prsm report spend` asks the worker that runs the sink: the same whole report
    by_tenant = fetch_spend_report(sink.settings, "tenant", None).records()
    assert sum(r["events"] for r in by_tenant) == expected[0]
