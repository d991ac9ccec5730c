"""Accepted, priced usage events as records of the ``prsm.accepted`` topic, which the sink writes.

A record's value is NDJSON: one JSON object per event whose fields are the columns of the
ClickHouse ``usage`` table (ClickHouse's ``JSONEachRow`` format), so the sink inserts records as
they come, without decoding them. The worker writes one record per (partition, batch), to the
partition its events came from, cut to stay under ``max_bytes``.

>>> from datetime import UTC
>>> from prsm_events.accounting.catalog import Catalog
>>> from prsm_events.accounting.pricing import price_usage
>>> from prsm_events.events.usage import UsageEvent
>>> e = UsageEvent(event_id="e1", ts="2026-01-01T00:00:00Z", tenant="acme", service="chat",
...                model="gpt-4o", input_tokens=1000)
>>> now = datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)
>>> [record] = accepted_records([(price_usage(e, Catalog.shipped()), 2, 41)], now)
>>> row = orjson.loads(record)
>>> row["event_id"], row["cost_usd"], row["src_partition"], row["src_offset"], row["ts"]
('e1', 0.0025, 2, 41, '2026-01-01T00:00:00+00:00')
>>> record.endswith(b"\\n")
True
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import orjson

from prsm_events.accounting.pricing import PricedUsage
from prsm_events.store.clickhouse import USAGE_COLUMNS, usage_row

__all__ = ["ACCEPTED_FORMAT", "accepted_records", "row_count"]

ACCEPTED_FORMAT = "JSONEachRow"
"""ClickHouse's name for the records' format."""

_OPTIONS = orjson.OPT_APPEND_NEWLINE


def accepted_records(
    accepted: Sequence[tuple[PricedUsage, int, int]], now: datetime,
    max_bytes: int = 1_000_000,
) -> list[bytes]:
    """Records (values) for ``accepted`` (priced event, source partition, source offset), all of
    one source partition: NDJSON of ``usage`` rows, each record under ``max_bytes`` unless one
    row alone is larger (then it is a record of its own)."""
    records: list[bytes] = []
    lines: list[bytes] = []
    size = 0
    for priced, partition, offset in accepted:
        line = orjson.dumps(dict(zip(USAGE_COLUMNS, usage_row(priced, partition, offset, now),
                                     strict=True)), option=_OPTIONS)
        if lines and size + len(line) > max_bytes:
            records.append(b"".join(lines))
            lines, size = [], 0
        lines.append(line)
        size += len(line)
    if lines:
        records.append(b"".join(lines))
    return records


def row_count(record: bytes) -> int:
    """How many rows a record holds (its lines).

    >>> row_count(b'{"a":1}\\n{"a":2}\\n'), row_count(b'{"a":1}'), row_count(b"")
    (2, 1, 0)
    """
    if not record:
        return 0
    return record.count(b"\n") + (not record.endswith(b"\n"))
