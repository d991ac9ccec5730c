"""ClickHouseSink.write: one insert per good batch, a refused record alone, back-pressure."""

from __future__ import annotations

import pytest

from prsm_events.errors import StoreUnavailable
from prsm_events.store.sink import ClickHouseSink, Refused
from tests.unit.store.test_clickhouse import run_py


class FakeStore:
    def __init__(self) -> None:
        self.up = True
        self.inserts: list[bytes] = []
        self.down_after: int | None = None  # inserts before ClickHouse goes away

    def insert_json(self, table: str, rows: bytes) -> None:
        if self.down_after is not None and len(self.inserts) >= self.down_after:
            self.up = False
        if not self.up:
            raise StoreUnavailable("connection refused")
        if b"bad" in rows:
            raise StoreUnavailable("Cannot parse input")
        self.inserts.append(rows)

    def ping(self) -> bool:
        return self.up


def test_a_good_batch_is_one_insert():
    store = FakeStore()
    assert ClickHouseSink(store).write([b'{"a":1}\n', b'{"a":2}', b""]) == []
    assert store.inserts == [b'{"a":1}\n{"a":2}\n']


def test_refused_records_are_returned_and_the_rest_written():
    store = FakeStore()
    refused = ClickHouseSink(store).write([b'{"a":1}\n', b"bad", b'{"a":2}\n', b"bad too"])
    assert refused == [Refused(1, "Cannot parse input"), Refused(3, "Cannot parse input")]
    assert store.inserts == [b'{"a":1}\n', b'{"a":2}\n']


def test_clickhouse_away_raises_for_back_pressure():
    store = FakeStore()
    store.up = False
    with pytest.raises(StoreUnavailable):
        ClickHouseSink(store).write([b'{"a":1}\n'])
    assert store.inserts == []


def test_clickhouse_going_away_while_records_are_tried_alone_raises():
    """Nothing is refused for an outage: the whole batch is written again later."""
    store = FakeStore()
    store.down_after = 1
    with pytest.raises(StoreUnavailable):
        ClickHouseSink(store).write([b'{"a":1}\n', b"bad", b'{"a":2}\n'])


def test_real_clickhouse_refuses_only_the_bad_record(tmp_path):
    out = run_py(f"""
        from prsm_events.store.clickhouse import ClickHouseStore
        from prsm_events.store.sink import ClickHouseSink
        store = ClickHouseStore("chdb://{tmp_path}/ch")
        row = ('{{"event_id":"e%d","ts":"2026-12-03T00:00:00Z","tenant":"a","service":"s",'
               '"cost_usd":0.5,"src_partition":0,"src_offset":%d}}\\n')
        records = [(row % (1, 1)).encode(), b"not json at all", (row % (2, 2)).encode(),
                   b'{{"event_id":"e3","colour":"red"}}']
        refused = ClickHouseSink(store).write(records)
        print([r.index for r in refused])
        print(store.query("SELECT count(), sum(cost_usd) FROM {{db}}.usage FINAL"))
    """)
    indexes, totals = out.splitlines()
    assert indexes == "[1, 3]"  # not JSON; a field the table lacks
    assert totals == "[(2, Decimal('1.000000000'))]"
