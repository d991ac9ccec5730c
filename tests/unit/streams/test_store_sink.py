"""StoreSink.write on the worker's loop: it lets the loop run while it turns records into
rows, so that a flush of many records never holds the decisions up at once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from prsm_events.settings import Settings
from streams.store_sink import ROWS_BETWEEN_YIELDS, StoreSink


class Store:
    def __init__(self) -> None:
        self.inserts: list[tuple[str, bytes]] = []

    def insert_json(self, table: str, rows: bytes) -> None:
        self.inserts.append((table, rows))

    def ping(self) -> bool:
        return True


class Consumer:
    def __init__(self) -> None:
        self.commits: list[dict[Any, int]] = []

    async def commit(self, offsets: dict[Any, int]) -> None:
        self.commits.append(offsets)

    def assignment(self) -> set[Any]:
        return set()


def test_a_large_flush_lets_the_loop_run_between_its_rows(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    store = Store()
    sink = StoreSink(settings, store)  # type: ignore[arg-type]
    consumer = Consumer()
    sink._consumer = consumer  # type: ignore[assignment]
    topic = settings.topic("accepted")
    count = 640
    records = [SimpleNamespace(topic=topic, partition=0, offset=i, key=None,
                               value=b'{"event_id":"e%d"}\n' % i) for i in range(count)]

    async def go() -> int:
        ticks = 0
        done = False

        async def ticker() -> None:
            nonlocal ticks
            while not done:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.ensure_future(ticker())
        await asyncio.sleep(0)
        before = ticks
        await sink.write(records)  # type: ignore[arg-type]
        done = True
        await task
        return ticks - before

    assert ROWS_BETWEEN_YIELDS <= 64
    assert asyncio.run(go()) >= count // 64  # the loop had a turn at least every 64 rows
    assert [table for table, _ in store.inserts] == ["usage"]
    assert store.inserts[0][1].count(b"\n") == count
    assert sink.stats.rows == count and consumer.commits


def test_a_batch_commits_past_its_last_record_of_each_partition(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    sink = StoreSink(settings, Store())  # type: ignore[arg-type]
    consumer = Consumer()
    sink._consumer = consumer  # type: ignore[assignment]
    usage, snapshots = settings.topic("accepted"), settings.topic("snapshots")
    places = [(usage, 0, 5), (usage, 0, 6), (usage, 1, 3), (snapshots, 0, 9), (usage, 0, 7),
              (usage, 1, 2)]  # runs of a partition, one split in two and out of order
    records = [SimpleNamespace(topic=topic, partition=partition, offset=offset, key=None,
                               value=b'{"a":1}\n') for topic, partition, offset in places]
    asyncio.run(sink.write(records))  # type: ignore[arg-type]
    [offsets] = consumer.commits
    assert {(tp.topic, tp.partition): end for tp, end in offsets.items()} == {
        (usage, 0): 8, (usage, 1): 4, (snapshots, 0): 10}
    assert sink._committed == offsets and sink.stats.records == 6
