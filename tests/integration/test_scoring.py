"""The scoring timer on the real broker: anomaly alerts naming the runaway key with a throttle
directive, forecast-overrun alerts before the money is spent, forecasts in decisions, and
pacing that presses a paced budget (decision reasons, /budgets, the policies topic)."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from prsm_events.events.usage import UsageEvent
from prsm_events.sdk.publisher import UsagePublisher
from tests.factories import request, usage
from tests.integration.conftest import (
    WorkerHandle,
    module_worker,
    read_to_end,
    run,
    wait_until,
)
from tests.integration.test_decisions import (
    decide_all,
    figures,
    send_usage,
    set_budget,
    settle,
    wait_budget,
)

pytestmark = pytest.mark.integration
TICK_S = 0.25


# a fresh name (topics, group) per run: a reused broker keeps earlier runs' alerts
worker = module_worker(f"score{uuid.uuid4().hex[:6]}", scoring_interval_s=TICK_S,
                       scoring_timescale_s=TICK_S, reservation_ttl_s=600.0)


def spend(tenant: str, cost: float, **kw: Any) -> UsageEvent:
    """A gpt-4o call that cost ``cost`` (given by the client)."""
    return usage(tenant=tenant, model="gpt-4o", cost_usd=cost, input_tokens=0,
                 output_tokens=0, **kw)


TRICKLE_USD = 0.000005
"""What one call of the steady trickle costs."""
TRICKLE_STEPS = 400
"""At most this many steps of the trickle (one call of each tenant a step)."""
WARM_TICKS = 60
"""Scored intervals the trickle lasts: the detector scores a scope from its 51st
(``AnomalyParams.warmup``)."""
OVER_LIMIT = 50 * TRICKLE_USD
"""Tenant over's day budget: fifty calls of the trickle."""


async def steady_then_spike(worker: WorkerHandle) -> float:
    """Tenant spiky's keys k1 and k2 (in turn) and tenant over spend a steady trickle
    through ``WARM_TICKS`` scored intervals; then key k2 leaks 100 calls of $0.01 at once.
    Returns the time of the spike.

    However the machine schedules the worker's ticks and reads, the trickle cannot be an
    anomaly: everything it spends, in every scope together, stays under half the least
    excess an anomaly needs (``anomaly_min_excess_usd``; half, as an interval that the
    timer's drift correction cut short counts at its rate per ``TICK_S``)."""
    assert worker.settings.anomaly_min_excess_usd / 2 > 2 * TRICKLE_STEPS * TRICKLE_USD

    async def ticks() -> int:
        stats = await asyncio.to_thread(worker.get, "/stats")
        return int(stats["scoring"].get("ticks", 0))

    async with UsagePublisher(worker.settings.bootstrap, topic=worker.topic("usage")) as pub:
        until = await ticks() + WARM_TICKS
        for i in range(TRICKLE_STEPS):
            await pub.publish(spend("spiky", TRICKLE_USD, api_key_id=f"k{1 + i % 2}"))
            await pub.publish(spend("over", TRICKLE_USD))
            if i % 8 == 7 and await ticks() >= until:
                break
            await asyncio.sleep(TICK_S / 2)
        else:
            raise AssertionError(f"{WARM_TICKS} scored intervals not reached in "
                                 f"{TRICKLE_STEPS} steps: {await ticks()} of {until}")
        spike_at = time.time()
        await pub.publish_many([spend("spiky", 0.01, api_key_id="k2") for _ in range(100)])
    return spike_at


def records(worker: WorkerHandle, name: str) -> list[tuple[str, dict[str, Any] | None]]:
    out = run(read_to_end(worker.settings.bootstrap, worker.topic(name)))
    return [(r.key.decode(), None if r.value is None else orjson.loads(r.value)) for r in out]


