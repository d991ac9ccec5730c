"""MessageBuffer: batches bound by size, bytes and time; back-pressure at the fetcher."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

from aiokafka import TopicPartition
from faust.types import TP

from streams.batching import MessageBuffer

TP0, TP1 = TP("prsm.usage", 0), TP("prsm.usage", 1)


class Fetcher:
    """Stands in for Faust's consumer: which partitions the buffer paused."""

    def __init__(self) -> None:
        self.paused: set[TP] = set()
        self.calls: list[tuple[str, TP]] = []

    def on_buffer_full(self, tp: TP) -> None:
        assert type(tp) is TP  # Faust's consumer asserts it (aiokafka's kind is refused)
        self.paused.add(tp)
        self.calls.append(("pause", tp))

    def on_buffer_drop(self, tp: TP) -> None:
        self.paused.discard(tp)
        self.calls.append(("resume", tp))


def buffer(high: int = 1000) -> tuple[MessageBuffer, Fetcher]:
    fetcher = Fetcher()
    app: Any = SimpleNamespace(consumer=fetcher, consumer_generation_id=1)
    return MessageBuffer(app, high=high), fetcher


def message(offset: int, tp: TP = TP0, size: int = 10) -> Any:
    """A fetched message: its ``tp`` is aiokafka's TopicPartition, as Faust's consumer sets."""
    return SimpleNamespace(tp=TopicPartition(tp.topic, tp.partition), topic=tp.topic,
                           partition=tp.partition, offset=offset, value=b"x" * size)


def offsets(batch: list[Any]) -> list[int]:
    return [d.message.offset for d in batch]


async def test_a_batch_is_taken_at_size_in_fetch_order_and_the_rest_waits():
    buf, _ = buffer()
    for offset in range(7):
        buf.receive(message(offset))
    assert offsets(await buf.next_batch(3, within_s=60)) == [0, 1, 2]
    assert offsets(await buf.next_batch(3, within_s=60)) == [3, 4, 5]
    assert len(buf) == 1 and not buf.idle()


async def test_big_messages_end_a_batch_at_about_max_bytes():
    """Batch envelopes: a batch stops once it holds max_bytes of values."""
    buf, _ = buffer()
    for offset in range(10):
        buf.receive(message(offset, size=400))
    assert offsets(await buf.next_batch(100, within_s=60, max_bytes=1000)) == [0, 1, 2]
    assert buf.bytes == 7 * 400


async def test_a_short_batch_is_taken_within_the_time_bound_of_its_first_message():
    buf, _ = buffer()
    buf.receive(message(0))
    started = time.monotonic()
    batch = await buf.next_batch(100, within_s=0.05)
    assert offsets(batch) == [0] and time.monotonic() - started >= 0.04


async def test_a_waiting_agent_wakes_when_its_batch_fills_and_at_once_takes_what_is_there():
    buf, _ = buffer()
    waiting = asyncio.ensure_future(buf.next_batch(3, within_s=60))
    await asyncio.sleep(0)
    buf.receive(message(0))
    buf.receive(message(1))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    buf.receive(message(2))
    assert offsets(await asyncio.wait_for(waiting, 1)) == [0, 1, 2]
    buf.receive(message(3))
    assert offsets(await buf.next_batch(100, within_s=60, at_once=True)) == [3]


async def test_a_failed_batch_put_back_is_the_next_one_taken():
    buf, _ = buffer()
    for offset in range(5):
        buf.receive(message(offset))
    first = await buf.next_batch(3, within_s=60)
    buf.put_back(first)
    assert buf.bytes == 50
    assert offsets(await buf.next_batch(10, within_s=0)) == [0, 1, 2, 3, 4]
    assert buf.idle()


async def test_a_full_buffer_pauses_the_sending_partitions_until_it_is_down_to_half():
    buf, fetcher = buffer(high=4)
    for offset in range(3):
        buf.receive(message(offset, TP0))
    assert not fetcher.paused
    buf.receive(message(0, TP1))
    buf.receive(message(3, TP0))
    assert fetcher.paused == {TP1, TP0}
    await buf.next_batch(2, within_s=60)  # 3 left: above half
    assert fetcher.paused == {TP1, TP0}
    await buf.next_batch(1, within_s=60)  # 2 left: half
    assert not fetcher.paused and not buf.paused
    assert fetcher.calls.count(("pause", TP0)) == 1  # once per partition while paused
    assert buf.pauses == 2


async def test_busy_is_not_idle():
    buf, _ = buffer()
    assert buf.idle() and len(buf) == 0
    buf.busy = True
    assert not buf.idle()


async def test_partitions_paused_before_a_rebalance_are_not_resumed_after_it():
    """Faust fetches every partition it was assigned again; one it lost must stay unasked."""
    buf, fetcher = buffer(high=2)
    buf.receive(message(0, TP0))
    buf.receive(message(1, TP0))
    assert fetcher.paused == {TP0}
    buf.app.consumer_generation_id = 2  # a rebalance
    await buf.next_batch(2, within_s=60)
    assert ("resume", TP0) not in fetcher.calls and not buf.paused


def record(offset: int, tp: TP = TP0, size: int = 10) -> Any:
    """An aiokafka ConsumerRecord's fields that the buffer reads."""
    return SimpleNamespace(topic=tp.topic, partition=tp.partition, offset=offset, key=b"k",
                           value=b"x" * size if size else None,
                           timestamp=1_700_000_000_000 + offset)  # ms, as aiokafka gives it


async def test_a_partitions_fetched_records_are_taken_in_order_as_messages_of_their_generation():
    buf, _ = buffer()
    aio = TopicPartition(TP1.topic, TP1.partition)  # how Faust's consumer keys the records
    buf.receive(message(0))
    buf.receive_records(aio, [record(5, TP1), record(6, TP1, size=0)], generation=3)
    waiting = asyncio.ensure_future(buf.next_batch(4, within_s=60))
    await asyncio.sleep(0)
    buf.receive_records(aio, [record(7, TP1)], generation=3)  # fills the batch: wakes it
    batch = await asyncio.wait_for(waiting, 1)
    assert offsets(batch) == [0, 5, 6, 7] and buf.bytes == 0
    m = batch[1].message
    assert (m.topic, m.partition, m.key, m.value, m.generation_id, m.timestamp) == (
        TP1.topic, TP1.partition, b"k", b"x" * 10, 3, 1_700_000_000.005)  # seconds, as Faust's
    assert type(m.tp) is TP and m.tp == TP1 and batch[2].message.value is None


async def test_fetched_records_that_fill_the_buffer_pause_their_partition():
    buf, fetcher = buffer(high=4)
    buf.receive_records(TP0, [record(o) for o in range(3)], generation=1)
    assert not fetcher.paused
    buf.receive_records(TopicPartition(TP1.topic, 1), [record(o, TP1) for o in range(2)], 1)
    assert fetcher.paused == {TP1} and buf.bytes == 50
    await buf.next_batch(3, within_s=60)
    assert not fetcher.paused


async def test_an_agent_waiting_on_an_empty_buffer_wakes_when_several_records_come_at_once():
    buf, _ = buffer()
    waiting = asyncio.ensure_future(buf.next_batch(100, within_s=60, at_once=True))
    await asyncio.sleep(0)
    buf.receive_records(TP0, [record(0), record(1)], generation=1)
    assert offsets(await asyncio.wait_for(waiting, 1)) == [0, 1]
