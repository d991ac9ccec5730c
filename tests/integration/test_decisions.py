"""Requests -> decisions on the real broker: budgets, routing, defer, throttle, reject,
runtime budget changes, concurrent bursts, ThrottleCache and a third-party client (kcat)."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from prsm_events.accounting.budgets import Budget
from prsm_events.accounting.catalog import Catalog
from prsm_events.decisions.routing import Ask, estimate
from prsm_events.events.decision import Decision
from prsm_events.events.request import RequestEvent
from prsm_events.events.usage import UsageEvent
from prsm_events.kafka.config_topics import budget_record, publish
from prsm_events.sdk.decision_client import DecisionClient
from prsm_events.sdk.publisher import UsagePublisher
from prsm_events.sdk.throttle_cache import ThrottleCache
from tests.factories import request
from tests.integration.conftest import (
    WorkerHandle,
    module_worker,
    read_to_end,
    run,
    send_raw,
    set_topic_config,
    unique,
    wait_until,
)
from tests.integration.test_ingest_pipeline import kcat, read_topic

pytestmark = pytest.mark.integration
CATALOG = Catalog.shipped()


worker = module_worker("dec", reservation_ttl_s=600.0)


def set_budget(worker: WorkerHandle, **kw: Any) -> Budget:
    budget = Budget.model_validate({"period": "day", **kw})
    run(publish(worker.settings, "budgets", [budget_record(budget)]))
    return budget


def figures(worker: WorkerHandle, key: str) -> dict[str, Any]:
    rows = [b for b in worker.budgets() if b["key"] == key]
    return rows[0] if rows else {}


def wait_budget(worker: WorkerHandle, key: str, limit: float) -> None:
    wait_until(lambda: figures(worker, key).get("limit_usd") == limit, 10, f"budget {key}")


async def decide_all(worker: WorkerHandle, requests: list[RequestEvent],
                     clients: int = 1) -> list[Decision]:
    pool = [DecisionClient(worker.settings, timeout_s=20.0) for _ in range(clients)]
    for c in pool:
        await c.start()
    try:
        return list(await asyncio.gather(*(pool[i % clients].decide(r)
                                           for i, r in enumerate(requests))))
    finally:
        for c in pool:
            await c.stop()


def settle(d: Decision, cost: float | None = None) -> UsageEvent:
    """The usage event a gateway sends after calling the model it was told to."""
    return UsageEvent(event_id=f"u-{d.request_id}", ts=datetime.now(UTC), tenant=d.tenant,
                      service="chat", model=d.model, provider=d.provider,
                      request_id=d.request_id,
                      cost_usd=d.est_cost_usd if cost is None else cost)


async def send_usage(worker: WorkerHandle, events: list[UsageEvent]) -> None:
    async with UsagePublisher(worker.settings.bootstrap, topic=worker.topic("usage")) as pub:
        await pub.publish_many(events)


def test_route_defer_reject_and_runtime_change(worker: WorkerHandle) -> None:
    key = set_budget(worker, scope="tenant:route", limit_usd=0.01).key
    wait_budget(worker, key, 0.01)
    first = run(decide_all(worker, [request(tenant="route", min_quality=0.8,
                                            capabilities=("tools", "vision"))]))[0]
    assert (first.action, first.reason.code, first.model) == ("allow", "within_budget", "gpt-4o")
    assert first.est_cost_usd == pytest.approx(0.0075)
    assert first.budget is not None and first.budget["reserved_usd"] == 0.0

    # $0.0025 left: the cheapest model with quality >= 0.8, tools and vision is chosen
    ask = Ask(1000, 500, 0.8, ("tools", "vision"))
    capable = [e for e in CATALOG.entries if e.quality >= 0.8
               and {"tools", "vision"} <= set(e.capabilities)]
    cheapest = min(capable, key=lambda e: estimate(e, ask))
    routed = run(decide_all(worker, [request(tenant="route", min_quality=0.8,
                                             capabilities=("tools", "vision"))]))[0]
    assert (routed.action, routed.reason.code) == ("route", "routed_cheaper_model")
    assert routed.model == cheapest.model and routed.model != "gpt-4o"
    assert routed.est_cost_usd < 0.0025

    # only reservations of requests in flight stand in the way: retry soon
    low = run(decide_all(worker, [request(tenant="route", priority="low")]))[0]
    assert (low.action, low.reason.code) == ("defer", "deferred_low_priority")
    assert low.retry_after_s == 5.0 and "in flight" in low.reason.message

    # the usage of both admitted requests settles them; now the spend itself blocks
    run(send_usage(worker, [settle(first), settle(routed)]))
    wait_until(lambda: figures(worker, key)["reserved_usd"] == 0.0, 30, "settled")
    assert figures(worker, key)["spent_usd"] == pytest.approx(
        first.est_cost_usd + routed.est_cost_usd)
    low = run(decide_all(worker, [request(tenant="route", priority="low")]))[0]
    assert (low.action, low.reason.code) == ("defer", "deferred_low_priority")
    midnight = (datetime.now(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=0,
                                                               microsecond=0)
    assert low.retry_after_s is not None
    assert low.retry_after_s == pytest.approx((midnight - datetime.now(UTC)).total_seconds(),
                                              abs=30)

    huge = run(decide_all(worker, [request(tenant="route", est_input_tokens=10_000_000,
                                           min_quality=0.99)]))[0]
    assert (huge.action, huge.reason.code) == ("reject", "over_budget")
    assert "exceeds" in huge.reason.message and huge.budget is not None
    assert huge.budget["scope"] == "tenant:route" and huge.budget["limit_usd"] == 0.01

    unknown = run(decide_all(worker, [request(tenant="route", model="gpt-99")]))[0]
    assert (unknown.action, unknown.reason.code) == ("reject", "unknown_model")

    # a budget change at runtime takes effect within a second or so
    set_budget(worker, scope="tenant:route", limit_usd=100.0)
    changed_at = time.monotonic()
    while True:
        again = run(decide_all(worker, [request(tenant="route")]))[0]
        if again.action == "allow":
            break
        assert time.monotonic() - changed_at < 5, "the new limit did not take effect in 5 s"
        time.sleep(0.1)
    assert time.monotonic() - changed_at < 2.0


def test_concurrent_bursts_never_overspend(worker: WorkerHandle) -> None:
    limit = 0.2
    key = set_budget(worker, scope="tenant:burst", limit_usd=limit).key
    wait_budget(worker, key, limit)
    reqs = [request(tenant="burst", service=f"svc{i % 3}", min_quality=0.8) for i in range(240)]
    decisions = run(decide_all(worker, reqs, clients=4))
    assert len({d.request_id for d in decisions}) == len(reqs)
    assert all(d.source == "worker" for d in decisions)
    admitted = [d for d in decisions if d.admitted]
    actions = {d.action for d in decisions}
    assert "allow" in actions and actions - {"allow", "route"}, actions  # the budget binds
    assert sum(d.est_cost_usd for d in admitted) <= limit + 1e-9
    held = figures(worker, key)
    assert held["reserved_usd"] == pytest.approx(sum(d.est_cost_usd for d in admitted), abs=1e-9)

    # settle every admitted request with usage; some cost less than estimated
    events = [settle(d, d.est_cost_usd * (0.5 if i % 2 else 1.0))
              for i, d in enumerate(admitted)]
    run(send_usage(worker, events))
    spent = sum(e.cost_usd or 0.0 for e in events)
    wait_until(lambda: figures(worker, key)["reserved_usd"] == 0.0, 30, "all settled",
               lambda: figures(worker, key))
    final = figures(worker, key)
    assert final["spent_usd"] == pytest.approx(spent, abs=1e-8)
    assert final["spent_usd"] + final["reserved_usd"] <= limit + 1e-9
    # provider health was learned from the same usage events
    learned = {(p["provider"], p["model"]): p for p in worker.get("/providers")["providers"]}
    used = {(d.provider, d.model) for d in admitted}
    assert used <= set(learned) and all(learned[u]["availability"] == 1.0 for u in used)


def test_throttle_cache_sees_block_and_lift(worker: WorkerHandle) -> None:
    key = set_budget(worker, scope="tenant:block", limit_usd=0.05, alert_at=(0.5,)).key
    wait_budget(worker, key, 0.05)

    async def scenario() -> tuple[bool, Any, Decision, bool]:
        async with ThrottleCache(worker.settings) as cache:
            before = cache.check("block", service="chat").allowed
            async with UsagePublisher(worker.settings.bootstrap,
                                      topic=worker.topic("usage")) as pub:
                await pub.publish(UsageEvent(event_id=f"spend-{uuid.uuid4().hex}",
                                             ts=datetime.now(UTC), tenant="block",
                                             service="chat", cost_usd=0.05))
            for _ in range(200):
                verdict = cache.check("block", service="chat", model="gpt-4o")
                if not verdict.allowed:
                    break
                await asyncio.sleep(0.05)
            async with DecisionClient(worker.settings, timeout_s=10) as client:
                throttled = await client.decide(request(tenant="block"))
            await publish(worker.settings, "budgets", [budget_record(
                Budget(scope="tenant:block", period="day", limit_usd=10.0))])
            lifted = False
            for _ in range(200):
                if cache.check("block", service="chat").allowed:
                    lifted = True
                    break
                await asyncio.sleep(0.05)
            return before, verdict, throttled, lifted

    before, verdict, throttled, lifted = run(scenario())
    assert before is True
    assert verdict.allowed is False and verdict.directive is not None
    assert verdict.directive.origin == "budget:day" and verdict.directive.action == "block"
    assert verdict.retry_after_s is not None and 0 < verdict.retry_after_s <= 86400
    assert (throttled.action, throttled.reason.code) == ("throttle", "budget_exhausted")
    assert throttled.retry_after_s == pytest.approx(verdict.retry_after_s, abs=30)
    assert lifted, "raising the limit did not lift the block directive"
    alerts = [orjson.loads(r.value) for r in run(read_topic(
        worker.settings.bootstrap, worker.topic("alerts"), 1, timeout_s=10))]
    mine = [a for a in alerts if a["scope"] == "tenant:block"]
    assert [a["kind"] for a in mine] == ["budget_threshold"]
    assert mine[0]["expected"] == pytest.approx(0.025) and mine[0]["observed"] >= 0.05


def test_kcat_request_and_decision(worker: WorkerHandle) -> None:
    binary = kcat()
    rid = f"kcat-{uuid.uuid4().hex[:8]}"
    req = {"request_id": rid, "ts": datetime.now(UTC).isoformat(), "tenant": "kc",
           "service": "chat", "model": "gpt-4o-mini", "est_input_tokens": 100}
    lines = f"kc\t{orjson.dumps(req).decode()}\nkc\tnot json\n"
    subprocess.run([binary, "-b", worker.settings.bootstrap, "-P", "-t",
                    worker.topic("requests"), "-K", "\t", "-X", "partitioner=murmur2_random"],
                   input=lines.encode(), check=True, timeout=30)

    def found() -> dict[str, Any] | None:
        out = subprocess.run([binary, "-b", worker.settings.bootstrap, "-C", "-t",
                              worker.topic("decisions"), "-o", "beginning", "-e", "-q"],
                             capture_output=True, check=True, timeout=30).stdout
        for line in out.decode().splitlines():
            doc = orjson.loads(line)
            if doc["request_id"] == rid:
                return doc
        return None

    wait_until(lambda: found() is not None, 30, "kcat reads the decision")
    decision = found()
    assert decision is not None
    assert decision["action"] == "allow" and decision["reason"]["code"] == "no_budget"
    assert decision["model"] == "gpt-4o-mini" and decision["provider"] == "openai"
    dlq = [orjson.loads(r.value) for r in run(read_topic(
        worker.settings.bootstrap, worker.topic("dlq"), 1, timeout_s=10))]
    assert any(d["code"] == "invalid_json" and d["source_topic"] == worker.topic("requests")
               for d in dlq)


def test_cli_budgets_catalog_and_decisions_tail(worker: WorkerHandle, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from prsm_events.cli.main import main

    env = worker.settings.as_env()
    cli = CliRunner()

    def prsm(*args: str) -> Any:
        return cli.invoke(main, list(args), env=env, catch_exceptions=False)

    out = prsm("budget", "set", "tenant:cli", "--period", "month", "--limit", "1000",
               "--alert-at", "0.5,0.8", "--hard")
    assert out.exit_code == 0 and "set tenant:cli|month: $1000 hard" in out.output
    assert prsm("budget", "set", "tenant:cli", "--period", "day", "--limit", "50").exit_code == 0
    bad = prsm("budget", "set", "tenant:cli", "--period", "quarter", "--limit", "5")
    assert bad.exit_code == 2 and "period must be one of" in bad.output
    listed = orjson.loads(prsm("budget", "list", "--format", "json").output)
    mine = {(b["scope"], b["period"]): b for b in listed if b["scope"] == "tenant:cli"}
    assert set(mine) == {("tenant:cli", "month"), ("tenant:cli", "day")}
    assert mine[("tenant:cli", "month")]["alert_at"] == [0.5, 0.8]
    assert prsm("budget", "delete", "tenant:cli", "--period", "day").exit_code == 0
    listed = orjson.loads(prsm("budget", "list", "--format", "json").output)
    assert [(b["scope"], b["period"]) for b in listed if b["scope"] == "tenant:cli"] == [
        ("tenant:cli", "month")]
    wait_until(lambda: {b["key"] for b in worker.budgets()} >= {
        "tenant:cli|month"} and "tenant:cli|day" not in {
        b["key"] for b in worker.budgets()}, 10, "budget delete applied")

    # a catalog with an in-house model: loaded, listed, and used by the worker
    doc = CATALOG.to_json() | {"version": "test-cli-1"}
    doc["models"] = [*doc["models"], {"provider": "acme-cloud", "model": "inhouse-1",
                                      "input": 0.1, "output": 0.2, "quality": 0.6,
                                      "capabilities": ["chat"]}]
    path = tmp_path / "catalog.json"
    path.write_bytes(orjson.dumps(doc))
    loaded = prsm("catalog", "load", str(path))
    assert loaded.exit_code == 0 and "test-cli-1" in loaded.output
    assert "inhouse-1" in prsm("catalog", "list").output
    wait_until(lambda: worker.get("/health")["catalog"] == "test-cli-1", 10, "catalog in force")
    d = run(decide_all(worker, [request(tenant="cli", model="inhouse-1")]))[0]
    assert (d.action, d.provider) == ("allow", "acme-cloud")
    broken = tmp_path / "broken.json"
    broken.write_text('{"version": "x", "models": []}')
    refused = prsm("catalog", "load", str(broken))
    assert refused.exit_code == 2 and "invalid catalog" in refused.output

    tail = prsm("decisions", "tail", "--from-beginning", "--tenant", "cli", "-n", "1",
                "--format", "json", "--idle-timeout", "10")
    assert orjson.loads(tail.output.splitlines()[0])["request_id"] == d.request_id
    shipped = tmp_path / "shipped.json"
    shipped.write_bytes(orjson.dumps(CATALOG.to_json() | {"prices_read_on":
                                                          CATALOG.prices_read_on}))
    assert prsm("catalog", "load", str(shipped)).exit_code == 0


def test_bad_budget_records_are_dead_lettered(worker: WorkerHandle) -> None:
    run(publish(worker.settings, "budgets", [
        (b"tenant:bad|day", b"{not json"),
        (b"tenant:bad|week", orjson.dumps({"scope": "tenant:bad", "period": "day",
                                           "limit_usd": 5})),  # key and value disagree
    ]))

    def letters() -> list[dict[str, Any]]:
        records = run(read_topic(worker.settings.bootstrap, worker.topic("dlq"), 50,
                                 timeout_s=3))
        return [d for d in (orjson.loads(r.value) for r in records)
                if d["source_topic"] == worker.topic("budgets")]

    wait_until(lambda: len(letters()) >= 2, 20, "bad budgets dead-lettered")
    reasons = {d["key"]: d for d in letters()}
    assert reasons["tenant:bad|day"]["code"] == "invalid_budget"
    assert "does not match" in reasons["tenant:bad|week"]["reason"]
    assert reasons["tenant:bad|day"]["original"] == "{not json"
    assert not [b for b in worker.budgets() if b["scope"] == "tenant:bad"]


def test_bad_allotment_records_are_dead_lettered(worker: WorkerHandle) -> None:
    """The allotments topic is the workers' own, but a record there that is not a share or
    grants (a client writing where it should not) is dead-lettered, never believed."""
    run(publish(worker.settings, "allotments", [
        (b"global|day#p1", b"{not json"),
        (b"global|day#p1", orjson.dumps([-5, [], 0, 0, 0, 0])),  # a count below zero
        (b"global|day#p99", orjson.dumps([0, [], 0, 0, 0, 0])),  # no such partition
        (b"global|day#grants", orjson.dumps([[0, 10 ** 12], [7, 1]])),
        (b"global|day#nothing", orjson.dumps([])),
    ]))

    def letters() -> list[dict[str, Any]]:
        records = run(read_topic(worker.settings.bootstrap, worker.topic("dlq"), 50,
                                 timeout_s=3))
        return [d for d in (orjson.loads(r.value) for r in records)
                if d["source_topic"] == worker.topic("allotments")]

    wait_until(lambda: len(letters()) >= 5, 20, "bad allotments dead-lettered")
    assert {d["code"] for d in letters()} == {"invalid_allotment"}
    assert worker.get("/health")["status"] == "ok"


def test_decision_client_timeout_applies_its_fallback(kafka: str, tmp_path: Path) -> None:
    """No worker answers on these topics: the client falls back and says so."""
    from prsm_events.kafka.admin import ensure_topics
    from prsm_events.kafka.connection import KafkaConnection
    from prsm_events.kafka.topics import topic_specs
    from prsm_events.settings import Settings

    prefix = f"{unique('nowork')}."
    settings = Settings(home=tmp_path, kafka_bootstrap=kafka, topic_prefix=prefix)
    run(ensure_topics(KafkaConnection(kafka), topic_specs(prefix, 2)))

    async def ask(fail: str) -> Decision:
        async with DecisionClient(settings, timeout_s=0.3, fail=fail) as client:  # type: ignore[arg-type]
            started = time.monotonic()
            decision = await client.decide(request(tenant="nobody"))
            assert time.monotonic() - started < 2.0
            assert client.timeouts == 1
            return decision

    closed, opened = run(ask("closed")), run(ask("open"))
    assert (closed.action, closed.source, closed.reason.code) == (
        "reject", "client", "decision_timeout")
    assert "failing closed" in closed.reason.message and not closed.admitted
    assert (opened.action, opened.model, opened.source) == ("allow", "gpt-4o", "client")
    assert opened.admitted


def test_decisions_the_broker_refuses_are_answered_again_and_reserved_once(
        start_worker: Any, kafka: str, tmp_path: Path) -> None:
    """For a while the decisions topic refuses every record (its max.message.bytes lowered
    below one decision): the agent reads the requests again from what was delivered and no
    decision is acknowledged. Once the topic takes them, every request is answered, the ones
    admitted the first time as ``already_decided`` with the model they were given, and each
    admitted request holds one reservation: the budget is never overspent."""
    w = start_worker("it-dec-refused", home=tmp_path / "refused", reservation_ttl_s=600.0)
    limit = 0.06
    key = set_budget(w, scope="tenant:refused", limit_usd=limit).key
    wait_budget(w, key, limit)
    before = run(set_topic_config(kafka, w.topic("decisions"), "max.message.bytes", "100"))
    reqs = [request(tenant="refused", service=f"svc{i % 3}") for i in range(30)]
    send_raw(kafka, w.topic("requests"),
             [(r.tenant.encode(), r.model_dump_json().encode()) for r in reqs])
    wait_until(lambda: w.get("/stats")["decisions"]["undelivered"] >= 3, 60,
               "refused decision batches read again", lambda: w.get("/stats")["decisions"])
    assert w.get("/stats")["decisions"]["requests"] == 0
    held = figures(w, key)["reserved_usd"]
    assert 0 < held <= limit + 1e-9  # reserved once, while every answer is refused
    run(set_topic_config(kafka, w.topic("decisions"), "max.message.bytes", before))
    wait_until(lambda: w.get("/stats")["decisions"]["requests"] >= len(reqs), 60,
               "every request answered", lambda: w.get("/stats")["decisions"])
    answers = [Decision.model_validate_json(r.value)
               for r in run(read_to_end(kafka, w.topic("decisions")))]
    by_request = {d.request_id: d for d in answers}
    assert set(by_request) == {r.request_id for r in reqs}
    admitted = [d for d in by_request.values() if d.admitted]
    assert admitted and all(d.reason.code == "already_decided" for d in admitted)
    assert {d.action for d in by_request.values()} - {"allow", "route"}  # the budget binds
    assert sum(d.est_cost_usd for d in admitted) <= limit + 1e-9
    assert figures(w, key)["reserved_usd"] == pytest.approx(held, abs=1e-12)
    assert figures(w, key)["reserved_usd"] == pytest.approx(
        sum(d.est_cost_usd for d in admitted), abs=1e-9)
