"""No message can stall a partition; committed offsets follow the work; honest health.

Each test here failed on the worker before issue 13's fixes."""

from __future__ import annotations

import time

import pytest

from tests.integration.conftest import clickhouse_held, run, send_raw, wait_until
from tests.integration.test_recovery import events, publish, store_totals, table_totals, totals

pytestmark = pytest.mark.integration


async def _lag(kafka: str, group: str, topic: str) -> dict[int, int]:
    """Per partition of ``topic``: log end offset minus ``group``'s committed offset."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    from prsm_events.kafka.compacted_view import wait_for_partitions

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, group_id=None)
    await admin.start()
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in await wait_for_partitions(consumer, topic)]
        ends = await consumer.end_offsets(tps)
        committed = await admin.list_consumer_group_offsets(group, partitions=tps)
        return {tp.partition: ends[tp] - (committed[tp].offset if tp in committed
                                          and committed[tp].offset >= 0 else 0)
                for tp in tps}
    finally:
        await consumer.stop()
        await admin.close()


def lag(worker, topic: str = "usage") -> dict[int, int]:
    return run(_lag(worker.settings.bootstrap, worker.settings.app_id, worker.topic(topic)))


def test_committed_offsets_reach_the_log_end_after_a_crash_and_at_a_clean_stop(
        start_worker, kafka, tmp_path):
    home = tmp_path / "commits"
    worker = start_worker("it-commits", home=home)
    first = events("cm1-", 6000)
    publish(kafka, worker.topic("usage"), first, batch_events=1)
    wait_until(lambda: worker.get("/stats")["accepted"] >= 300, what="part of the burst")
    worker.kill()  # the restarted worker re-reads what was not committed, seeks included

    worker = start_worker("it-commits", home=home)
    wait_until(lambda: table_totals(worker)[0] >= len(first), timeout=90,
               what="all events counted after the crash", details=lambda: worker.get("/stats"))
    done = time.monotonic()
    # the commit timer runs every second: the group must be at the log end a few ticks later
    wait_until(lambda: not any(lag(worker).values()), timeout=10,
               what="offsets committed to the log end", details=lambda: lag(worker))
    assert time.monotonic() - done < 10

    second = events("cm2-", 3000)
    publish(kafka, worker.topic("usage"), second, batch_events=1)
    wait_until(lambda: table_totals(worker)[0] >= len(first) + len(second), timeout=90,
               what="second burst counted", details=lambda: worker.get("/stats"))
    wait_until(lambda: worker.get("/stats")["acknowledged"] >= worker.get("/stats")["messages"],
               what="the processed events acknowledged", details=lambda: worker.get("/stats"))
    worker.stop()  # a clean stop commits what was acknowledged
    assert lag(worker) == {0: 0, 1: 0, 2: 0}
    restarted = start_worker("it-commits", home=home)
    assert table_totals(restarted) == pytest.approx(totals(first + second))


def test_a_message_near_the_broker_limit_is_dead_lettered_and_its_partition_moves_on(
        start_worker, kafka):
    import base64
    import hashlib

    import orjson

    from tests.integration.conftest import read_to_end
    from tests.integration.test_recovery import store_totals

    worker = start_worker("it-big")
    good = events("big-", 60, tenants=1)  # one tenant: one partition, behind the big ones
    text = orjson.dumps({**orjson.loads(good[0].model_dump_json()), "event_id": "huge",
                         "tags": {"pad": "x\u00e9\"" * 300_000}})  # ~1.2 MB of JSON escapes
    text = text[:900_000].decode("utf-8", "ignore").encode()  # UTF-8 text, not JSON
    binary = bytes(range(256)) * 3500  # 896,000 bytes, not UTF-8
    messages = [(b"t0", good[0].model_dump_json().encode()), (b"t0", text), (b"t0", binary)]
    messages += [(b"t0", e.model_dump_json().encode()) for e in good[1:]]
    send_raw(kafka, worker.topic("usage"), messages)

    wait_until(lambda: worker.processed() >= len(messages), timeout=60,
               what="every message accepted or dead-lettered", details=lambda: worker.get("/stats"))
    stats = worker.get("/stats")
    assert (stats["accepted"], stats["dead_lettered"]) == (len(good), 2)
    assert stats["dead_letter_codes"] == {"oversized": 2}
    assert stats["dead_letter_summaries"] == 0  # each letter fitted whole, cut to size
    # tables and ClickHouse agree: nothing behind the big messages was held up
    assert table_totals(worker, tenants=1) == pytest.approx(totals(good))
    assert store_totals(worker, len(good)) == pytest.approx(totals(good))

    records = run(read_to_end(kafka, worker.topic("dlq")))
    letters = [orjson.loads(r.value) for r in records]
    assert len(letters) == 2
    assert all(len(r.value) <= worker.settings.max_message_bytes for r in records)
    for letter, original in zip(letters, (text, binary), strict=True):
        assert letter["code"] == "oversized" and letter["truncated"] is True
        assert letter["original_bytes"] == len(original) >= 890_000
        assert letter["original_sha256"] == hashlib.sha256(original).hexdigest()
    assert text.decode().startswith(letters[0]["original"])
    assert len(letters[0]["original"]) > 100_000
    assert binary.startswith(base64.b64decode(letters[1]["original_base64"]))
    assert worker.get("/health")["status"] == "ok"


def test_a_worker_refuses_to_start_when_a_topic_takes_smaller_records(start_worker, kafka):
    from prsm_events.errors import PrsmError

    worker = start_worker("it-limits")  # creates the topics and the tables' changelogs
    worker.stop()
    with pytest.raises(PrsmError) as info:  # the changelogs take 1,001,024-byte records
        start_worker("it-limits", home=worker.settings.home, max_message_bytes=4_000_000)
    message = str(info.value)
    assert "topics accept smaller records than the worker may write" in message
    assert "changelog" in message and "PRSM_MAX_MESSAGE_BYTES" in message


def test_a_worker_refuses_to_start_on_topics_of_another_partition_count(start_worker):
    """A worker reads a partition's requests, usage and decisions together (and reads its
    decisions back on taking it over): topics of another count than PRSM_PARTITIONS would
    break that, so it says so instead of starting."""
    from prsm_events.errors import PrsmError

    worker = start_worker("it-parts")  # 3 partitions
    worker.stop()
    with pytest.raises(PrsmError) as info:
        start_worker("it-parts", home=worker.settings.home, partitions=4)
    message = str(info.value)
    assert "must each have PRSM_PARTITIONS (4) partitions" in message
    assert f"{worker.topic('decisions')} has 3 partitions, expected 4" in message
    # `prsm topics create` lists what it found, then fails the same way (exit 2)
    from click.testing import CliRunner

    from prsm_events.cli.main import main

    env = worker.settings.model_copy(update={"partitions": 4}).as_env()
    result = CliRunner().invoke(main, ["topics", "create"], env=env)
    assert result.exit_code == 2, result.output
    assert f"warning   {worker.topic('usage')}  (has 3 partitions, expected 4" in result.output
    assert "error: " in result.output and "must each have PRSM_PARTITIONS (4)" in result.output


def test_health_reports_a_blocked_sink_without_stalling_ingest(start_worker, kafka, tmp_path):
    """ClickHouse away: /health says the sink is blocked (degraded), and no usage partition
    stalls behind it: the tables count every event meanwhile."""
    home = tmp_path / "stall"
    dsn = f"chdb://{home / 'clickhouse'}"
    (home / "clickhouse").mkdir(parents=True)
    worker = start_worker("it-stall", home=home, clickhouse_dsn=dsn, stall_after_s=2.0,
                          health_interval_s=0.5)
    assert worker.get("/health")["status"] == "ok"
    worker.stop()
    batch = events("st-", 90)
    with clickhouse_held(dsn):
        worker = start_worker("it-stall", home=home, clickhouse_dsn=dsn, stall_after_s=2.0,
                              health_interval_s=0.5)
        publish(kafka, worker.topic("usage"), batch, batch_events=1)  # a message per event
        wait_until(lambda: worker.get("/health")["sink"] == "blocked", timeout=30,
                   what="the sink reported blocked", details=lambda: worker.get("/health"))
        wait_until(lambda: table_totals(worker)[0] >= len(batch), what="every event counted",
                   details=lambda: worker.get("/stats"))
        time.sleep(2.5)  # past stall_after_s: a partition held up would now be reported
        health = worker.get("/health")
        assert (health["status"], health["sink"], health["broker"], health["stalled"]) == (
            "degraded", "blocked", "up", []), health
        assert any("ClickHouse sink blocked" in p for p in health["problems"])
        assert worker.get("/stats")["sink"]["waiting"] >= 1
    wait_until(lambda: worker.get("/health")["status"] == "ok", timeout=60,
               what="healthy again", details=lambda: worker.get("/health"))
    assert table_totals(worker) == pytest.approx(totals(batch))
    assert store_totals(worker, len(batch)) == pytest.approx(totals(batch))


def test_a_broker_outage_is_reported_and_logged_quietly(tmp_path):
    from prsm_events.kafka.dev_broker import LocalBroker
    from tests.integration.conftest import WorkerHandle, free_port

    broker = LocalBroker(tmp_path / "broker", free_port(pairs=True))
    bootstrap = broker.start()
    worker = WorkerHandle("it-outage-broker", bootstrap, tmp_path / "w",
                          health_interval_s=0.5)
    try:
        worker.start()
        before = events("ob1-", 60)
        publish(bootstrap, worker.topic("usage"), before)
        wait_until(lambda: table_totals(worker)[0] >= 60, what="first events counted")
        log = worker.process.log_path
        lines_before = len(log.read_text(errors="replace").splitlines())
        broker.stop()
        down_at = time.monotonic()
        wait_until(lambda: worker.get("/health")["broker"] == "unreachable", timeout=15,
                   what="broker reported unreachable")
        health = worker.get("/health")
        assert health["status"] == "degraded"
        assert any("Kafka broker unreachable" in p for p in health["problems"])
        time.sleep(max(0.0, 20 - (time.monotonic() - down_at)))  # a 20 s outage
        outage_lines = len(log.read_text(errors="replace").splitlines()) - lines_before
        broker.start()
        wait_until(lambda: worker.get("/health")["status"] == "ok", timeout=90,
                   what="healthy after the broker came back",
                   details=lambda: worker.get("/health"))
        after = events("ob2-", 60)
        publish(bootstrap, worker.topic("usage"), after)
        wait_until(lambda: table_totals(worker)[0] >= 120, timeout=60,
                   what="events after the outage counted")
        assert table_totals(worker) == pytest.approx(totals(before + after))
        # one line per cause per 10 s, not thousands a second (156,151 lines before)
        assert outage_lines < 200, log.read_text(errors="replace").splitlines()[-50:]
    finally:
        worker.stop()
        broker.stop()


def test_a_transactional_producers_markers_hold_no_partition(start_worker, kafka):
    """Kafka Streams, Flink or any exactly-once client leaves a control record after each
    transaction: an offset no consumer is handed. Before, the agent sought back to it again
    and again: 50 of 300 events were counted and the rest waited for good."""
    import asyncio
    import uuid

    from aiokafka import AIOKafkaProducer

    worker = start_worker("it-txn", stall_after_s=2.0, health_interval_s=0.5)
    batch = events("tx-", 300)

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka,
                                    transactional_id=f"it-txn-{uuid.uuid4().hex}")
        await producer.start()
        try:
            for first in range(0, len(batch), 50):
                async with producer.transaction():
                    for e in batch[first:first + 50]:
                        await producer.send(worker.topic("usage"), e.model_dump_json().encode(),
                                            key=e.tenant.encode())
        finally:
            await producer.stop()

    asyncio.run(send())
    # the tables count a batch when it is taken, /stats once the broker has its records
    wait_until(lambda: table_totals(worker)[0] >= len(batch)
               and worker.processed() >= len(batch), timeout=60,
               what="every event of every transaction counted",
               details=lambda: worker.get("/stats"))
    assert table_totals(worker) == pytest.approx(totals(batch))
    stats = worker.get("/stats")
    assert (stats["accepted"], stats["rewinds"]) == (len(batch), 0)
    # the last markers are passed once the agent is idle: committed to the log end, no stall
    wait_until(lambda: not any(lag(worker).values()), timeout=30,
               what="offsets committed past the last markers", details=lambda: lag(worker))
    health = worker.get("/health")
    assert (health["status"], health["stalled"]) == ("ok", []), health


def test_commits_go_on_past_offsets_deleted_before_they_were_processed(
        start_worker, kafka, tmp_path):
    """A worker down for longer than the usage topic's retention comes back to a committed
    offset that no longer exists: it counts what is left and commits to the log end."""
    from aiokafka import TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

    home = tmp_path / "retention"
    worker = start_worker("it-retention", home=home)
    first = events("rt1-", 30, tenants=1)
    publish(kafka, worker.topic("usage"), first, batch_events=1)  # offsets are events here
    wait_until(lambda: table_totals(worker, tenants=1)[0] >= len(first), what="first counted")
    wait_until(lambda: not any(lag(worker).values()), what="first committed")
    worker.stop()

    second = events("rt2-", 40, tenants=1)  # one tenant: one partition
    publish(kafka, worker.topic("usage"), second, batch_events=1)
    [(partition, waiting)] = [(p, n) for p, n in lag(worker).items() if n]
    assert waiting == len(second)

    async def expire(before: int) -> None:  # what retention does, now
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
        await admin.start()
        try:
            await admin.delete_records(
                {TopicPartition(worker.topic("usage"), partition): RecordsToDelete(before)})
        finally:
            await admin.close()

    end = len(first) + len(second)  # the partition's end offset: it holds only these
    run(expire(end - 10))  # 30 of the 40 unprocessed events are gone
    worker = start_worker("it-retention", home=home)
    wait_until(lambda: table_totals(worker, tenants=1)[0] >= len(first) + 10, timeout=60,
               what="the 10 events left counted", details=lambda: worker.get("/stats"))
    assert table_totals(worker, tenants=1) == pytest.approx(totals(first + second[-10:]))
    wait_until(lambda: not any(lag(worker).values()), timeout=10,
               what="committed to the log end past the deleted offsets",
               details=lambda: lag(worker))


def test_no_partition_is_reported_unfetched_once_the_tables_are_read(start_worker, kafka):
    """The worker pauses the tables' changelog partitions in aiokafka's fetcher once Faust
    has paused them (``faust_compat``, "Pauses reach the fetcher"). Faust's own check (no
    fetch for ``stream_processing_timeout``, 3 s here) would then log an error for every one
    paused before its first fetch; it must leave out what Faust paused on purpose."""
    worker = start_worker("it-fetched", env={"STREAM_PROCESSING_TIMEOUT": "3"})
    publish(kafka, worker.topic("usage"), events("pf-", 300), batch_events=1)
    wait_until(lambda: table_totals(worker)[0] >= 300, what="the events counted",
               details=lambda: worker.get("/stats"))
    # the check runs every 2.5 s (2.5 commit intervals): three rounds past the timeout
    time.sleep(8.0)
    assert worker.get("/stats")["accepted"] == 300
    log = worker.process.log_path.read_text()
    assert "has not sent fetch request" not in log, log[-2000:]
