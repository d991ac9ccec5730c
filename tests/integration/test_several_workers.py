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


@pytest.mark.parametrize("count", [1, 2, 3])
def test_a_global_budget_is_never_overspent_whatever_the_number_of_workers(
        count, start_worker, kafka, tmp_path):
    """A global $1 hard budget, requests of 12 tenants from four clients at once: what the
    workers admit together never exceeds it (each worker admits against the share of the
    limit of the partitions it owns); one worker can use it all."""
    import asyncio

    from prsm_events.accounting.budgets import Budget
    from prsm_events.kafka.config_topics import budget_record
    from prsm_events.kafka.config_topics import publish as publish_config
    from prsm_events.sdk.decision_client import DecisionClient
    from tests.factories import request
    from tests.integration.conftest import run

    name = unique(f"it-global{count}")
    common = {"app_id": name, "topic_prefix": f"{name}.", "partitions": 6,
              "reservation_ttl_s": 600.0}
    workers = [start_worker(f"g{i}", home=tmp_path / f"g{i}", sink="worker" if i == 0 else "off",
                            **common) for i in range(count)]
    limit = 1.0
    budget = Budget(scope="global", period="day", limit_usd=limit)
    run(publish_config(workers[0].settings, "budgets", [budget_record(budget)]))
    wait_until(lambda: all(w.get("/health")["budgets"] == 1 for w in workers),
               what="every worker read the budget")
    reqs = [request(tenant=f"t{i % TENANTS}") for i in range(400)]  # $0.0075 each: 133 fit

    async def decide_all() -> list:
        clients = [DecisionClient(workers[0].settings, timeout_s=60.0) for _ in range(4)]
        for c in clients:
            await c.start()
        try:
            return list(await asyncio.gather(*(clients[i % 4].decide(r)
                                               for i, r in enumerate(reqs))))
        finally:
            for c in clients:
                await c.stop()

    decisions = run(decide_all())
    assert all(d.source == "worker" for d in decisions)
    admitted = sum(d.est_cost_usd for d in decisions if d.admitted)
    assert admitted <= limit + 1e-9, f"{count} workers admitted ${admitted:.4f} of ${limit}"
    if count == 1:
        assert admitted >= 0.98 * limit
    held = sum(b["reserved_usd"] for w in workers for b in w.get("/budgets")["budgets"])
    assert held == pytest.approx(admitted, abs=1e-9)  # each worker holds its own shards
    print(f"{count} worker(s): ${admitted:.4f} of ${limit} admitted")
