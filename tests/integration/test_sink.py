"""The ClickHouse sink as a role of its own: workers with PRSM_SINK=off and one `prsm sink`."""

from __future__ import annotations

import ast
import os
import random
import socket
import subprocess
import sys
import time
import urllib.error

import orjson
import pytest

from prsm_events.settings import Settings
from tests.integration.conftest import read_to_end, run, send_raw, wait_until
from tests.integration.test_recovery import events, publish, table_totals, totals
from tests.unit.store.test_clickhouse import run_py

pytestmark = pytest.mark.integration


def start_sink(settings: Settings, log_path) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "prsm_events", "sink"], stdout=log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **settings.as_env()})


def sink_behind(settings: Settings) -> int:
    """Records of the accepted topic that the sink's group has not committed."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    from prsm_events.kafka.compacted_view import wait_for_partitions

    async def go() -> int:
        topic = settings.topic("accepted")
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None)
        await admin.start()
        await consumer.start()
        try:
            committed = await admin.list_consumer_group_offsets(f"{settings.app_id}-sink")
            parts = await wait_for_partitions(consumer, topic)
            ends = await consumer.end_offsets([TopicPartition(topic, p) for p in parts])
            assert sum(ends.values()) > 0, "nothing on the accepted topic"
            return sum(end - (committed[tp].offset if tp in committed else 0)
                       for tp, end in ends.items())
        finally:
            await consumer.stop()
            await admin.close()
    return run(go())


def sink_members(settings: Settings) -> list[str]:
    """Client ids of the members of the sink's group, once it is stable."""
    from aiokafka.admin import AIOKafkaAdminClient

    async def go() -> list[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        await admin.start()
        try:
            [response] = await admin.describe_consumer_groups([f"{settings.app_id}-sink"])
            _error, _group, state, _type, _protocol, members = response.groups[0][:6]
            return [m[1] for m in members] if state == "Stable" else []
        finally:
            await admin.close()
    return run(go())


def test_one_sink_of_its_own_writes_what_workers_without_one_accepted(
        start_worker, kafka, tmp_path):
    """A worker with PRSM_SINK=off writes accepted events to the accepted topic only; a
    `prsm sink` that alone owns the embedded store writes every one once, through a SIGKILL of
    the sink at a random moment; a record ClickHouse refuses, or one on the decisions or
    alerts topic that is not a decision or an alert, is dead-lettered, alone."""
    home = tmp_path / "split"
    dsn = f"chdb://{home / 'clickhouse'}"
    worker = start_worker("it-split", home=home, clickhouse_dsn=dsn, sink="off")
    health = worker.get("/health")
    assert (health["status"], health["sink"], health["clickhouse"]) == ("ok", "off", "not used")
    with pytest.raises(urllib.error.HTTPError) as refused:
        worker.get("/reports/spend?by=tenant")
    assert refused.value.code == 409

    first, second = events("sp1-", 900), events("sp2-", 900)
    publish(kafka, worker.topic("usage"), first)
    wait_until(lambda: table_totals(worker)[0] >= len(first), what="first burst counted")
    send_raw(kafka, worker.topic("accepted"), [(b"intruder", b"not a usage row")])
    send_raw(kafka, worker.topic("decisions"), [(b"intruder", b"not a decision")])
    send_raw(kafka, worker.topic("alerts"), [(b"intruder", b'{"alert_id": "a"}')])

    sink = start_sink(worker.settings, home / "sink.log")
    try:
        wait_until(lambda: sink_behind(worker.settings) == 0, timeout=90,
                   what="the sink wrote the first burst")
        publish(kafka, worker.topic("usage"), second, batch_events=50)
        time.sleep(random.uniform(0.0, 1.5))
        sink.kill()  # SIGKILL, anywhere in gathering, inserting or committing
        sink.wait(30)
        wait_until(lambda: table_totals(worker)[0] >= len(first) + len(second),
                   what="second burst counted", details=lambda: worker.get("/stats"))
        sink = start_sink(worker.settings, home / "sink.log")
        wait_until(lambda: sink_members(worker.settings) == [
            f"prsm-sink-{socket.gethostname()}-{sink.pid}"], timeout=60,
                   what="the restarted sink alone in its group")
        wait_until(lambda: sink_behind(worker.settings) == 0, timeout=90,
                   what="the restarted sink caught up")
        sink.terminate()  # SIGTERM: a clean stop
        assert sink.wait(60) == 0, (home / "sink.log").read_text()[-3000:]
    finally:
        if sink.poll() is None:
            sink.kill()
            sink.wait(30)

    expected = totals(first + second)
    assert table_totals(worker) == pytest.approx(expected)
    out = run_py(f"""
        from prsm_events.store.clickhouse import ClickHouseStore
        store = ClickHouseStore("{dsn}")
        print(store.query("SELECT count(), toFloat64(sum(cost_usd)) FROM {{db}}.usage FINAL")[0])
    """)
    count, cost = ast.literal_eval(out)
    assert (count, cost) == (expected[0], pytest.approx(expected[1]))

    letters = [orjson.loads(r.value) for r in run(read_to_end(kafka, worker.topic("dlq")))]
    assert sorted((d["code"], d["source_topic"], d["original"]) for d in letters) == sorted([
        ("sink_refused", worker.topic("accepted"), "not a usage row"),
        ("sink_refused", worker.topic("decisions"), "not a decision"),
        ("sink_refused", worker.topic("alerts"), '{"alert_id": "a"}')])
    reasons = {d["source_topic"]: d["reason"] for d in letters}
    assert "not a decision" in reasons[worker.topic("decisions")]
    assert "not an alert" in reasons[worker.topic("alerts")]
