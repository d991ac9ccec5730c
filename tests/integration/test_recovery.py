"""Nothing acknowledged is lost, nothing counted twice: worker crashes, ClickHouse outages."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from prsm_events.accounting.catalog import Catalog
from prsm_events.accounting.pricing import price_usage
from prsm_events.events.usage import UsageEvent
from prsm_events.sdk.publisher import UsagePublisher
from tests.integration.conftest import clickhouse_held, run, set_topic_config, wait_until

pytestmark = pytest.mark.integration
CATALOG = Catalog.shipped()


def events(prefix: str, n: int, tenants: int = 3) -> list[UsageEvent]:
    now = datetime.now(UTC)
    return [UsageEvent(event_id=f"{prefix}{i}", ts=now, tenant=f"t{i % tenants}",
                       service="chat", model="gpt-4.1-mini", input_tokens=100 + i,
                       output_tokens=10 + i % 7) for i in range(n)]


def publish(kafka: str, topic: str, batch: list[UsageEvent], batch_events: int = 500) -> None:
    """Publish with the SDK: batch envelopes, or one message per event (``batch_events=1``)."""
    async def go() -> None:
        async with UsagePublisher(kafka, topic=topic, batch_events=batch_events) as pub:
            await pub.publish_many(batch)

    run(go())


def totals(batch: list[UsageEvent]) -> tuple[int, float]:
    return len(batch), sum(price_usage(e, CATALOG).cost_usd for e in batch)


def table_totals(worker, tenants: int = 3) -> tuple[int, float]:
    rows = [worker.spend(f"tenant:t{i}") for i in range(tenants)]
    return sum(r["events"] for r in rows), sum(r["cost_usd"] for r in rows)


def store_totals(worker, events: int) -> tuple[int, float]:
    """Events and cost in ClickHouse once it holds at least ``events`` events."""
    rows = worker.stored("tenant", events)
    return sum(r["events"] for r in rows), sum(r["cost_usd"] for r in rows)


def test_tables_survive_a_clean_restart_and_a_crash(start_worker, kafka, tmp_path):
    home = tmp_path / "restart"
    worker = start_worker("it-restart", home=home)
    first = events("r1-", 300)
    publish(kafka, worker.topic("usage"), first)
    wait_until(lambda: worker.processed() >= 300, what="first batch processed")
    worker.stop()  # clean stop: offsets committed, state only in the changelog

    worker = start_worker("it-restart", home=home)  # memory store: rebuilt from changelog
    assert table_totals(worker) == pytest.approx(totals(first))
    # a client retry after the restart: the restored dedup rows know these event_ids
    publish(kafka, worker.topic("usage"), first[:50])
    wait_until(lambda: worker.get("/stats")["duplicates"] >= 50, what="retries found duplicate",
               details=lambda: worker.get("/stats"))
    assert worker.get("/stats")["accepted"] == 0
    assert table_totals(worker) == pytest.approx(totals(first))

    second = events("r2-", 3000)
    publish(kafka, worker.topic("usage"), second)
    wait_until(lambda: worker.get("/stats")["accepted"] >= 200, what="part of the burst")
    worker.kill()  # crash in the middle of the burst: uncommitted offsets are re-delivered

    worker = start_worker("it-restart", home=home)
    expected = totals(first + second)
    wait_until(lambda: table_totals(worker)[0] >= expected[0], timeout=90,
               what="all events counted after the crash",
               details=lambda: (table_totals(worker), worker.get("/stats")))
    assert table_totals(worker) == pytest.approx(expected)
    assert store_totals(worker, expected[0]) == pytest.approx(expected)
    stats = worker.get("/stats")  # re-reads of skipped messages are counted for operators
    assert {"rewinds", "rereads"} <= stats.keys()
    assert {"rewinds", "rereads"} <= stats["decisions"].keys()


def test_nothing_is_lost_while_clickhouse_is_unavailable(start_worker, kafka, tmp_path):
    """ClickHouse away: ingest goes on (the tables count every event; budgets stay exact) while
    the sink holds the accepted records and retries; once back, ClickHouse holds each once."""
    home = tmp_path / "outage"
    dsn = f"chdb://{home / 'clickhouse'}"
    (home / "clickhouse").mkdir(parents=True)
    batch = events("o-", 120)
    with clickhouse_held(dsn):
        worker = start_worker("it-outage", home=home, clickhouse_dsn=dsn)
        assert worker.get("/health")["clickhouse"] == "unavailable"
        publish(kafka, worker.topic("usage"), batch)
        wait_until(lambda: table_totals(worker)[0] >= 120, what="counted while ClickHouse is away",
                   details=lambda: worker.get("/stats"))
        assert table_totals(worker) == pytest.approx(totals(batch))
        wait_until(lambda: worker.get("/stats")["sink"]["failures"] >= 3, what="sink retries")
        sink = worker.get("/stats")["sink"]
        assert (sink["rows"], sink["records"]) == (0, 0) and sink["waiting"] >= 1, sink
        assert worker.get("/stats")["acknowledged"] >= 1  # ingest did not wait for ClickHouse
    assert store_totals(worker, 120) == pytest.approx(totals(batch))
    assert worker.get("/health")["clickhouse"] == "up"
    wait_until(lambda: worker.get("/stats")["sink"]["waiting"] == 0, what="sink caught up",
               details=lambda: worker.get("/stats")["sink"])
    assert table_totals(worker) == pytest.approx(totals(batch))


def test_a_crash_mid_burst_loses_no_reservation(start_worker, kafka, tmp_path):
    """Requests keep coming while the worker is killed and restarted: the restarted worker
    holds exactly the reservations of the requests it admitted, never more than the limit."""
    import asyncio
    import threading
    import time

    import orjson
    from aiokafka import AIOKafkaProducer

    from prsm_events.accounting.budgets import Budget
    from prsm_events.kafka.config_topics import budget_record
    from prsm_events.kafka.config_topics import publish as publish_config
    from tests.integration.conftest import read_to_end

    home = tmp_path / "dec-crash"
    worker = start_worker("it-dec-crash", home=home, reservation_ttl_s=900.0)
    limit, each, n = 0.5, 0.0075, 400  # gpt-4o, 1000 in + 500 out: 66 requests fit
    run(publish_config(worker.settings, "budgets", [budget_record(
        Budget(scope="tenant:rec", period="day", limit_usd=limit))]))
    wait_until(lambda: worker.get("/health")["budgets"] == 1, what="budget read")

    async def send(first: int, last: int) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all", linger_ms=1)
        await producer.start()
        try:
            for i in range(first, last):
                req = {"request_id": f"rec-{i}", "ts": datetime.now(UTC).isoformat(),
                       "tenant": "rec", "service": "chat", "model": "gpt-4o",
                       "est_input_tokens": 1000, "est_output_tokens": 500,
                       "min_quality": 0.99}  # nothing cheaper qualifies: allow or not
                await producer.send(worker.topic("requests"), orjson.dumps(req), key=b"rec")
                await asyncio.sleep(0.005)
        finally:
            await producer.stop()

    sender = threading.Thread(target=lambda: run(send(0, n)))
    sender.start()  # ~2 s of requests; the worker is killed and restarted meanwhile
    wait_until(lambda: worker.get("/stats")["decisions"]["requests"] >= 30, what="decisions")
    worker.kill()
    killed_at = time.monotonic()
    worker = start_worker("it-dec-crash", home=home, reservation_ttl_s=900.0)
    sender.join(timeout=60)
    assert time.monotonic() - killed_at < 120

    def decided() -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = {}
        # everything on the topic (re-decided requests appear twice, so do not stop at n)
        for record in run(read_to_end(kafka, worker.topic("decisions"))):
            doc = orjson.loads(record.value)
            out.setdefault(doc["request_id"], []).append(doc)
        return out

    def requested() -> set[str]:
        return {orjson.loads(r.value)["request_id"]
                for r in run(read_to_end(kafka, worker.topic("requests")))}

    assert len(requested()) == n  # the whole burst reached the broker

    def missing() -> list[str]:
        return sorted(requested() - set(decided()))

    wait_until(lambda: not missing(), timeout=90, what="every request decided",
               details=lambda: (missing()[:10], len(missing()),
                                worker.get("/stats")["decisions"]))
    answers = decided()
    admitted_ids = {rid for rid, ds in answers.items()
                    if any(d["action"] in ("allow", "route") for d in ds)}
    # every request admitted by any decision (before or after the crash) holds a reservation
    assert len(admitted_ids) == 66
    figures = next(b for b in worker.budgets() if b["key"] == "tenant:rec|day")
    assert figures["reserved_usd"] == pytest.approx(66 * each, abs=1e-9)
    assert figures["reserved_usd"] <= limit
    final = {rid: ds[-1]["action"] for rid, ds in answers.items()}
    assert sum(a == "allow" for a in final.values()) == 66


def test_a_reservation_answered_for_but_missing_from_the_changelog_is_held_by_the_next_owner(
        start_worker, kafka, tmp_path):
    """Decisions go to the producer with their reservations' changelog records, not after
    the broker has those (streams.answered_log): a decision that landed while its changelog
    record did not is read back by the worker that owns the partition next, which holds its
    reservation and answers the request, asked again, already_decided."""
    import orjson
    from aiokafka import AIOKafkaProducer

    from prsm_events.accounting.budgets import Budget
    from prsm_events.kafka.config_topics import budget_record
    from prsm_events.kafka.config_topics import publish as publish_config
    from streams.answered_log import RESERVATION_HEADER, read_reservation
    from tests.integration.conftest import read_to_end

    home = tmp_path / "answered"
    worker = start_worker("it-answered", home=home, reservation_ttl_s=900.0)
    limit, each = 0.05, 0.0075  # gpt-4o, 1000 in + 500 out: 6 requests fit
    run(publish_config(worker.settings, "budgets", [budget_record(
        Budget(scope="tenant:ans", period="day", limit_usd=limit))]))
    wait_until(lambda: worker.get("/health")["budgets"] == 1, what="budget read")

    def request(rid: str) -> bytes:
        return orjson.dumps({"request_id": rid, "ts": datetime.now(UTC).isoformat(),
                             "tenant": "ans", "service": "chat", "model": "gpt-4o",
                             "est_input_tokens": 1000, "est_output_tokens": 500,
                             "min_quality": 0.99})

    async def send(rids: list[str]) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
        await producer.start()
        try:
            for rid in rids:
                await producer.send_and_wait(worker.topic("requests"), request(rid),
                                             key=b"ans")
        finally:
            await producer.stop()

    def decisions() -> list:
        return run(read_to_end(kafka, worker.topic("decisions")))

    run(send(["ans-1", "ans-2"]))
    wait_until(lambda: len(decisions()) == 2, what="two decisions")
    first = decisions()
    # each admitted decision carries its reservation: key and ledger row
    carried = [read_reservation(r.headers) for r in first]
    assert [c[0] for c in carried if c] == ["ans|ans-1", "ans|ans-2"]
    assert all(c[1][0] == int(each * 1e9) and c[1][1] == ["tenant:ans|day"]
               for c in carried if c)
    worker.stop()

    # what an owner that crashed after the broker took its decision for ans-3, but not the
    # reservation's changelog record, leaves: ans-2's decision again, for ans-3
    record = first[1]
    key, row = read_reservation(record.headers)
    assert key == "ans|ans-2"
    doc = orjson.loads(record.value)
    doc["request_id"] = "ans-3"

    async def answer_lost() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(
                worker.topic("decisions"), orjson.dumps(doc), key=b"ans",
                partition=record.partition,
                headers=[(RESERVATION_HEADER, orjson.dumps(["ans|ans-3", row]))])
        finally:
            await producer.stop()

    run(answer_lost())
    worker = start_worker("it-answered", home=home, reservation_ttl_s=900.0)
    wait_until(lambda: worker.get("/stats")["decisions"]["restored"] == 1, timeout=60,
               what="the lost reservation held", details=lambda: worker.get("/stats"))
    figures = next(b for b in worker.budgets() if b["key"] == "tenant:ans|day")
    assert figures["reserved_usd"] == pytest.approx(3 * each, abs=1e-9)

    # ans-3 asked again is answered as it was; the budget has room for 3 more, not 4
    run(send(["ans-3", *(f"ans-{i}" for i in range(4, 9))]))
    wait_until(lambda: len(decisions()) == 3 + 6, what="the later decisions")
    later = {orjson.loads(r.value)["request_id"]: orjson.loads(r.value)
             for r in decisions()[3:]}
    assert later["ans-3"]["reason"]["code"] == "already_decided"
    assert later["ans-3"]["action"] == "allow"
    admitted = [rid for rid, d in later.items() if d["action"] == "allow" and rid != "ans-3"]
    assert len(admitted) == 3
    figures = next(b for b in worker.budgets() if b["key"] == "tenant:ans|day")
    assert figures["reserved_usd"] == pytest.approx(6 * each, abs=1e-9)
    assert figures["reserved_usd"] <= limit


def test_a_backlog_beyond_the_buffer_pauses_the_fetcher_and_is_counted_exactly(
        start_worker, kafka, tmp_path):
    """12,000 single-event messages wait when the worker starts: more than its buffer holds
    (4,096), so partitions are paused at Faust's fetcher and resumed; every event counts once.
    The agent takes 100 messages a batch, and each batch waits for a broker round trip, in
    which Faust's fetch loop hands over what a fetch brought (up to 1 MiB a partition,
    thousands of these messages): the buffer fills whatever the machine's speed (with 2,000 a
    batch, a pipelined agent on a fast machine kept it below the mark)."""
    home = tmp_path / "backlog"
    worker = start_worker("it-backlog", home=home, batch_max=100)
    worker.stop()  # the topics exist; the backlog builds while no worker runs
    backlog = events("bl-", 12_000, tenants=4)
    publish(kafka, worker.topic("usage"), backlog, batch_events=1)
    worker = start_worker("it-backlog", home=home, batch_max=100)
    expected = totals(backlog)
    wait_until(lambda: table_totals(worker, tenants=4)[0] >= expected[0], timeout=120,
               what="the backlog counted", details=lambda: worker.get("/stats"))
    assert table_totals(worker, tenants=4) == pytest.approx(expected)
    assert store_totals(worker, expected[0]) == pytest.approx(expected)
    wait_until(lambda: worker.get("/stats")["fetch_pauses"] >= 1, timeout=10,
               what="back-pressure on record", details=lambda: worker.get("/stats"))
    assert worker.get("/stats")["duplicates"] == 0


def test_records_the_broker_refuses_are_read_again_and_counted_once(start_worker, kafka,
                                                                     tmp_path):
    """For a while the accepted topic refuses every record (its max.message.bytes lowered
    below one row): each batch's records fail at the broker, the agent reads its partitions
    again from what was delivered, and nothing is acknowledged. Once the topic takes them,
    every event counts once, in the tables and in ClickHouse."""
    home = tmp_path / "refused"
    worker = start_worker("it-refused", home=home)
    accepted = worker.topic("accepted")
    limit = run(set_topic_config(kafka, accepted, "max.message.bytes", "100"))
    batch = events("rf-", 200)
    publish(kafka, worker.topic("usage"), batch, batch_events=1)
    wait_until(lambda: worker.get("/stats")["undelivered"] >= 3, timeout=60,
               what="refused batches read again", details=lambda: worker.get("/stats"))
    stats = worker.get("/stats")
    assert stats["acknowledged"] == 0 and stats["sink"]["rows"] == 0, stats
    run(set_topic_config(kafka, accepted, "max.message.bytes", limit))
    wait_until(lambda: worker.get("/stats")["acknowledged"] >= len(batch), timeout=60,
               what="every message acknowledged", details=lambda: worker.get("/stats"))
    expected = totals(batch)
    assert table_totals(worker) == pytest.approx(expected)
    assert store_totals(worker, len(batch)) == pytest.approx(expected)
    stats = worker.get("/stats")
    assert (stats["duplicates"], stats["dead_lettered"], stats["acknowledged"]) == (
        0, 0, len(batch)), stats