def test_anomaly_and_forecast_overrun_alerts(worker: WorkerHandle) -> None:
    set_budget(worker, scope="tenant:spiky", period="month", limit_usd=1e6)
    over = set_budget(worker, scope="tenant:over", limit_usd=OVER_LIMIT)
    wait_budget(worker, over.key, OVER_LIMIT)
    spike_at = run(steady_then_spike(worker))

    def anomalies() -> list[dict[str, Any]]:
        return [v for _, v in records(worker, "alerts") if v and v["kind"] == "anomaly"]
    wait_until(lambda: any(a["scope"] == "tenant:spiky" for a in anomalies()), 30, "anomaly",
               lambda: ([(v["kind"], v["scope"], v["message"]) for _, v in
                         records(worker, "alerts") if v], worker.get("/stats")))
    found = [a for a in anomalies() if a["scope"] == "tenant:spiky"]
    first = found[0]
    raised = datetime.fromisoformat(first["ts"]).timestamp()
    assert spike_at - TICK_S <= raised <= spike_at + 10  # at the first tick after the leak
    assert first["driver"] == "tenant:spiky/api_key:k2" and first["severity"] == "high"
    assert first["observed"] > 10 * first["expected"]
    # the timer measured how long its last interval lasted (a tick's run on top of its sleep,
    # less at most mode's drift correction of 0.1 s)
    assert worker.get("/stats")["scoring"]["interval_s"] >= TICK_S - 0.1
    directives = [v for k, v in records(worker, "policies") if k.endswith("|anomaly") and v]
    assert [d["scope"] for d in directives] == ["tenant:spiky/api_key:k2"]
    assert directives[0]["action"] == "throttle" and directives[0]["allow_fraction"] == 0.5

    overruns = [v for _, v in records(worker, "alerts")
                if v and v["kind"] == "forecast_overrun" and v["scope"] == "tenant:over"]
    assert len(overruns) == 1  # once per period
    assert overruns[0]["observed"] > OVER_LIMIT > overruns[0]["details"]["spent_usd"]
    assert overruns[0]["details"]["learning"] == "yes" and "still learning" in overruns[0][
        "message"]

    asked = request(tenant="over", est_input_tokens=10, est_output_tokens=10)
    d = run(decide_all(worker, [asked]))[0]
    assert d.forecast is not None and d.forecast["method"] == "seasonal"
    assert d.forecast["period_end_spend_usd"] > OVER_LIMIT
    row = figures(worker, over.key)
    assert row["forecast"]["period_end_spend_usd"] >= row["spent_usd"]

    from click.testing import CliRunner

    from prsm_events.cli.main import main
    cli = CliRunner()
    env = worker.settings.as_env()
    listed = cli.invoke(main, ["budget", "outlook", "--format", "json"], env=env)
    rows = {r["key"]: r for r in orjson.loads(listed.output)}
    assert rows[over.key]["forecast"]["method"] == "seasonal"
    table = cli.invoke(main, ["budget", "outlook"], env=env).output
    line = table.split(over.key)[1].split("\n")[0]
    assert "(run rate)" not in line and "(learning)" in line  # a day ahead on seconds of it

    # the anomalies report (ClickHouse, through the sink) holds it, with its driver
    from prsm_events.cli.worker_api import fetch_report

    def reported() -> list[dict[str, Any]]:
        return fetch_report(worker.settings, "anomalies", {"tenant": "spiky"}).records
    wait_until(lambda: any(r["message"] == first["message"] for r in reported()), 60,
               "the anomaly in the anomalies report", reported)
    row = next(r for r in reported() if r["message"] == first["message"])
    assert (row["scope"], row["driver"], row["severity"]) == (
        "tenant:spiky", first["driver"], "high")
    assert row["observed"] == first["observed"] and row["expected"] == first["expected"]


def test_a_rolling_window_gets_its_peak_and_exhaustion_forecast(worker: WorkerHandle) -> None:
    rolling = set_budget(worker, scope="tenant:roll", period="1h", limit_usd=0.05)
    wait_budget(worker, rolling.key, 0.05)
    run(send_usage(worker, [spend("roll", 0.01)]))

    def forecast() -> dict[str, Any]:
        return dict(figures(worker, rolling.key).get("forecast") or {})
    wait_until(lambda: forecast().get("window_peak") is True, 20, "rolling outlook", forecast)
    f = forecast()
    assert f["method"] == "seasonal" and f["period_end_spend_usd"] >= 0.0
    # a scope a few ticks old has far less history than the hour it looks ahead: it says so,
    # and shows no interval
    assert f["learning"] is True
    assert (f["period_end_spend_low_usd"], f["period_end_spend_high_usd"]) == (None, None)
    from click.testing import CliRunner

    from prsm_events.cli.main import main
    table = CliRunner().invoke(main, ["budget", "outlook"], env=worker.settings.as_env()).output
    assert "peak " in table.split(rolling.key)[1].split("\n")[0]


