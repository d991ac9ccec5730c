"""Accepted-topic records: usage rows (a line of column names, then a JSON array per row), cut
by size, that ClickHouse takes as they are."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from decimal import Decimal

import orjson
import pytest

from prsm_events.accounting.catalog import Catalog
from prsm_events.accounting.pricing import price_usage
from prsm_events.errors import CatalogError
from prsm_events.events.usage import UsageEvent
from prsm_events.settings import Settings
from prsm_events.store.accepted_rows import AcceptedRow, accepted_records, read_rows
from prsm_events.store.clickhouse import USAGE_COLUMNS
from prsm_events.store.ndjson_records import row_count
from tests.unit.accounting.test_spend import by_message
from tests.unit.store.test_clickhouse import run_py

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
HOSTILE = {"note": '"quoted" \\ back {"json": [1]}\'; DROP TABLE usage',
           "emoji": "\u00e9\u2603\U0001f600"}


def priced(i: int, **fields: object):
    event = UsageEvent(event_id=f"e{i}", ts="2026-12-03T11:59:00.123Z", tenant="acme",
                       service="chat", model="gpt-4o", input_tokens=100 + i,
                       output_tokens=10, **fields)
    return price_usage(event, Catalog.shipped())


def records_of(items, now, max_bytes=1_000_000):
    """``accepted_records`` of (priced event, partition, offset) items, grouped by message
    as the ingest step gives them."""
    return accepted_records(by_message(items), now, max_bytes)


def test_every_row_lands_in_exactly_one_record_under_the_size_bound():
    accepted = [(priced(i), 1, 100 + i) for i in range(200)]
    records = records_of(accepted, NOW, max_bytes=5_000)
    assert len(records) > 1 and all(len(r) <= 5_000 for r in records)
    rows = [row for r in records for row in read_rows(r)]
    assert [r["event_id"] for r in rows] == [f"e{i}" for i in range(200)]
    assert [r["src_offset"] for r in rows] == list(range(100, 300))
    assert sum(row_count(r) for r in records) == 200
    assert set(rows[0]) == set(USAGE_COLUMNS)


def test_a_row_has_the_usage_columns_in_order_and_the_event_s_values():
    assert AcceptedRow.__struct_fields__ == USAGE_COLUMNS
    p = priced(3, tags=HOSTILE, team="t", api_key_id="k", latency_ms=1.5)
    [record] = records_of([(p, 2, 9)], NOW)
    names, values = record.splitlines()
    assert orjson.loads(names) == list(USAGE_COLUMNS)
    [row] = read_rows(record)
    assert list(row.values()) == orjson.loads(values)
    e = p.event
    assert row == {
        "event_id": "e3", "ts": "2026-12-03T11:59:00.123000Z", "tenant": "acme",
        "service": "chat", "team": "t", "api_key_id": "k", "request_id": "",
        "provider": "openai", "model": "gpt-4o", "kind": "llm", "status": "ok",
        "input_tokens": 103, "cached_input_tokens": 0, "cache_write_input_tokens": 0,
        "output_tokens": 10, "reasoning_tokens": 0, "cost_usd": round(p.cost_usd, 9),
        "priced_by": p.priced_by, "latency_ms": 1.5, "tags": HOSTILE, "src_partition": 2,
        "src_offset": 9, "ingested_at": "2026-12-03T12:00:00Z"}
    assert e.request_id is None and e.model == "gpt-4o"


def test_a_row_larger_than_the_bound_is_a_record_of_its_own():
    big = (priced(0, tags={"pad": "x" * 200}), 0, 1)
    records = records_of([(priced(1), 0, 0), big, (priced(2), 0, 2)], NOW, max_bytes=100)
    assert [row_count(r) for r in records] == [1, 1, 1]


def test_hostile_text_stays_on_its_line():
    records = records_of([(priced(0, tags=HOSTILE), 0, 0), (priced(1), 0, 1)], NOW)
    assert row_count(records[0]) == 2
    assert read_rows(records[0])[0]["tags"] == HOSTILE


def test_clickhouse_takes_the_records_as_they_are(tmp_path):
    """Inserted as they are, each column reads back as the event said (times to the ms)."""
    first = (priced(0, tags=HOSTILE, team="t", latency_ms=12.5), 3, 7)
    records = records_of([first, (priced(1), 3, 8)], NOW)
    [twice] = records_of([first, first], NOW)  # a row twice in one insert
    out = run_py(f"""
        from prsm_events.store.clickhouse import ClickHouseStore
        store = ClickHouseStore("chdb://{tmp_path}/ch")
        for record in {records!r}:
            store.insert_json("usage", record)
            store.insert_json("usage", record)  # written twice: counted once
        store.insert_json("usage", {twice!r})
        rows = store.query("SELECT event_id, toString(ts), tags, team, latency_ms, "
                           "src_partition, src_offset, toString(cost_usd), toString(ingested_at) "
                           "FROM {{db}}.usage FINAL ORDER BY event_id")
        print(rows)
    """)
    rows = ast.literal_eval(out)
    assert [r[0] for r in rows] == ["e0", "e1"]
    assert rows[0][1] == "2026-12-03 11:59:00.123"
    assert rows[0][2] == HOSTILE and rows[0][3] == "t" and rows[0][4] == 12.5
    assert rows[1][4] is None
    assert (rows[0][5], rows[0][6], rows[1][6]) == (3, 7, 8)
    assert Decimal(rows[0][7]) == Decimal(repr(round(priced(0).cost_usd, 9)))  # exact
    assert rows[0][8] == "2026-12-03 12:00:00.000"


def test_the_largest_row_a_valid_event_makes_fits_the_smallest_record_limit():
    """Every field of a usage event is bounded (ids 128 characters, 32 tags of a 128-character
    key and a 256-character value, each character up to 4 bytes), and so are the catalog's
    version and provider: the largest row fits the smallest PRSM_MAX_MESSAGE_BYTES, less the
    room the records keep. A row the topic refused would be written again forever."""
    smallest = Settings.model_fields["max_message_bytes"].metadata[0].ge - 4096
    catalog = Catalog.from_json(orjson.dumps({
        "version": "v" * 128, "prices_read_on": "2026-12-01",
        "models": [{"provider": "p" * 128, "model": "m" * 128, "input": 1.0, "output": 1.0,
                    "quality": 0.5}]}))
    ident = "i" * 128
    raw = orjson.dumps({
        "event_id": "e" * 128, "ts": "2026-12-03T12:59:00.123456+01:00", "tenant": ident,
        "service": ident, "team": ident, "api_key_id": ident, "request_id": ident,
        "model": "m" * 128, "input_tokens": 10**10, "cached_input_tokens": 10**10,
        "output_tokens": 10**10, "reasoning_tokens": 10**10, "latency_ms": 1.2345678901234567e300,
        "status": "error", "tags": {f"{k:0>128}": "\U0001f600" * 256 for k in range(32)}})
    event = UsageEvent.model_validate_json(raw)
    [record] = records_of([(price_usage(event, catalog), 2**31 - 1, 2**63 - 1)], NOW)
    assert 37_000 < len(record) <= smallest
    with pytest.raises(CatalogError, match="at most 128"):
        Catalog.from_json(orjson.dumps({
            "version": "v" * 129, "prices_read_on": "2026-12-01",
            "models": [{"provider": "p", "model": "m", "input": 1.0, "output": 1.0,
                        "quality": 0.5}]}))
