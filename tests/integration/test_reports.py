"""Reports on the real broker: usage events and requests in, through a worker and its sink
into ClickHouse; every report's figures checked against what was sent and what was
answered; the CLI draws a picture and writes CSV."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from prsm_events.accounting.budgets import Budget
from prsm_events.cli.worker_api import fetch_report
from prsm_events.events.decision import Decision
from prsm_events.events.usage import UsageEvent
from prsm_events.kafka.config_topics import budget_record, publish
from prsm_events.sdk.decision_client import DecisionClient
from prsm_events.sdk.publisher import UsagePublisher
from tests.factories import request
from tests.integration.conftest import module_worker, run, unique, wait_until

pytestmark = pytest.mark.integration

worker = module_worker("rep", reservation_ttl_s=600.0, scoring_interval_s=1.0,
                       snapshot_interval_s=1.0)


def exact(x: float) -> Decimal:
    return Decimal(repr(x))


def test_every_report_holds_the_figures_sent_and_answered(worker, kafka, tmp_path):
    now = datetime.now(UTC).replace(microsecond=0)
    run_id = unique("r")
    events = [UsageEvent(
        event_id=f"{run_id}-{i}", ts=now - timedelta(minutes=7 * i), tenant=("acme", "beta")[i % 2],
        service=("chat", "search")[i % 3 == 0], model="gpt-4o-mini", input_tokens=100,
        cost_usd=round(0.001 * (i % 5 + 1) + 1e-9 * i, 9), tags={"env": ("dev", "prod")[i % 4 < 2]})
        for i in range(40)]
    budget = Budget(scope="tenant:gamma", period="day", limit_usd=0.02)
    run(publish(worker.settings, "budgets", [budget_record(budget)]))
    wait_until(lambda: any(b["key"] == budget.key for b in worker.budgets()),
               10, "the budget")

    async def traffic() -> list[Decision]:
        async with UsagePublisher(kafka, topic=worker.topic("usage")) as pub:
            await pub.publish_many(events)
        client = DecisionClient(worker.settings, timeout_s=20.0)
        await client.start()
        try:  # $0.0075 each at gpt-4o against $0.02: two allowed, then routed or refused
            return [await client.decide(request(f"{run_id}-q{i}", tenant="gamma",
                                                priority=("normal", "high")[i % 2]))
                    for i in range(10)]
        finally:
            await client.stop()

    answered = run(traffic())
    assert {d.action.value for d in answered} >= {"allow", "route"}

    def stored() -> tuple[int, int]:
        spend = fetch_report(worker.settings, "spend", {}).records
        decided = fetch_report(worker.settings, "decisions", {"tenant": "gamma"}).records
        return sum(r["events"] for r in spend), sum(r["decisions"] for r in decided)

    wait_until(lambda: stored() == (len(events), len(answered)), 90,
               "every event and decision in ClickHouse", details=stored)

    # spend per hour by service and a tag, one tenant
    got = {(r["period"], r["service"], r["tag:env"]): r for r in fetch_report(
        worker.settings, "spend", {"every": "hour", "by": "service,tag:env",
                                   "tenant": "acme"}).records}
    want: dict[tuple, list[UsageEvent]] = defaultdict(list)
    for e in events:
        if e.tenant == "acme":
            hour = e.ts.replace(minute=0, second=0).isoformat()
            want[(hour, e.service, e.tags["env"])].append(e)
    assert set(got) == set(want)
    for key, mine in want.items():
        assert exact(got[key]["cost_usd"]) == sum(exact(e.cost_usd or 0) for e in mine)
        assert got[key]["events"] == len(mine)

    # top movers: the last half hour against the half hour before
    split = now - timedelta(minutes=30)
    movers = fetch_report(worker.settings, "top-movers", {
        "by": "tenant", "since": split.isoformat(),
        "until": (now + timedelta(seconds=1)).isoformat()}).records
    for r in movers:
        mine = [e for e in events if e.tenant == r["tenant"]]
        assert exact(r["cost_usd"]) == sum(exact(e.cost_usd or 0) for e in mine if e.ts >= split)
        assert exact(r["previous_usd"]) == sum(exact(e.cost_usd or 0) for e in mine
                                                if split - timedelta(minutes=30) <= e.ts < split)

    # decisions by action and reason: what the client was answered
    got_d = {(r["action"], r["reason_code"]): r for r in fetch_report(
        worker.settings, "decisions", {"tenant": "gamma"}).records}
    want_d: dict[tuple, list[Decision]] = defaultdict(list)
    for d in answered:
        want_d[(d.action.value, d.reason.code)].append(d)
    assert {k: r["decisions"] for k, r in got_d.items()} == {k: len(v) for k, v in want_d.items()}
    for key, mine in want_d.items():
        assert got_d[key]["high_or_critical"] == sum(d.priority == "high" for d in mine)
        assert exact(got_d[key]["est_cost_usd"]) == sum(exact(d.est_cost_usd) for d in mine)

    # routing savings: the requested model's estimate less the chosen one's, per route
    routes = [d for d in answered if d.action.value == "route"]
    savings = fetch_report(worker.settings, "routing-savings", {"tenant": "gamma"}).records
    assert sum(r["routed"] for r in savings) == len(routes)
    assert sum(exact(r["saved_usd"]) for r in savings) == sum(
        exact(d.requested_est_cost_usd or 0) - exact(d.est_cost_usd) for d in routes) > 0
    assert all(r["requested_model"] == "gpt-4o" for r in savings)

    # budget utilisation: the scorer's snapshots, through the sink; what the budget holds is
    # what was admitted (reserved: no usage settled it)
    admitted = sum(exact(d.est_cost_usd) for d in answered if d.admitted)

    def gamma() -> dict:
        rows = fetch_report(worker.settings, "budget-utilisation", {"tenant": "gamma"}).records
        return rows[0] if rows else {}

    wait_until(lambda: gamma().get("used_usd") is not None
               and exact(gamma()["used_usd"]) == admitted, 60,
               "a snapshot of the budget after the requests", details=gamma)
    row = gamma()
    assert (row["budget_key"], row["limit_usd"]) == (budget.key, 0.02)
    assert row["utilisation"] == pytest.approx(float(admitted) / 0.02)
    assert row["forecast_usd"] >= float(admitted) - 1e-9

    # /metrics, scraped and parsed: the same figures
    with urllib.request.urlopen(worker.settings.web_request("/metrics"), timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = resp.read().decode()
    scraped: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            scraped.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = (
                sample.value)
    stats = worker.get("/stats")
    assert scraped["prsm_events_accepted_total"] == {(): stats["accepted"]} == {
        (): len(events)}
    by_action: dict[str, float] = defaultdict(float)
    for labels, n in scraped["prsm_decisions_total"].items():
        by_action[dict(labels)["action"]] += n
    assert by_action == {a: sum(d.action.value == a for d in answered)
                         for a in {d.action.value for d in answered}}
    # every request answered went through every stage once, each stage taking some time
    stage_counts = {dict(labels)["stage"]: n for labels, n
                    in scraped["prsm_decision_stage_seconds_count"].items()}
    assert stage_counts == dict.fromkeys(
        ("fetched", "queued", "decided", "answered"), len(answered))
    assert all(v > 0 for v in scraped["prsm_decision_stage_seconds_sum"].values())
    used = {dict(labels)["budget"]: v for labels, v in scraped["prsm_budget_used_usd"].items()}
    assert exact(used[budget.key]) == admitted
    lags = scraped["prsm_consumer_lag_messages"]
    assert {dict(labels)["topic"] for labels in lags} == {worker.topic("usage"),
                                                          worker.topic("requests")}
    assert all(v == 0 for v in lags.values())  # everything read has been processed
    assert scraped["prsm_sink_running"] == {(): 1.0}

    # the CLI: CSV on stdout and a picture
    picture = tmp_path / "spend.png"
    env = {**os.environ, **worker.settings.as_env()}
    done = subprocess.run([sys.executable, "-m", "prsm_events", "report", "spend", "--every",
                           "hour", "--by", "tenant", "--plot", str(picture), "--format", "csv"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "period,tenant,cost_usd,events,input_tokens,output_tokens,share"
    assert sum(Decimal(line.split(",")[2]) for line in lines[1:]) == sum(
        exact(e.cost_usd or 0) for e in events)
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    doc = subprocess.run([sys.executable, "-m", "prsm_events", "report", "routing-savings",
                          "--format", "json"], env=env, capture_output=True, timeout=60)
    assert orjson.loads(doc.stdout)["rows"] == savings
    bad = subprocess.run([sys.executable, "-m", "prsm_events", "report", "spend", "--by",
                          "colour"], env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "'colour' is not a dimension" in bad.stderr + bad.stdout


def test_the_api_refuses_bad_options_with_the_reason(worker):
    for path, reason in [("/reports/spend?every=week", "every: 'week'"),
                         ("/reports/top-movers?every=day", "unknown parameter(s) every"),
                         ("/reports/anomalies?limit=0", "limit: '0'"),
                         ("/reports/spend?until=2026-01-01&since=2026-02-01", "before until"),
                         ("/reports/spend?by=tag:team,model;DROP", "is not a dimension")]:
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(worker.settings.web_request(path), timeout=10)
        assert caught.value.code == 400, path
        assert reason in orjson.loads(caught.value.read())["error"], path


