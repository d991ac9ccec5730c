"""Several worker processes in one consumer group behave as one: they split the partitions,
every event is counted once across them through a SIGKILL of one, and the one sink (in one
worker; the others run with PRSM_SINK=off) makes one report that holds every event once."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest

from prsm_events.accounting.budgets import Budget
from prsm_events.accounting.pricing import price_usage
from prsm_events.cli.worker_api import fetch_report
from prsm_events.kafka.config_topics import budget_record
from prsm_events.kafka.config_topics import publish as publish_config
from prsm_events.kafka.partitioning import owner_partition
from tests.integration.conftest import run, settled, union_counted, unique, wait_until
from tests.integration.test_recovery import CATALOG, events, publish, totals

pytestmark = pytest.mark.integration

TENANTS = 12


@pytest.mark.parametrize("count", [2, 3])
def test_workers_split_the_work_survive_a_kill_and_make_one_report(
        count, start_worker, kafka, tmp_path):
    name = unique(f"it-group{count}")
    common = {"app_id": name, "topic_prefix": f"{name}.", "partitions": 6,
              "scoring_interval_s": 1.0}
    workers = [start_worker(f"w{i}", home=tmp_path / f"w{i}", sink="worker" if i == 0 else "off",
                            **common) for i in range(count)]
    sink, victim = workers[0], workers[-1]
    assert [w.get("/health")["sink"] for w in workers] == ["ok"] + ["off"] * (count - 1)
    # a budget per tenant and one over them all (over the last 24 h: no midnight between
    # the events and the reads)
    budgets = [Budget(scope=f"tenant:t{i}", period="24h", limit_usd=1000.0)
               for i in range(TENANTS)] + [Budget(scope="global", period="24h", limit_usd=1e4)]
    run(publish_config(sink.settings, "budgets", [budget_record(b) for b in budgets]))

    batch = events("grp-", 30_000, tenants=TENANTS)
    publish(kafka, sink.topic("usage"), batch, batch_events=100)
    wait_until(lambda: all(w.get("/stats")["accepted"] > 0 for w in workers), timeout=120,
               what="every worker took a share", details=lambda: [
                   w.get("/stats")["accepted"] for w in workers])
    victim.kill()  # SIGKILL mid-burst: its uncommitted messages go to the others
    alive = workers[:-1]

    expected = totals(batch)
    counted = union_counted(alive, expected[0], "the survivors counted every event")
    assert counted == pytest.approx(expected)  # not one event more, nor a cent
    report = sink.stored("tenant", expected[0], timeout=120)
    assert (sum(r["events"] for r in report), sum(r["cost_usd"] for r in report)) == (
        expected[0], pytest.approx(expected[1]))
    assert len(report) == TENANTS
    # `prsm report spend` asked of any survivor comes from the worker that runs the sink
    # (a worker with PRSM_SINK=off answers 409; the CLI finds the sink through GET /group)
    assert [w.process.get_steady("/group")["sink"] for w in alive] == [True] + [False] * (
        len(alive) - 1)
    for asked in alive:
        by_tenant = fetch_report(asked.settings, "spend", {"by": "tenant"}).records
        assert sum(r["events"] for r in by_tenant) == expected[0]

    # each survivor's scoring tick looks at the budgets of its own tenants and the global
    # one: between them, each tenant's budget once
    def looked_at(worker) -> tuple[int, int]:
        owned = set(worker.get("/health")["partitions"])
        mine = sum(owner_partition(f"t{i}", 6) in owned for i in range(TENANTS))
        return worker.get("/stats")["scoring"].get("budgets", -1), 1 + mine

    # (read together, once a poll: a second read could fall in another tick or generation)
    def each_ticks_its_own() -> bool:
        pairs = [looked_at(w) for w in alive]
        return (all(a == b for a, b in pairs)
                and sum(a for a, _ in pairs) == TENANTS + len(alive))

    wait_until(each_ticks_its_own, timeout=30,
               what="each survivor ticking the budgets it answers for, each tenant's once",
               details=lambda: [looked_at(w) for w in alive])

    # each survivor lists the budgets of its own tenants and the global one, and names the
    # others (GET /group); `prsm budget outlook` asks them all: every budget once, with the
    # whole spend
    by_tenant_cost: dict[str, float] = {}
    for e in batch:
        by_tenant_cost[e.tenant] = by_tenant_cost.get(e.tenant, 0.0) + price_usage(
            e, CATALOG).cost_usd
    for worker in alive:
        answer = worker.process.get_steady("/budgets")
        mine = {f"tenant:t{i}|24h" for i in range(TENANTS)
                if owner_partition(f"t{i}", 6) in answer["partitions"]}
        assert {b["key"] for b in answer["budgets"]} == mine | {"global|24h"}
        assert sorted(w["url"] for w in worker.process.get_steady("/group")["workers"]) == (
            sorted(w.settings.web_url for w in alive))
    env = {**os.environ, **sink.settings.as_env()}
    outlook: list[list[dict]] = []

    def whole_outlook() -> bool:
        done = subprocess.run([sys.executable, "-m", "prsm_events", "budget", "outlook",
                               "--format", "json"], env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        outlook.append(orjson.loads(done.stdout))
        rows = {r["key"]: r for r in outlook[-1]}
        return rows.get("global|24h", {}).get("spent_usd") == pytest.approx(expected[1])

    # (the global budget's whole is what partition 0's owner knows of the others' shares:
    # they publish theirs every PRSM_ESCROW_INTERVAL_S)
    wait_until(whole_outlook, timeout=30, what="the outlook's global budget whole",
               details=lambda: outlook[-1:])
    rows = {r["key"]: r for r in outlook[-1]}
    assert sorted(rows) == sorted([f"tenant:t{i}|24h" for i in range(TENANTS)] + ["global|24h"])
    for i in range(TENANTS):
        assert rows[f"tenant:t{i}|24h"]["spent_usd"] == pytest.approx(by_tenant_cost[f"t{i}"])
    assert [p["partition"] for p in rows["global|24h"]["partitions"]] == list(range(6))


@pytest.mark.parametrize("count", [1, 2, 3])
def test_a_global_budget_is_never_overspent_and_its_allotments_follow_demand(
        count, start_worker, kafka, tmp_path):
    """A global $1 hard budget, requests from four clients at once: first 100 spread over
    12 tenants, then 300 from the tenants of one partition only (demand shifts). A request
    deferred while allotment moves to its partition (``awaiting_allotment``) is asked again
    after its retry_after, as a gateway would. Whatever the number of workers, what they
    admit together never passes the limit, and at least 98% of it is used."""
    import asyncio
    import time

    from prsm_events.kafka.partitioning import owner_partition
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
    settled(workers)
    hot = [f"h{i}" for i in range(200) if owner_partition(f"h{i}", 6) == 5][:3]
    reqs = ([request(tenant=f"t{i % TENANTS}") for i in range(100)]  # $0.0075 each
            + [request(tenant=hot[i % len(hot)]) for i in range(300)])
    waits = []

    async def decide_all() -> list:
        clients = [DecisionClient(workers[0].settings, timeout_s=60.0) for _ in range(4)]
        for c in clients:
            await c.start()

        async def decide(i: int, r):
            while True:
                d = await clients[i % 4].decide(r)
                if d.reason.code != "awaiting_allotment":
                    return d
                waits.append(d.retry_after_s)
                await asyncio.sleep(d.retry_after_s)

        try:
            first = await asyncio.gather(*(decide(i, r) for i, r in enumerate(reqs[:100])))
            started = time.monotonic()
            then = await asyncio.gather(*(decide(i, r) for i, r in enumerate(reqs[100:])))
            return [*first, *then, time.monotonic() - started]
        finally:
            for c in clients:
                await c.stop()

    *decisions, shifted_s = run(decide_all())
    assert all(d.source == "worker" for d in decisions)
    admitted = sum(d.est_cost_usd for d in decisions if d.admitted)
    hot_admitted = sum(d.est_cost_usd for d in decisions[100:] if d.admitted)
    assert admitted <= limit + 1e-9, f"{count} workers admitted ${admitted:.4f} of ${limit}"
    assert admitted >= 0.98 * limit, f"{count} workers admitted only ${admitted:.4f}"
    refused = {d.reason.code for d in decisions if not d.admitted}
    assert refused <= {"budget_exhausted", "over_budget"}, refused
    # every worker's figures of the budget come to what was admitted (its own partitions'
    # rows and what the others published)
    wait_until(lambda: all(abs(w.budgets()[0]["reserved_usd"] - admitted)
                           < 1e-9 for w in workers), timeout=30,
               what="every worker sees the whole budget", details=lambda: [
                   w.budgets()[0] for w in workers])
    # and no partition holds more than its allotment (the whole can pass while one does)
    parts = [part for w in workers for part in w.budgets()[0]["partitions"]]
    assert sorted(part["partition"] for part in parts) == list(range(6))
    over = [part for part in parts if part["taken_usd"] > part["allotment_usd"] + 1e-9]
    assert not over, over
    print(f"{count} worker(s): ${admitted:.4f} of ${limit} admitted; after the shift to one "
          f"partition ${hot_admitted:.4f} in {shifted_s:.2f} s, {len(waits)} deferrals")


@pytest.mark.parametrize("change", ["kill", "join"])
def test_a_global_budget_holds_through_a_rebalance_mid_stream(
        change, start_worker, kafka, tmp_path):
    """A global $1 hard budget, 400 requests of 12 tenants (three times the limit) from four
    clients that ask deferred requests again, in a steady stream; once 60 are decided the
    group changes: one of three workers is SIGKILLed, or two workers join the one that owned
    every partition. Every request admitted by any decision (before the change or after, by
    whichever worker answered it) holds a reservation: they add up to at most the limit and
    to at least 98% of it, every worker left sees that whole budget, and no partition holds
    more than its allotment (fencing, streams/fencing.py)."""
    import threading

    from tests.factories import request
    from tests.integration.conftest import (
        answers_and_admitted,
        decide_in_steps,
        global_budget_held,
        publish_global_budget,
        read_to_end,
        run,
    )

    name = unique(f"it-global-{change}")
    common = {"app_id": name, "topic_prefix": f"{name}.", "partitions": 6,
              "reservation_ttl_s": 900.0}

    def worker(i: int):
        return start_worker(f"{change}{i}", home=tmp_path / f"{change}{i}",
                            sink="worker" if i == 0 else "off", **common)

    workers = [worker(i) for i in range(3 if change == "kill" else 1)]
    publish_global_budget(workers, 1.0)
    reqs = [request(tenant=f"t{i % TENANTS}") for i in range(400)]  # $0.0075 each

    sender = threading.Thread(target=lambda: run(decide_in_steps(workers[0].settings, reqs,
                                                                 step=40)))
    sender.start()
    wait_until(lambda: sum(w.get("/stats")["decisions"]["requests"] for w in workers) >= 60,
               what="60 decisions")
    if change == "kill":
        workers[2].kill()
        workers = workers[:2]
    else:
        workers += [worker(1), worker(2)]
    sender.join(timeout=300)
    assert not sender.is_alive()
    settled(workers)

    answers, admitted = answers_and_admitted(kafka, workers)
    assert len(answers) == len(reqs)
    assert admitted <= 1.0 + 1e-9, f"${admitted:.4f} of $1 admitted ({change})"
    assert admitted >= 0.98, f"only ${admitted:.4f} of $1 admitted ({change})"
    global_budget_held(workers, admitted)
    # one report: every decision any worker sent, and every alert, is in the one store
    sent = sum(len(ds) for ds in answers.values())
    alerts = run(read_to_end(kafka, workers[0].topic("alerts")))
    sink = workers[0]

    def stored() -> tuple[int, int]:
        rows = sink.get("/reports/decisions")["rows"]
        return sum(r["decisions"] for r in rows), sink.get("/stats")["sink"]["alerts"]

    wait_until(lambda: stored() == (sent, len(alerts)), timeout=60,
               what="every decision and alert in ClickHouse",
               details=lambda: (stored(), sent, len(alerts)))
    by_action = {}
    for r in sink.get("/reports/decisions")["rows"]:
        by_action[r["action"]] = by_action.get(r["action"], 0.0) + r["est_cost_usd"]
    sent_by_action = {}
    for ds in answers.values():
        for d in ds:
            sent_by_action[d["action"]] = sent_by_action.get(d["action"], 0.0) + d["est_cost_usd"]
    assert by_action == pytest.approx(sent_by_action)
    print(f"{change}: ${admitted:.4f} of $1 admitted; {sent} decisions and {len(alerts)} "
          "alerts in ClickHouse")


def test_a_worker_that_hands_tenants_over_parks_what_it_learned_of_them(
        start_worker, kafka, tmp_path):
    """One worker learns every tenant's scopes; a second joins and takes half the partitions:
    the first parks the scopes of the tenants it gave away (it would otherwise learn their
    silence, and page and throttle them as a spike if they came back), keeping the rest, and
    hands their state over: the second adopts it. The second leaves: their spend comes back
    to the first, and they resume."""
    import itertools

    name = unique("it-park")
    common = {"app_id": name, "topic_prefix": f"{name}.", "partitions": 6,
              "scoring_interval_s": 1.0}
    first = start_worker("park0", home=tmp_path / "park0", **common)
    scopes = 1 + 3 * TENANTS  # global; each tenant, its service and its model
    rounds = itertools.count()

    def scoring(worker) -> tuple[int, int]:
        st = worker.get("/stats")["scoring"]
        return st.get("scopes", -1), st.get("parked", -1)

    def fed_until(want: tuple[int, int], what: str) -> None:
        """Spend of every tenant, a round a second (an interval read while a worker catches
        up is not learned), until the first worker's scorer holds ``want``."""
        def learned() -> bool:
            publish(kafka, first.topic("usage"), events(f"park{next(rounds)}-", 120,
                                                        tenants=TENANTS), batch_events=60)
            return scoring(first) == want
        wait_until(learned, timeout=90, what=what, details=lambda: (scoring(first), want))

    fed_until((scopes, 0), "the first worker learning every tenant")
    second = start_worker("park1", home=tmp_path / "park1", sink="off", **common)
    settled([first, second])
    theirs = set(second.get("/health")["partitions"])
    gone = sum(owner_partition(f"t{i}", 6) in theirs for i in range(TENANTS))
    assert 0 < gone < TENANTS
    fed_until((scopes - 3 * gone, 3 * gone), "the first worker parking what it gave away")

    def handed() -> tuple[int, int]:
        return (first.get("/stats")["scoring"]["handoff"]["handed"],
                second.get("/stats")["scoring"].get("handoff", {}).get("adopted", -1))

    wait_until(lambda: handed() == (3 * gone, 3 * gone), timeout=60,
               what="the second worker adopting what the first handed over",
               details=lambda: (handed(), gone, second.get("/stats")["scoring"]))
    second.stop()
    wait_until(lambda: first.get("/health")["partitions"] == list(range(6)), timeout=60,
               what="the first worker owning every partition again")
    fed_until((scopes, 0), "their scopes resuming")


