"""Usage events from any Kafka client reach the spend tables and ClickHouse (real broker)."""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from prsm_events.accounting.catalog import Catalog
from prsm_events.accounting.pricing import price_usage
from prsm_events.events.usage import UsageEvent
from prsm_events.sdk.publisher import SyncUsagePublisher, UsagePublisher
from tests.factories import usage
from tests.integration.conftest import run, wait_until

pytestmark = pytest.mark.integration
CATALOG = Catalog.shipped()


def cost(*events: UsageEvent) -> float:
    return sum(price_usage(e, CATALOG).cost_usd for e in events)


async def read_topic(bootstrap: str, topic: str, count: int, timeout_s: float = 30) -> list:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    out: list = []
    try:
        loop_deadline = timeout_s
        while len(out) < count and loop_deadline > 0:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                out.extend(records)
            loop_deadline -= 0.5
    finally:
        await consumer.stop()
    return out


def kcat() -> str:
    path = shutil.which("kcat")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("kcat must be installed in CI (.ci/run installs Debian's kcat)")
        pytest.skip("kcat is not installed (apt-get install kcat)")
    return path


def test_sdk_and_kcat_events_reach_tables_and_clickhouse(start_worker, kafka):
    worker = start_worker("it-ingest")
    topic = worker.topic("usage")
    async_events = [usage(f"a{i}", tenant="acme") for i in range(20)]
    sync_events = [usage(f"s{i}", tenant="beta", model="claude-sonnet-4", cached_input_tokens=500)
                   for i in range(10)]
    kcat_events = [usage(f"k{i}", tenant="gamma", service="batch", cost_usd=0.25)
                   for i in range(5)]

    async def publish_async() -> None:
        async with UsagePublisher(kafka, topic=topic) as pub:
            await pub.publish(async_events[0])
            await pub.publish_many(async_events[1:])

    run(publish_async())
    with SyncUsagePublisher(kafka, topic=topic) as pub:
        pub.publish_many(sync_events)
    lines = "".join(f"{e.tenant}|{e.model_dump_json()}\n" for e in kcat_events)
    subprocess.run([kcat(), "-b", kafka, "-t", topic, "-P", "-K", "|"], input=lines.encode(),
                   check=True, timeout=30)

    wait_until(lambda: worker.processed() >= 35, what="35 events processed")
    assert worker.get("/stats")["accepted"] == 35
    for tenant, events in (("acme", async_events), ("beta", sync_events),
                           ("gamma", kcat_events)):
        row = worker.spend(f"tenant:{tenant}")
        assert row["events"] == len(events)
        assert row["cost_usd"] == pytest.approx(cost(*events))
    assert worker.spend("tenant:gamma/service:batch")["events"] == 5
    assert worker.spend("tenant:beta/model:claude-sonnet-4", "month")["events"] == 10
    stored = {r["tenant"]: r for r in worker.stored("tenant", 35)}
    assert stored["acme"]["events"] == 20
    assert stored["beta"]["cost_usd"] == pytest.approx(cost(*sync_events))
    assert stored["gamma"]["cost_usd"] == pytest.approx(1.25)
    # the CLI's path: `prsm report spend` reaches the embedded store through the worker's API
    from prsm_events.cli.worker_api import fetch_report

    by_model = fetch_report(worker.settings, "spend", {"by": "model"}).records
    assert {r["model"]: r["events"] for r in by_model} == {
        "gpt-4o-mini": 25, "claude-sonnet-4": 10}


