"""EventBatcher: size- and time-bound batches, acks only after a batch was processed."""

from __future__ import annotations

import asyncio

from streams.batching import EventBatcher, LiveBatchers


class Recorder:
    """Stands in for the Faust stream: EventBatcher only calls ack() on it."""

    def __init__(self) -> None:
        self.acked: list[int] = []

    async def ack(self, event: int) -> bool:
        self.acked.append(event)
        return True


async def test_full_batches_flush_at_once_and_acks_follow_processing():
    stream = Recorder()
    batches: list[list[int]] = []

    async def process(_stream, events):
        assert not set(events) & set(stream.acked)  # nothing acked before it is processed
        batches.append(list(events))
        return True

    async with EventBatcher(stream, process, size=3, within=60) as batcher:
        for event in range(7):
            await batcher.add(event)
        assert batches == [[0, 1, 2], [3, 4, 5]]
        await batcher.flush()
    assert batches[-1] == [6]
    assert stream.acked == list(range(7))


async def test_big_messages_flush_a_batch_before_it_has_size_messages():
    """Batch envelopes: a batch stops at about ``max_bytes`` of values."""
    from types import SimpleNamespace

    stream = Recorder()
    batches: list[list[int]] = []

    async def process(_stream, events):
        batches.append([e.n for e in events])
        return True

    def message(n: int, size: int) -> SimpleNamespace:
        return SimpleNamespace(n=n, message=SimpleNamespace(value=b"x" * size))

    async with EventBatcher(stream, process, size=100, within=60, max_bytes=1000) as batcher:
        for n, size in enumerate([400, 400, 300, 50, 990, 10]):
            await batcher.add(message(n, size))
        assert batches == [[0, 1, 2], [3, 4]]
        await batcher.flush()
    assert batches[-1] == [5]


async def test_partial_batch_flushes_within_the_time_bound():
    stream = Recorder()
    batches: list[list[int]] = []

    async def process(_stream, events):
        batches.append(list(events))
        return True

    async with EventBatcher(stream, process, size=100, within=0.05) as batcher:
        await batcher.add(1)
        await batcher.add(2)
        await asyncio.sleep(0.3)
    assert batches == [[1, 2]]


async def test_dropped_batch_is_not_acknowledged():
    stream = Recorder()

    async def process(_stream, events):
        return False

    async with EventBatcher(stream, process, size=2, within=60) as batcher:
        await batcher.add(1)
        await batcher.add(2)
    assert stream.acked == []


async def test_live_batchers_are_idle_only_when_nothing_is_gathered_or_queued():
    async def process(_stream, events):
        return True

    live = LiveBatchers()
    batcher = EventBatcher(Recorder(), process, size=10, within=60)
    channel = asyncio.Queue()
    assert live.idle()
    try:
        with live.attach(batcher, channel):
            await batcher.add(1)
            assert not live.idle()  # gathered, not processed
            await batcher.flush()
            assert live.idle()
            channel.put_nowait(2)
            assert not live.idle()  # waiting in the channel
            raise RuntimeError("the agent crashed")
    except RuntimeError:
        pass
    assert live.live == [] and live.idle()  # a crashed instance leaves with its batcher
