"""Accepted, priced usage events as records of the ``prsm.accepted`` topic, which the sink writes.

A record's value is ClickHouse's ``JSONCompactEachRowWithNames``: a first line of the
``usage`` table's column names, then one JSON array of their values per event, so the sink
inserts records as they come, without decoding them, and a record says which columns it
holds. (Arrays instead of objects halve a record: about 210 bytes an event instead of 500, on
the broker, and less for ClickHouse to parse.) Records written before 2026-12-05 hold one
JSON object per event (``JSONEachRow``); the sink takes both (``store.sink``). The worker
writes one record per (partition, batch), to the partition its events came from, cut to stay
under ``max_bytes`` (its rows encoded a part of the batch at a time, then joined:
:func:`joined_records`).

>>> from datetime import UTC
>>> from prsm_events.accounting.catalog import Catalog
>>> from prsm_events.accounting.pricing import price_usage
>>> from prsm_events.events.usage import UsageEvent
>>> e = UsageEvent(event_id="e1", ts="2026-01-01T00:00:00Z", tenant="acme", service="chat",
...                model="gpt-4o", input_tokens=1000)
>>> now = datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)
>>> [record] = accepted_records([((2, 41), [price_usage(e, Catalog.shipped())])], now)
>>> record.splitlines()[0][:30]
b'["event_id","ts","tenant","ser'
>>> [row] = read_rows(record)
>>> row["event_id"], row["cost_usd"], row["src_partition"], row["src_offset"], row["ts"]
('e1', 0.0025, 2, 41, '2026-01-01T00:00:00Z')
>>> record.endswith(b"\\n")
True
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec

from prsm_events.accounting.pricing import PricedUsage
from prsm_events.accounting.spend import Accepted
from prsm_events.store.ndjson_records import names_line

__all__ = ["ACCEPTED_FORMAT", "AcceptedRow", "accepted_records", "joined_records", "read_rows",
           "rows_record"]

ACCEPTED_FORMAT = "JSONCompactEachRowWithNames"
"""ClickHouse's name for the records' format."""


class AcceptedRow(msgspec.Struct, array_like=True, gc=False):
    """One ``usage`` table row: its columns in insert order (``store.clickhouse`` reads them
    from here as ``USAGE_COLUMNS``); encoded as a JSON array of them."""

    event_id: str
    ts: datetime
    tenant: str
    service: str
    team: str
    api_key_id: str
    request_id: str
    provider: str
    model: str
    kind: str
    status: str
    input_tokens: int
    cached_input_tokens: int
    cache_write_input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cost_usd: float
    """Rounded to nano-USD, the column's ``Decimal(38, 9)``."""
    priced_by: str
    latency_ms: float | None
    tags: dict[str, str]
    src_partition: int
    src_offset: int
    ingested_at: datetime

    @classmethod
    def of(cls, priced: PricedUsage, partition: int, offset: int, now: datetime
           ) -> AcceptedRow:
        """The row of an accepted event (its kind and status are ``StrEnum`` members: each
        is its value, and encodes as it)."""
        e = priced.event
        return cls(
            e.event_id, e.ts, e.tenant, e.service, e.team or "", e.api_key_id or "",
            e.request_id or "", priced.provider, e.model or "", e.kind, e.status,
            e.input_tokens, e.cached_input_tokens, e.cache_write_input_tokens,
            e.output_tokens, e.reasoning_tokens, round(priced.cost_usd, 9), priced.priced_by,
            e.latency_ms, e.tags, partition, offset, now)


_ENCODER = msgspec.json.Encoder()
_NAMES = _ENCODER.encode(list(AcceptedRow.__struct_fields__)) + b"\n"


def accepted_records(accepted: Sequence[Accepted], now: datetime, max_bytes: int = 1_000_000
                     ) -> list[bytes]:
    """Records (values) for the accepted events of messages ((source partition, offset), its
    events), all of one source partition, each under ``max_bytes`` unless one row alone is
    larger (then it is a record of its own). The rows are encoded together (one call), and
    where that is too large for a record, by halves."""
    of = AcceptedRow.of
    return _packed([of(priced, partition, offset, now)
                    for (partition, offset), events in accepted for priced in events],
                   max_bytes)


def joined_records(records: Sequence[bytes], max_bytes: int = 1_000_000) -> list[bytes]:
    """``records`` (of :func:`accepted_records`, in order) joined into as few as keep under
    ``max_bytes`` (a record already larger stays one): a batch's rows, encoded a part at a
    time, written as one record where they fit.

    >>> from datetime import UTC
    >>> from prsm_events.accounting.catalog import Catalog
    >>> from prsm_events.accounting.pricing import price_usage
    >>> from prsm_events.events.usage import UsageEvent
    >>> now = datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)
    >>> e = [price_usage(UsageEvent(event_id=f"e{i}", ts="2026-01-01T00:00:00Z", tenant="a",
    ...                             service="s", model="gpt-4o"), Catalog.shipped())
    ...      for i in range(3)]
    >>> parts = accepted_records([((0, 1), e[:2])], now) + accepted_records([((0, 2), e[2:])], now)
    >>> [record] = joined_records(parts)
    >>> [(r["event_id"], r["src_offset"]) for r in read_rows(record)]
    [('e0', 1), ('e1', 1), ('e2', 2)]
    >>> len(joined_records(parts, max_bytes=len(parts[0]) + 10))
    2
    """
    out: list[bytes] = []
    lines: list[bytes] = []
    size = len(_NAMES)
    for record in records:
        assert record.startswith(_NAMES), "a record of accepted_records"
        body = record[len(_NAMES):]
        if lines and size + len(body) > max_bytes:
            out.append(_NAMES + b"".join(lines))
            lines, size = [], len(_NAMES)
        lines.append(body)
        size += len(body)
    if lines:
        out.append(_NAMES + b"".join(lines))
    return out


def rows_record(rows: Sequence[AcceptedRow]) -> bytes:
    """One record of ``rows``: the column names, then a line of values per row."""
    return _NAMES + _ENCODER.encode_lines(rows)


def _packed(rows: list[AcceptedRow], max_bytes: int) -> list[bytes]:
    if not rows:
        return []
    record = rows_record(rows)
    if len(record) <= max_bytes or len(rows) == 1:
        return [record]
    half = len(rows) // 2
    return _packed(rows[:half], max_bytes) + _packed(rows[half:], max_bytes)


def read_rows(record: bytes) -> list[dict[str, Any]]:
    """The rows of an accepted record of either form, as column -> value (for tests and
    tools; the sink never decodes records)."""
    lines = [msgspec.json.decode(line) for line in record.splitlines() if line.strip()]
    if names_line(record) is None:
        return lines  # JSONEachRow: objects already
    names, *values = lines
    return [dict(zip(names, row, strict=True)) for row in values]