@pytest.mark.parametrize("how", ["kill", "stop"])
def test_a_worker_that_takes_over_adopts_what_the_one_before_last_published(
        start_worker, kafka, tmp_path, how):
    """A worker publishes what it learned of the tenants it answers for at each checkpoint
    and when it stops cleanly. It is SIGKILLed (it parks and hands nothing over) after a
    checkpoint, or stopped (SIGTERM) with no checkpoint due for an hour; a worker on another
    home (no checkpoint of its own) takes its partitions and, reading what was published for
    them, adopts every tenant's scopes instead of starting over."""
    import itertools

    name = unique(f"it-{how}-states")
    common = {"app_id": name, "topic_prefix": f"{name}.", "partitions": 6,
              "scoring_interval_s": 1.0,
              "checkpoint_interval_s": 2.0 if how == "kill" else 3600.0}
    first = start_worker("states0", home=tmp_path / "states0", **common)
    rounds = itertools.count()
    scoped = 3 * TENANTS  # each tenant, its service and its model (not the global scope)

    def learned() -> bool:
        publish(kafka, first.topic("usage"), events(f"ks{next(rounds)}-", 120,
                                                    tenants=TENANTS), batch_events=60)
        return first.get("/stats")["scoring"].get("scopes", 0) == 1 + scoped

    def published() -> int:
        return first.get("/stats")["scoring"].get("handoff", {}).get("published", 0)

    wait_until(learned, timeout=90, what="the first worker learning every tenant",
               details=lambda: first.get("/stats")["scoring"])
    if how == "kill":
        before = published()  # (a checkpoint under way may publish only what it knew then)
        wait_until(lambda: published() >= before + scoped, timeout=30,
                   what="a checkpoint publishing every tenant's scopes",
                   details=lambda: first.get("/stats")["scoring"])
        first.kill()
    else:
        assert published() == 0  # no checkpoint has published: only the stop can
        first.stop()
    second = start_worker("states1", home=tmp_path / "states1", sink="off", **common)

    def handoff() -> dict:
        return second.get("/stats")["scoring"].get("handoff", {})

    wait_until(lambda: handoff().get("adopted") == scoped, timeout=60,
               what="the second worker adopting every tenant's scopes",
               details=lambda: second.get("/stats")["scoring"])
    assert second.get("/health")["partitions"] == list(range(6))
    assert handoff()["recovered"] >= scoped and handoff()["refused"] == 0
    assert second.get("/stats")["scoring"]["scopes"] >= scoped