def test_pacing_presses_a_paced_budget(worker: WorkerHandle) -> None:
    budget = set_budget(worker, scope="tenant:paced", limit_usd=0.05, pacing=True)
    wait_budget(worker, budget.key, 0.05)
    reasons: set[str] = set()
    pressures: list[float] = []

    async def traffic(seconds: float) -> None:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            batch = [request(tenant="paced", priority=p)
                     for p in ("low", "normal", "normal", "high")]
            decisions = await decide_all(worker, batch)
            reasons.update(x.reason.code for x in decisions)
            await send_usage(worker, [settle(x) for x in decisions if x.admitted])
            action = figures(worker, budget.key).get("pacing_action") or {}
            pressures.append(float(action.get("pressure", 0.0)))
            await asyncio.sleep(TICK_S)

    run(traffic(15.0))
    row = figures(worker, budget.key)
    assert row["pacing"] is True, row
    assert max(pressures) > 0, (pressures, row)
    assert reasons & {"paced_route", "paced_defer", "paced_throttle"}, reasons
    assert row["spent_usd"] <= 0.05
    paced = [v for k, v in records(worker, "policies") if k == "tenant:paced|pacing:day" and v]
    if row["pacing_action"]["throttle_share"] > 0:
        assert paced and paced[-1]["priorities"] == ["low", "normal"]


def test_a_restarted_worker_goes_on_from_its_checkpoint_and_skips_its_backlog(
    start_worker: Any, tmp_path: Path,
) -> None:
    from prsm_events.scoring.checkpoint import read_checkpoint

    name, home = f"ckpt{uuid.uuid4().hex[:6]}", tmp_path / "ckpt"
    worker = start_worker(name, home=home, scoring_interval_s=TICK_S,
                          scoring_timescale_s=TICK_S)

    async def trickle(seconds: float, backlog: int = 0) -> None:
        async with UsagePublisher(worker.settings.bootstrap, topic=worker.topic("usage")) as pub:
            await pub.publish_many([spend("steady", 0.01) for _ in range(backlog)])
            until = time.monotonic() + seconds
            while time.monotonic() < until:
                await pub.publish(spend("steady", 0.001))
                await asyncio.sleep(TICK_S / 2)

    def scoring() -> dict[str, Any]:
        return dict(worker.get("/stats")["scoring"])

    run(trickle(16.0))  # > 50 ticks: the detector is past its warm-up
    wait_until(lambda: scoring().get("ticks", 0) >= 55, what="scored ticks", details=scoring)
    worker.stop()
    state, _ = read_checkpoint(home / "scoring" / "checkpoint.npz", TICK_S)
    assert "tenant:steady" in state.scopes and state.ticks >= 55

    # traffic went on while it was down: 100 events of 10x the usual cost wait for it
    run(trickle(0.0, backlog=100))
    worker = start_worker(name, home=home, scoring_interval_s=TICK_S,
                          scoring_timescale_s=TICK_S)
    run(trickle(5.0))
    wait_until(lambda: scoring().get("ticks", 0) >= state.ticks + 10, what="scoring again",
               details=scoring)
    now = scoring()
    assert now["checkpoint"]["restored_scopes"] == len(state.scopes)
    assert now["checkpoint"]["error"] is None
    assert now["skipped"] >= 1  # the interval that read the backlog was not scored
    assert now["ticks"] < state.ticks + 5.0 / TICK_S + 10  # counted on from the checkpoint
    alerts = [v for _, v in records(worker, "alerts")
              if v and v["kind"] == "anomaly" and v["scope"].startswith("tenant:steady")]
    assert alerts == []  # the backlog was not taken for a burst


