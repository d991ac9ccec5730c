"""RecordBatches: one batch per partition, records in the order added, one future per record;
keyed records where Kafka's default partitioner puts them; a record larger than a batch
alone, in its place."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from streams.faust_compat import record_batches
from streams.record_batches import RecordBatches
from tests.unit.streams.fake_producer import FakeProducer, app_with


def test_records_go_one_batch_per_partition_in_the_order_they_were_added() -> None:
    producer = FakeProducer(partitions=3)

    async def run() -> list[asyncio.Future[Any]]:
        batches = RecordBatches(producer)  # type: ignore[arg-type]
        batches.add("t", 1, b"a", b"1")
        batches.add_keyed("d", b"acme", b"2")
        batches.add("t", 0, None, b"3")
        batches.add_keyed("d", b"globex", b"4")
        batches.add("t", 1, b"b", None)  # a tombstone
        batches.add_keyed("d", b"acme", b"5")
        assert len(batches) == 6
        futures = await batches.send()
        assert len(batches) == 0
        return futures

    futures = asyncio.run(run())
    partitioner = DefaultPartitioner()
    acme, globex = (partitioner(k, [0, 1, 2], [0, 1, 2]) for k in (b"acme", b"globex"))
    assert sorted(producer.sent, key=lambda r: (r[0], r[3])) == sorted([
        ("t", b"a", b"1", 1), ("t", b"b", None, 1), ("t", None, b"3", 0),
        ("d", b"acme", b"2", acme), ("d", b"acme", b"5", acme), ("d", b"globex", b"4", globex),
    ], key=lambda r: (r[0], r[3]))
    # within a partition, the order they were added in
    assert [r[2] for r in producer.sent if r[:1] == ("t",) and r[3] == 1] == [b"1", None]
    assert [r[2] for r in producer.sent if r[1] == b"acme"] == [b"2", b"5"]
    # one future per record, in the order added; records of a batch share theirs
    assert len(futures) == 6
    assert futures[0] is futures[4] and futures[1] is futures[5]
    assert futures[0] is not futures[2]
    groups = 3 if acme == globex else 4
    assert producer.calls == [("batch", n) for _, n in producer.calls] and len(
        producer.calls) == groups


def test_a_full_batch_is_sent_and_the_next_one_started() -> None:
    producer = FakeProducer(capacity=6)  # three records of two bytes a batch

    async def run() -> tuple[list[asyncio.Future[Any]], list[bool]]:
        batches = RecordBatches(producer)  # type: ignore[arg-type]
        for i in range(7):
            batches.add("t", 2, None, b"v%d" % i)
        futures = await batches.send()
        return futures, [f.done() for f in futures]

    futures, done = asyncio.run(run())
    assert producer.calls == [("batch", 3), ("batch", 3), ("batch", 1)]
    assert [r[2] for r in producer.sent] == [b"v%d" % i for i in range(7)]
    assert len({id(f) for f in futures}) == 3 and all(done)


def test_a_record_larger_than_a_batch_goes_in_a_batch_of_its_own_in_its_place() -> None:
    producer = FakeProducer(capacity=6)

    async def run() -> None:
        batches = RecordBatches(producer)  # type: ignore[arg-type]
        for value in (b"a", b"b", b"large-record", b"c"):
            batches.add("t", 0, None, value)
        await batches.send()

    asyncio.run(run())
    assert [r[2] for r in producer.sent] == [b"a", b"b", b"large-record", b"c"]
    assert producer.calls == [("batch", 2), ("batch", 1), ("batch", 1)]


def test_the_real_builder_takes_a_record_larger_than_a_batch_when_it_is_the_first() -> None:
    """What the fake's batches copy: aiokafka's builder refuses a record only when it
    already holds some."""

    async def run() -> tuple[bool, bool]:
        producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", max_batch_size=1000)
        alone = producer.create_batch().append(key=None, value=b"x" * 5000, timestamp=None)
        batch = producer.create_batch()
        batch.append(key=None, value=b"x", timestamp=None)
        after = batch.append(key=None, value=b"x" * 5000, timestamp=None)
        await producer.stop()
        return alone is not None, after is None

    assert asyncio.run(run()) == (True, True)


def test_a_batch_that_fails_fails_its_records_only() -> None:
    producer = FakeProducer()
    producer.fail = {b"bad"}

    async def run() -> list[BaseException | None]:
        batches = RecordBatches(producer)  # type: ignore[arg-type]
        batches.add("t", 0, b"ok", b"1")
        batches.add("t", 1, b"bad", b"2")
        batches.add("t", 1, b"ok", b"3")
        futures = await batches.send()
        return [f.exception() for f in futures]

    ok, bad, same_batch = asyncio.run(run())
    assert ok is None
    assert isinstance(bad, RuntimeError) and same_batch is bad


def test_an_app_with_transactions_or_its_own_partitioner_is_refused() -> None:
    producer = FakeProducer()
    assert isinstance(record_batches(app_with(producer)), RecordBatches)
    with pytest.raises(RuntimeError, match="at_least_once"):
        record_batches(app_with(producer, processing_guarantee="exactly_once"))
    producer.partitioner = object()  # type: ignore[assignment]
    with pytest.raises(RuntimeError, match="default partitioner"):
        record_batches(app_with(producer))
