"""SIGKILLs mid-stream: of the broker (one worker, and two in one group), and of a worker
again and again at random moments. Usage events (single-event messages and envelopes) and
requests flow meanwhile; afterwards every event the broker holds counts once in the tables
and in ClickHouse, every request it holds is decided, and each budget holds exactly the
reservations of the requests admitted."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime

import msgspec
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from prsm_events.accounting.budgets import Budget
from prsm_events.kafka.config_topics import budget_record
from prsm_events.kafka.config_topics import publish as publish_config
from prsm_events.kafka.dev_broker import LocalBroker
from prsm_events.sdk.publisher import UsagePublisher
from tests.integration.conftest import (
    WorkerHandle,
    answers_and_admitted,
    decide_in_steps,
    free_port,
    global_budget_held,
    publish_global_budget,
    read_to_end,
    run,
    settled,
    union_counted,
    unique,
    wait_until,
)
from tests.integration.test_recovery import events, store_totals, totals

pytestmark = pytest.mark.integration

TENANTS = 12
"""Tenants of the usage events (t0-t11) and, apart, of the requests (r0-r11)."""
EACH, FIT = 0.0075, 6
"""A request's estimate (gpt-4o, 1000 in + 500 out) and how many fit a requesting tenant's
day budget."""
BUDGETS = [Budget(scope=f"tenant:r{i}", period="day", limit_usd=0.05)
           for i in range(TENANTS)] + [Budget(scope="global", period="day", limit_usd=1e6)]
"""A budget per requesting tenant, and a global one (escrowed among the partitions) that
never binds."""
PATIENT = {"request_timeout_ms": 120_000}
"""Producers that keep retrying through a slow restart of the broker."""


def request(i: int) -> tuple[bytes, bytes]:
    tenant = f"r{i % TENANTS}"
    return tenant.encode(), orjson.dumps({
        "request_id": f"req-{i}", "ts": datetime.now(UTC).isoformat(), "tenant": tenant,
        "service": "chat", "model": "gpt-4o", "est_input_tokens": 1000,
        "est_output_tokens": 500, "min_quality": 0.99})  # nothing cheaper qualifies


async def send_mixed(bootstrap: str, worker: WorkerHandle, usage: list, requests: Iterable[int],
                     pause_s: float = 0.0) -> tuple[list[str], list[str]]:
    """Usage in chunks of 250 events, alternately single-event messages and envelopes of
    50, ``pause_s`` apart, the requests spread among them; return the ids of the events the
    broker acknowledged, and of those it did not (they may or may not have landed)."""
    topic = worker.topic("usage")
    chunks = range(0, len(usage), 250)
    pending = list(requests)
    per_chunk = -(-len(pending) // len(chunks))
    sent: list[tuple[list[str], asyncio.Future]] = []
    async with (UsagePublisher(bootstrap, topic=topic, batch_events=1, **PATIENT) as singles,
                UsagePublisher(bootstrap, topic=topic, batch_events=50, **PATIENT) as envelopes):
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                    enable_idempotence=True, **PATIENT)
        await producer.start()
        try:
            for c, first in enumerate(chunks):
                chunk = usage[first:first + 250]
                pub = envelopes if c % 2 else singles
                ids: dict[bytes, list[str]] = {}
                for e in chunk:
                    ids.setdefault(e.tenant.encode(), []).append(e.event_id)
                for key, value, count in pub.envelopes(chunk):
                    mine, ids[key] = ids[key][:count], ids[key][count:]
                    sent.append((mine, await pub.producer.send(topic, value, key=key)))
                for i in pending[c * per_chunk:(c + 1) * per_chunk]:
                    key, value = request(i)
                    sent.append(([], await producer.send(worker.topic("requests"), value,
                                                         key=key)))
                await asyncio.sleep(pause_s)
            acked: list[str] = []
            failed: list[str] = []
            for mine, future in sent:
                try:
                    await future
                    acked.extend(mine)
                except Exception:  # not acknowledged
                    failed.extend(mine)
            return acked, failed
        finally:
            await producer.stop()


def landed(bootstrap: str, worker: WorkerHandle) -> set[str]:
    """The ids of the usage events the broker holds."""
    ids: set[str] = set()
    for record in run(read_to_end(bootstrap, worker.topic("usage"))):
        doc = msgspec.json.decode(record.value)
        ids.update(d["event_id"] for d in (doc if isinstance(doc, list) else [doc]))
    return ids


def check_counted(bootstrap: str, workers: list[WorkerHandle], usage: list) -> None:
    """Every usage event the broker holds counts once in the workers' tables together and
    in ClickHouse (the first worker runs the sink); none was dead-lettered."""
    by_id = {e.event_id: e for e in usage}
    expected = totals([by_id[i] for i in sorted(landed(bootstrap, workers[0]))])
    counted = union_counted(workers, expected[0], "every event the broker holds counted")
    assert counted == pytest.approx(expected)  # not one event more, nor a cent
    assert store_totals(workers[0], expected[0]) == pytest.approx(expected)
    assert sum(w.get("/stats")["dead_lettered"] for w in workers) == 0


def check_decided(bootstrap: str, workers: list[WorkerHandle]) -> int:
    """Every request the broker holds is decided; each requesting tenant has its first
    ``FIT`` requests (or all it asked) admitted, by any decision, and no more; its owner
    holds exactly their reservations, and every worker's figure of the global budget is
    their sum. Returns how many were admitted."""
    def decided() -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for record in run(read_to_end(bootstrap, workers[0].topic("decisions"))):
            doc = orjson.loads(record.value)
            out.setdefault(doc["request_id"], []).append(doc["action"])
        return out

    requested = {doc["request_id"]: doc["tenant"] for doc in (
        orjson.loads(r.value) for r in run(read_to_end(bootstrap, workers[0].topic(
            "requests"))))}
    wait_until(lambda: not requested.keys() - decided().keys(), timeout=90,
               what="every request the broker holds decided",
               details=lambda: sorted(requested.keys() - decided().keys())[:10])
    admitted = {rid for rid, actions in decided().items()
                if any(a in ("allow", "route") for a in actions)}
    by_tenant = {f"r{i}": 0 for i in range(TENANTS)}
    for rid in admitted:
        by_tenant[requested[rid]] += 1
    for tenant, count in by_tenant.items():
        assert count == min(FIT, sum(t == tenant for t in requested.values())), tenant

    def reserved() -> tuple[dict[str, float], list[float]]:
        """Each tenant's reservations (from its owner), and every worker's of global."""
        answers = [w.budgets() for w in workers]
        return ({b["key"]: b["reserved_usd"] for a in answers for b in a
                 if b["key"] != "global|day"},
                [b["reserved_usd"] for a in answers for b in a if b["key"] == "global|day"])

    def held() -> bool:
        tenant_figures, global_figures = reserved()
        return tenant_figures == {
            f"tenant:{t}|day": pytest.approx(n * EACH, abs=1e-9)
            for t, n in by_tenant.items()} and all(
            abs(g - len(admitted) * EACH) < 1e-9 for g in global_figures)

    wait_until(held, timeout=30, what="the admitted requests' reservations held",
               details=lambda: (reserved(), by_tenant))
    return len(admitted)


@pytest.mark.parametrize("count", [1, 2])
def test_the_broker_killed_mid_stream_loses_nothing_it_acknowledged(count, tmp_path):
    """The broker is SIGKILLed while 16,000 usage events and 400 requests stream in and
    ``count`` workers have batches in flight (accepted rows, changelog records, escrow,
    offsets), and started again 3 s later; the clients send on meanwhile, retrying what the
    broker had not acknowledged. Every event it acknowledged is in the topic, and the rest
    holds as the module says."""
    broker = LocalBroker(tmp_path / "broker", free_port(pairs=True))
    bootstrap = broker.start()
    name = unique(f"it-broker-kill{count}")
    common = {"app_id": name, "topic_prefix": f"{name}.", "partitions": 6,
              "reservation_ttl_s": 900.0}
    workers = [WorkerHandle(f"bk{i}", bootstrap, tmp_path / f"w{i}",
                            sink="worker" if i == 0 else "off", **common)
               for i in range(count)]
    usage = events("bk-", 16_000, tenants=TENANTS)
    outcome: list[tuple[list[str], list[str]]] = []

    def accepted() -> list[int]:
        return [w.get("/stats")["accepted"] for w in workers]

    try:
        for w in workers:
            w.start()
        run(publish_config(workers[0].settings, "budgets", [budget_record(b) for b in BUDGETS]))
        wait_until(lambda: all(w.get("/health")["budgets"] == len(BUDGETS) for w in workers),
                   what="every worker read the budgets")
        settled(workers)
        sender = threading.Thread(target=lambda: outcome.append(run(send_mixed(
            bootstrap, workers[0], usage, range(400), pause_s=0.02))))
        sender.start()
        wait_until(lambda: sum(accepted()) >= 2_000 and min(accepted()) > 0,
                   what="part of the stream, on every worker", details=accepted)
        pid = broker.pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        assert sum(accepted()) < len(usage), accepted()  # they were mid-stream
        time.sleep(3.0)
        broker.start()
        sender.join(timeout=240)
        assert outcome, "the sender did not finish"
        acked, failed = outcome[0]
        held = landed(bootstrap, workers[0])
        assert set(acked) <= held  # the broker kept what it acknowledged
        assert len(held) >= 2_000, (len(acked), len(failed))
        check_counted(bootstrap, workers, usage)
        assert check_decided(bootstrap, workers) > 0
    finally:
        for w in workers:
            w.process.terminate()
        for w in workers:
            w.stop()
        broker.stop()


def test_a_worker_killed_again_and_again_at_random_moments_loses_nothing(
        start_worker, kafka, tmp_path):
    """Five rounds: 6,000 usage events and 120 requests are sent, and 0-1.2 s later (a
    fixed seed; where that falls depends on the machine's speed: mid-batch, between
    batches, in the sink's insert, after the round was done) the worker is SIGKILLed and
    started again on its home. Everything holds as the module says."""
    rng = random.Random(7)
    name = unique("it-kills")
    common = {"app_id": name, "topic_prefix": f"{name}.", "partitions": 6,
              "reservation_ttl_s": 900.0}
    home = tmp_path / "w"
    worker = start_worker("kills", home=home, **common)
    run(publish_config(worker.settings, "budgets", [budget_record(b) for b in BUDGETS]))
    wait_until(lambda: worker.get("/health")["budgets"] == len(BUDGETS), what="budgets read")
    usage = events("kl-", 30_000, tenants=TENANTS)
    for r in range(5):
        acked, failed = run(send_mixed(kafka, worker, usage[r * 6000:(r + 1) * 6000],
                                       range(r * 120, (r + 1) * 120)))
        assert (len(acked), failed) == (6000, [])
        time.sleep(rng.uniform(0.0, 1.2))
        worker.kill()
        worker = start_worker("kills", home=home, **common)
    check_counted(kafka, [worker], usage)
    assert check_decided(kafka, [worker]) == TENANTS * FIT


def test_a_global_budget_holds_while_workers_are_killed_again_and_again(
        start_worker, kafka, tmp_path):
    """Three workers, a global $1 hard budget, 600 requests of 12 tenants (4.5 times the
    limit) from four clients that ask deferred requests again, in a steady stream; four
    times a worker drawn at random (the sink's too) is SIGKILLed at a random moment and
    started again a moment later. Every request is answered; what any decision admitted
    holds a reservation, at most the limit and at least 98% of it; every worker sees that
    whole, and no partition holds more than its allotment."""
    from tests.factories import request as priced_request

    rng = random.Random(4)
    name = unique("it-global-kills")
    common = {"app_id": name, "topic_prefix": f"{name}.", "partitions": 6,
              "reservation_ttl_s": 900.0}

    def worker(i: int) -> WorkerHandle:
        return start_worker(f"gk{i}", home=tmp_path / f"gk{i}",
                            sink="worker" if i == 0 else "off", **common)

    workers = [worker(i) for i in range(3)]
    publish_global_budget(workers, 1.0)
    reqs = [priced_request(tenant=f"t{i % TENANTS}") for i in range(600)]  # $0.0075 each
    done = threading.Event()

    def decide_all() -> None:
        try:
            run(decide_in_steps(workers[0].settings, reqs, step=20, pause_s=0.05))
        finally:
            done.set()

    sender = threading.Thread(target=decide_all)
    sender.start()
    for _ in range(4):
        time.sleep(rng.uniform(0.2, 1.5))
        if done.is_set():
            break
        i = rng.randrange(3)
        workers[i].kill()
        time.sleep(rng.uniform(0.0, 2.0))
        workers[i] = worker(i)
    sender.join(timeout=400)
    assert not sender.is_alive()
    settled(workers)

    answers, admitted = answers_and_admitted(kafka, workers)
    assert len(answers) == len(reqs)
    assert 0.98 <= admitted <= 1.0 + 1e-9, f"${admitted:.4f} of $1 admitted"
    global_budget_held(workers, admitted)
