"""OffsetOrder: a batch that jumps past an offset is refused and the partition re-read."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from faust.types import TP

from streams.offset_order import OffsetOrder

A, B = TP("prsm.usage", 0), TP("prsm.usage", 1)


class FakeConsumer:
    def __init__(self, committed: dict[TP, int]) -> None:
        self._committed_offset = committed
        self.seeks: list[tuple[TP, int]] = []

    async def seek(self, tp: TP, offset: int) -> None:
        self.seeks.append((tp, offset))


def app(committed: dict[TP, int]) -> Any:
    return SimpleNamespace(consumer=FakeConsumer(committed), consumer_generation_id=1)


def ev(tp: TP, offset: int) -> Any:
    return SimpleNamespace(message=SimpleNamespace(tp=tp, offset=offset))


async def test_in_order_batches_pass_and_a_jump_is_sent_back_to_the_missing_offset():
    a = app({A: 10})
    order = OffsetOrder(a)
    first = [ev(A, 10), ev(A, 11), ev(B, 3)]  # B never committed: its first batch sets it
    assert order.gaps(first) == {}
    order.advance(first)
    assert order.gaps([ev(A, 12), ev(B, 4)]) == {}
    assert order.gaps([ev(A, 15)]) == {A: 12}  # 12..14 never reached the agent
    await order.rewind({A: 12})
    await order.rewind({A: 12})  # messages fetched before the seek: no second seek
    assert a.consumer.seeks == [(A, 12)]


async def test_re_deliveries_below_the_next_offset_are_fine_and_gaps_inside_a_batch_count():
    order = OffsetOrder(app({A: 5}))
    assert order.gaps([ev(A, 3), ev(A, 4), ev(A, 5), ev(A, 6)]) == {}
    assert order.gaps([ev(A, 5), ev(A, 7)]) == {A: 6}


async def test_a_new_consumer_generation_starts_from_the_committed_offsets_again():
    a = app({A: 10})
    order = OffsetOrder(a)
    batch = [ev(A, 10), ev(A, 11)]
    assert order.gaps(batch) == {}
    order.advance(batch)
    a.consumer_generation_id = 2
    a.consumer._committed_offset[A] = 11
    assert order.gaps([ev(A, 11)]) == {}
    assert order.gaps([ev(A, 13)]) == {A: 11}
