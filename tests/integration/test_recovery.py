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


@pytest.mark.parametrize("count", [1, 2])
def test_the_broker_killed_mid_stream_loses_nothing_it_acknowledged(count, tmp_path):
    """The broker is SIGKILLed while usage events (envelopes and single events) and requests
    stream in and ``count`` workers have batches in flight (accepted rows, changelog records,
    escrow, offsets), and started again 3 s later; the clients send on meanwhile (retrying
    what the broker had not acknowledged). Every event the broker holds, and so every one it
    acknowledged, counts once in the tables and in ClickHouse; every request it holds is
    decided once at least, and what is admitted holds its reservations: each tenant's budget
    exactly full, the global budget's figures on every worker their sum."""
    import asyncio
    import os
    import signal
    import threading
    import time

    import msgspec
    import orjson
    from aiokafka import AIOKafkaProducer

    from prsm_events.accounting.budgets import Budget
    from prsm_events.kafka.config_topics import budget_record
    from prsm_events.kafka.config_topics import publish as publish_config
    from prsm_events.kafka.dev_broker import LocalBroker
    from tests.integration.conftest import (
        WorkerHandle,
        free_port,
        read_to_end,
        settled,
        union_counted,
        unique,
    )

    broker = LocalBroker(tmp_path / "broker", free_port(pairs=True))
    bootstrap = broker.start()
    name = unique(f"it-broker-kill{count}")
    common = {"app_id": name, "topic_prefix": f"{name}.", "partitions": 6,
              "reservation_ttl_s": 900.0}
    workers = [WorkerHandle(f"bk{i}", bootstrap, tmp_path / f"w{i}",
                            sink="worker" if i == 0 else "off", **common)
               for i in range(count)]
    tenants = 12
    usage = events("bk-", 16_000, tenants=tenants)
    by_id = {e.event_id: e for e in usage}
    limit, each, n = 0.05, 0.0075, 400  # gpt-4o, 1000 in + 500 out: 6 requests a tenant
    acked: list[str] = []
    failed: list[str] = []

    async def stream() -> None:
        """Usage in chunks of 250 events, every other one as envelopes of 50, 20 ms apart,
        and seven requests after each; the broker's answers are gathered at the end."""
        patient = {"request_timeout_ms": 120_000}  # through a slow restart of the broker
        topic = workers[0].topic("usage")
        async with (UsagePublisher(bootstrap, topic=topic, batch_events=1, **patient) as singles,
                    UsagePublisher(bootstrap, topic=topic, batch_events=50,
                                   **patient) as envelopes):
            requests = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                        enable_idempotence=True, **patient)
            await requests.start()
            sent: list[tuple[list[str], asyncio.Future]] = []
            try:
                for c, first in enumerate(range(0, len(usage), 250)):
                    chunk = usage[first:first + 250]
                    pub = envelopes if c % 2 else singles
                    groups: dict[bytes, list[str]] = {}
                    for e in chunk:
                        groups.setdefault(e.tenant.encode(), []).append(e.event_id)
                    for key, value, count_in in pub.envelopes(chunk):
                        ids = groups[key][:count_in]
                        del groups[key][:count_in]
                        sent.append((ids, await pub.producer.send(topic, value, key=key)))
                    for i in range(c * 7, min(n, c * 7 + 7)):
                        tenant = f"r{i % tenants}"  # tenants of their own
                        req = {"request_id": f"bk-{i}", "ts": datetime.now(UTC).isoformat(),
                               "tenant": tenant, "service": "chat", "model": "gpt-4o",
                               "est_input_tokens": 1000, "est_output_tokens": 500,
                               "min_quality": 0.99}  # nothing cheaper qualifies
                        await requests.send(workers[0].topic("requests"), orjson.dumps(req),
                                            key=tenant.encode())
                    await asyncio.sleep(0.02)
                for ids, future in sent:
                    try:
                        await future
                        acked.extend(ids)
                    except Exception:  # not acknowledged: it may or may not have landed
                        failed.extend(ids)
            finally:
                await requests.stop()

    def accepted() -> list[int]:
        return [w.get("/stats")["accepted"] for w in workers]

    try:
        for w in workers:
            w.start()
        budgets = [Budget(scope=f"tenant:r{i}", period="day", limit_usd=limit)
                   for i in range(tenants)] + [Budget(scope="global", period="day",
                                                      limit_usd=1e6)]  # escrowed, ample
        run(publish_config(workers[0].settings, "budgets", [budget_record(b) for b in budgets]))
        wait_until(lambda: all(w.get("/health")["budgets"] == len(budgets) for w in workers),
                   what="every worker read the budget")
        settled(workers)
        sender = threading.Thread(target=lambda: run(stream()))
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
        assert not sender.is_alive()

        landed: set[str] = set()
        for record in run(read_to_end(bootstrap, workers[0].topic("usage"))):
            doc = msgspec.json.decode(record.value)
            landed.update(d["event_id"] for d in (doc if isinstance(doc, list) else [doc]))
        assert set(acked) <= landed  # the broker kept what it acknowledged
        assert len(landed) >= 2_000, (len(acked), len(failed))
        expected = totals([by_id[i] for i in sorted(landed)])
        counted = union_counted(workers, expected[0], "every event the broker holds counted")
        assert counted == pytest.approx(expected)  # not one event more, nor a cent
        assert store_totals(workers[0], expected[0]) == pytest.approx(expected)
        assert sum(w.get("/stats")["dead_lettered"] for w in workers) == 0

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
        for i in range(tenants):  # each tenant's first six (or all it has) and no more
            asked = sum(t == f"r{i}" for t in requested.values())
            assert sum(requested[rid] == f"r{i}" for rid in admitted) == min(6, asked)

        def reserved() -> tuple[dict[str, float], list[float]]:
            """Each tenant's reservations (from its owner), and every worker's of global."""
            answers = [w.budgets() for w in workers]
            mine = {b["key"]: b["reserved_usd"] for a in answers for b in a
                    if b["key"] != "global|day"}
            return mine, [b["reserved_usd"] for a in answers for b in a
                          if b["key"] == "global|day"]

        def held() -> bool:
            tenant_figures, global_figures = reserved()
            return tenant_figures == {
                f"tenant:r{i}|day": pytest.approx(each * sum(
                    requested[rid] == f"r{i}" for rid in admitted), abs=1e-9)
                for i in range(tenants)} and all(
                abs(g - len(admitted) * each) < 1e-9 for g in global_figures)

        wait_until(held, timeout=30, what="the admitted requests' reservations held",
                   details=lambda: (reserved(), len(admitted)))
    finally:
        for w in workers:
            w.process.terminate()
        for w in workers:
            w.stop()
        broker.stop()
