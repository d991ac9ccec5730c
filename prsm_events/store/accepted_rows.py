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
>>> row = msgspec.json.decode(record)
>>> row["event_id"], row["cost_usd"], row["src_partition"], row["src_offset"], row["ts"]
('e1', 0.0025, 2, 41, '2026-01-01T00:00:00Z')
>>> record.endswith(b"\\n")
True
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import msgspec

from prsm_events.accounting.pricing import PricedUsage
from prsm_events.store.ndjson_records import pack_lines

__all__ = ["ACCEPTED_FORMAT", "AcceptedRow", "accepted_records"]

ACCEPTED_FORMAT = "JSONEachRow"
"""ClickHouse's name for the records' format."""


class AcceptedRow(msgspec.Struct):
    """One ``usage`` table row: its columns in insert order (``store.clickhouse`` reads them
    from here as ``USAGE_COLUMNS``)."""

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
        e = priced.event
        return cls(
            e.event_id, e.ts, e.tenant, e.service, e.team or "", e.api_key_id or "",
            e.request_id or "", priced.provider, e.model or "", e.kind.value, e.status.value,
            e.input_tokens, e.cached_input_tokens, e.cache_write_input_tokens,
            e.output_tokens, e.reasoning_tokens, round(priced.cost_usd, 9), priced.priced_by,
            e.latency_ms, e.tags, partition, offset, now)


_ENCODER = msgspec.json.Encoder()


def accepted_records(
    accepted: Sequence[tuple[PricedUsage, int, int]], now: datetime,
    max_bytes: int = 1_000_000,
) -> list[bytes]:
    """Records (values) for ``accepted`` (priced event, source partition, source offset), all of
    one source partition: NDJSON of ``usage`` rows, each record under ``max_bytes`` unless one
    row alone is larger (then it is a record of its own)."""
    encode, of = _ENCODER.encode, AcceptedRow.of
    return pack_lines((encode(of(priced, partition, offset, now)) + b"\n"
                       for priced, partition, offset in accepted), max_bytes)