def test_a_ticks_pacing_directives_reach_gateways_and_lifts_remove_them(kafka: str) -> None:
    """The worker's publishing of a tick's pacing directives (record batches, partitions
    hashed once per key) on the real broker: each key on the partition the producer's own
    partitioner gives it (so a lift's tombstone meets its directive), read back by the SDK's
    ThrottleCache and by kcat, a lifted budget no longer throttled."""
    import numpy as np
    from aiokafka import AIOKafkaProducer

    from prsm_events.events.directives import ThrottleDirective
    from prsm_events.kafka.admin import ensure_topics
    from prsm_events.kafka.connection import KafkaConnection
    from prsm_events.kafka.partitioning import KeyPartitions
    from prsm_events.kafka.topics import TopicSpec
    from prsm_events.scoring.batch import ScopeScores
    from prsm_events.sdk.throttle_cache import ThrottleCache
    from prsm_events.settings import Settings
    from prsm_events.watch.pacing_directives import PacingDirectives
    from prsm_events.watch.spend_watch import WatchReport
    from streams.record_batches import RecordBatches
    from streams.scoring_timer import pacing_to_policies
    from tests.integration.test_ingest_pipeline import kcat

    prefix = f"pace{uuid.uuid4().hex[:6]}."
    topic = f"{prefix}policies"
    n, now = 3_000, time.time()
    scopes = [f'tenant:t{i}' + ('"q\\' if i % 500 == 0 else "") for i in range(n)]
    rng = np.random.default_rng(5)

    def report(at: list[int], lifted: list[int], t: float) -> WatchReport:
        paced = PacingDirectives([scopes[i] for i in at], ["day"] * len(at),
                                 rng.uniform(0.76, 1.0, len(at)), rng.uniform(0, 3, len(at)),
                                 t, 60.0)
        return WatchReport(ScopeScores([], *(np.zeros(0) for _ in range(4))), paced=paced,
                           lifts=[f"{scopes[i]}|pacing:day" for i in lifted])

    first = report(list(range(n)), [], now)
    second = report(list(range(0, n, 3)), [i for i in range(n) if i % 3], now + 60)

    async def publish() -> dict[str, int]:
        await ensure_topics(KafkaConnection(kafka),
                            [TopicSpec(topic, 3, {"cleanup.policy": "compact"}),
                             TopicSpec(f"{topic}-probe", 3)])
        producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all",
                                    max_batch_size=256 * 1024)
        await producer.start()
        try:
            places = KeyPartitions()
            for tick in (first, second):
                await pacing_to_policies(RecordBatches(producer), topic, tick, places)
            # where aiokafka's own partitioner puts a few of the keys (one record each)
            probes = {}
            for i in (0, 1, 2, 500, 2999):
                key = f"{scopes[i]}|pacing:day"
                sent = await (await producer.send(f"{topic}-probe", key=key.encode(),
                                                  value=b"{}"))
                probes[key] = sent.partition
            return probes
        finally:
            await producer.stop()

    async def cached() -> dict[str, ThrottleDirective]:
        async with ThrottleCache(Settings(kafka_bootstrap=kafka, topic_prefix=prefix)) as cache:
            return dict(cache.directives)

    probes = run(publish())
    records = run(read_to_end(kafka, topic))
    assert len(records) == n + len(second.paced) + len(second.lifts)
    partitions: dict[str, set[int]] = {}
    for r in records:
        partitions.setdefault(r.key.decode(), set()).add(r.partition)
    assert all(len(p) == 1 for p in partitions.values())  # directive and lift meet
    assert {k: partitions[k].pop() for k in probes} == probes
    # a gateway sees the second tick's directives, and none of the lifted budgets
    directives = run(cached())
    assert directives == {d.key: d for d in second.paced}
    assert len(directives) == n // 3 and f"{scopes[1]}|pacing:day" not in directives
    # and a third-party client reads the same JSON
    out = subprocess.run([kcat(), "-C", "-b", kafka, "-t", topic, "-e", "-q", "-Z",
                          "-f", "%k\t%s\n"], capture_output=True, text=True, timeout=60,
                         check=True).stdout
    last: dict[str, str] = {}
    for line in out.splitlines():
        key, _, value = line.partition("\t")
        last[key] = value
    live = {k: ThrottleDirective.model_validate_json(v) for k, v in last.items()
            if v != "NULL"}  # (-Z: a tombstone reads NULL)
    assert live == directives
