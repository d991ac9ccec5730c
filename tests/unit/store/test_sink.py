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


def test_records_of_names_and_arrays_share_one_line_of_names_per_insert():
    """Accepted records begin with a line of column names: the records of one such line go
    in one insert under it (each record's own line dropped); records of objects (written
    before) in another; a record whose names differ in one of its own."""
    store = FakeStore()
    records = [b'["a","b"]\n[1,2]\n[3,4]\n', b'{"a":5}\n', b'["a","b"]\n[6,7]',
               b'["b"]\n[8]\n', b""]
    assert ClickHouseSink(store).write(records) == []
    assert store.inserts == [b'{"a":5}\n', b'["a","b"]\n[1,2]\n[3,4]\n[6,7]\n',
                             b'["b"]\n[8]\n']


def test_a_refused_record_of_arrays_is_found_among_its_insert():
    store = FakeStore()
    records = [b'["a"]\n[1]\n', b'["a"]\n["bad"]\n', b'{"a":2}\n', b'["a"]\n[3]\n']
    assert ClickHouseSink(store).write(records) == [Refused(1, "Cannot parse input")]
    assert store.inserts == [b'{"a":2}\n', b'["a"]\n[1]\n', b'["a"]\n[3]\n']


def test_real_clickhouse_takes_both_forms_and_refuses_foreign_names(tmp_path):
    """Records of either form land in one batch; a line of names that is not the table's
    columns (here one built to close the INSERT's column list) is refused before ClickHouse
    sees it, and the rest is written."""
    out = run_py(f"""
        from prsm_events.store.clickhouse import ClickHouseStore
        from prsm_events.store.sink import ClickHouseSink
        store = ClickHouseStore("chdb://{tmp_path}/ch")
        names = b'["event_id","ts","tenant","service","cost_usd","src_partition","src_offset"]'
        old = (b'{{"event_id":"e1","ts":"2026-12-03T00:00:00Z","tenant":"a","service":"s",'
               b'"cost_usd":0.5,"src_partition":0,"src_offset":1}}\\n')
        new = names + b'\\n["e2","2026-12-03T00:00:00Z","a","s",0.25,0,2]\\n'
        newer = names + b'\\n["e3","2026-12-03T00:00:00Z","a","s",0.125,0,3]'
        hostile = (b'["event_id) SELECT 1 --","ts"]\\n["e4","2026-12-03T00:00:00Z"]\\n')
        short = b'["event_id"]\\n["e5","x"]\\n'
        refused = ClickHouseSink(store).write([old, new, hostile, newer, short])
        print([(r.index, "columns of the table" in r.reason) for r in refused])
        print(store.query("SELECT groupArray(event_id), sum(cost_usd) FROM "
                          "(SELECT * FROM {{db}}.usage FINAL ORDER BY event_id)"))
    """)
    refused, rows = out.splitlines()
    assert refused == "[(2, True), (4, False)]"  # foreign names; a row longer than its names
    assert rows == "[(['e1', 'e2', 'e3'], Decimal('0.875000000'))]"