def test_bad_messages_go_to_the_dlq_and_the_worker_keeps_going(start_worker, kafka):
    worker = start_worker("it-dlq")
    topic = worker.topic("usage")
    good = usage("ok-1")
    now = datetime.now(UTC)
    bad = {
        "invalid_json": b"this is not json",
        "not_an_object": b'"a string"',
        "unknown_field": orjson.dumps({**orjson.loads(usage("u1").model_dump_json()),
                                       "colour": "red"}),
        "invalid_field": orjson.dumps({**orjson.loads(usage("u2").model_dump_json()),
                                       "input_tokens": -5}),
        "missing_field": orjson.dumps({"event_id": "m1", "ts": now.isoformat(),
                                       "service": "chat", "cost_usd": 1.0}),
        "ts_out_of_range": orjson.dumps({**orjson.loads(usage("u3").model_dump_json()),
                                         "ts": (now + timedelta(days=30)).isoformat()}),
        "oversized": orjson.dumps({**orjson.loads(usage("u4").model_dump_json()),
                                   "tags": {"pad": "x" * 70_000}}),
        "unknown_model": usage("u5", model="no-such-model").model_dump_json().encode(),
        "empty": b"",
    }

    async def publish() -> None:
        async with UsagePublisher(kafka, topic=topic, max_request_size=2_000_000) as pub:
            for raw in bad.values():
                await pub.publish_raw(raw, key=b"acme")
            await pub.publish(good)

    run(publish())
    wait_until(lambda: worker.processed() >= len(bad) + 1, what="all messages processed",
               details=lambda: (worker.get("/stats"), worker.get("/health")))
    stats = worker.get("/stats")
    assert stats["accepted"] == 1
    assert stats["dead_letter_codes"] == dict.fromkeys(bad, 1)
    records = run(read_topic(kafka, worker.topic("dlq"), len(bad)))
    letters = {orjson.loads(r.value)["code"]: orjson.loads(r.value) for r in records}
    assert set(letters) == set(bad)
    for code, raw in bad.items():
        letter = letters[code]
        assert letter["source_topic"] == topic
        assert letter["reason"].startswith(code)
        assert letter["original_base64"] is not None or raw == b""
        if raw:
            import base64

            assert base64.b64decode(letter["original_base64"]) == raw
    assert "input_tokens" in letters["invalid_field"]["reason"]
    assert "colour" in letters["unknown_field"]["reason"]
    assert worker.spend("tenant:acme")["events"] == 1


def test_duplicate_event_ids_count_once(start_worker, kafka):
    worker = start_worker("it-dup")
    events = [usage(f"d{i}") for i in range(10)]

    async def publish() -> None:
        async with UsagePublisher(kafka, topic=worker.topic("usage")) as pub:
            await pub.publish_many(events)
            await pub.publish_many(events[:5])  # a producer retrying
            await pub.publish(events[0])

    run(publish())
    wait_until(lambda: worker.processed() >= 16, what="16 messages processed")
    stats = worker.get("/stats")
    assert (stats["accepted"], stats["duplicates"]) == (10, 6)
    assert worker.spend("tenant:acme")["events"] == 10
    assert worker.spend("tenant:acme")["cost_usd"] == pytest.approx(cost(*events))
    assert worker.stored("tenant", 10)[0]["events"] == 10


def test_a_batch_envelope_from_kcat_is_judged_event_by_event(start_worker, kafka):
    """Any client may send many events in one message (a JSON array): each counts once,
    a bad one is dead-lettered alone with its index, and the message is not split."""
    worker = start_worker("it-envelope")
    good = [usage(f"env{i}", tenant="delta") for i in range(3)]
    bad = {**orjson.loads(usage("env-bad", tenant="delta").model_dump_json()), "input_tokens": -1}
    elements = [orjson.loads(e.model_dump_json()) for e in good]
    envelope = orjson.dumps([elements[0], bad, elements[1], elements[0], elements[2]])
    subprocess.run([kcat(), "-b", kafka, "-t", worker.topic("usage"), "-P", "-K", "|"],
                   input=b"delta|" + envelope + b"\n", check=True, timeout=30)

    wait_until(lambda: worker.processed() >= 5, what="the five events processed")
    stats = worker.get("/stats")
    assert (stats["accepted"], stats["duplicates"], stats["dead_letter_codes"]) == (
        3, 1, {"invalid_field": 1})
    row = worker.spend("tenant:delta")
    assert row["events"] == 3 and row["cost_usd"] == pytest.approx(cost(*good))
    assert {r["tenant"]: r["events"] for r in worker.stored("tenant", 3)}["delta"] == 3
    letter = orjson.loads(run(read_topic(kafka, worker.topic("dlq"), 1))[0].value)
    assert (letter["code"], letter["source_offset"], letter["source_index"]) == (
        "invalid_field", 0, 1)
    assert letter["reason"].startswith("invalid_field: event 1 of the batch: input_tokens")
    assert orjson.loads(letter["original"]) == bad
