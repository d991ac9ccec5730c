"""The usage ingest agent: batch -> UsageIngestor -> ClickHouse, DLQ, spend tables.

Commit order per batch (nothing acknowledged is lost, nothing counted twice):
1. insert accepted rows into ClickHouse, retrying with backoff until it succeeds
   (the batch is not acknowledged meanwhile, so its offsets are not committed);
2. send dead letters and table changelog records (buffered by the producer);
3. acknowledge the batch; Faust flushes the producer before it commits offsets.
A crash between steps re-delivers the batch: ClickHouse collapses re-inserted event_ids,
and each spend row skips messages at or below its stored offset.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import faust
from faust.types import EventT, StreamT

from prsm_events.backoff import Backoff
from prsm_events.clickhouse_store import ClickHouseStore, usage_row
from prsm_events.errors import StoreUnavailable
from prsm_events.ingest import RawMessage, SeenEvent, UsageIngestor
from prsm_events.settings import Settings
from prsm_events.spend import SpendRow, is_expired

log = logging.getLogger("prsm.ingest")

__all__ = ["IngestStats", "IngestTables", "register_ingest"]


@dataclass
class IngestStats:
    accepted: int = 0
    dead_lettered: int = 0
    duplicates: int = 0
    batches: int = 0
    sink_failures: int = 0
    sink_blocked_since: float | None = None
    dead_letter_codes: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "dead_lettered": self.dead_lettered,
            "duplicates": self.duplicates,
            "batches": self.batches,
            "sink_failures": self.sink_failures,
            "sink_blocked_since": self.sink_blocked_since,
            "dead_letter_codes": dict(self.dead_letter_codes),
        }


@dataclass
class IngestTables:
    spend: faust.Table
    seen: faust.Table


async def write_until_stored(
    store: ClickHouseStore, rows: list[list[Any]], stats: IngestStats, retry_cap_s: float
) -> None:
    """Insert rows, retrying forever with backoff: back-pressure instead of loss."""
    backoff = Backoff(cap=retry_cap_s)
    while True:
        try:
            await asyncio.to_thread(store.write_usage, rows)
        except StoreUnavailable as exc:
            stats.sink_failures += 1
            if stats.sink_blocked_since is None:
                stats.sink_blocked_since = datetime.now(UTC).timestamp()
            delay = next(backoff)
            log.warning("ClickHouse unavailable, retrying %d rows in %.1fs: %s",
                        len(rows), delay, exc)
            await asyncio.sleep(delay)
        else:
            stats.sink_blocked_since = None
            return


def _write_rows(
    stream: StreamT, events: Sequence[EventT], table: faust.Table,
    rows: dict[str, tuple[int, list[Any]]],
) -> None:
    """Set table keys with each key's changelog going to its source partition."""
    by_partition: dict[int, EventT] = {e.message.partition: e for e in events}
    grouped: dict[int, list[tuple[str, list[Any]]]] = defaultdict(list)
    for key, (partition, value) in rows.items():
        grouped[partition].append((key, value))
    for partition, items in grouped.items():
        # Faust picks the changelog partition (and RocksDB shard) from the current event.
        stream._set_current_event(by_partition[partition])  # type: ignore[attr-defined]
        for key, value in items:
            table[key] = value


def register_ingest(
    app: faust.App,
    settings: Settings,
    store: ClickHouseStore,
    ingestor: UsageIngestor,
    stats: IngestStats,
) -> IngestTables:
    usage_topic = app.topic(
        settings.topic("usage"), key_type=bytes, value_type=bytes,
        key_serializer="raw", value_serializer="raw",
    )
    dlq_topic = app.topic(settings.topic("dlq"), key_serializer="raw", value_serializer="raw")
    tables = IngestTables(
        spend=app.Table("spend", default=None, partitions=settings.partitions),
        seen=app.Table("seen", default=None, partitions=settings.partitions),
    )

    def spend_lookup(key: str) -> SpendRow | None:
        raw = tables.spend.get(key)
        return None if raw is None else SpendRow.from_list(raw)

    def seen_lookup(event_id: str) -> SeenEvent | None:
        raw = tables.seen.get(event_id)
        return None if raw is None else SeenEvent.from_list(raw)

    @app.agent(usage_topic, name="ingest-usage")
    async def ingest_usage(stream: StreamT) -> None:
        async for events in stream.take_events(settings.batch_max, settings.batch_within_s):
            now = datetime.now(UTC)
            batch = [RawMessage(e.message.topic, e.message.partition, e.message.offset,
                                e.message.key, e.message.value) for e in events]
            out = ingestor.process(batch, seen_lookup, spend_lookup, now)
            if out.accepted:
                rows = [usage_row(p, part, off, now) for p, part, off in out.accepted]
                await write_until_stored(store, rows, stats, settings.sink_retry_max_s)
            for dead in out.dead_letters:
                await dlq_topic.send(key=dead.key, value=dead.to_json(now))
                stats.dead_letter_codes[dead.code] += 1
            _write_rows(stream, events, tables.seen,
                        {k: (v.partition, v.to_list()) for k, v in out.seen.items()})
            _write_rows(stream, events, tables.spend,
                        {k: (v.partition, v.to_list()) for k, v in out.spend.items()})
            stats.accepted += len(out.accepted)
            stats.dead_lettered += len(out.dead_letters)
            stats.duplicates += out.duplicates
            stats.batches += 1

    @app.timer(interval=300.0)
    async def expire_rows() -> None:
        """Drop spend rows of windows past retention and event ids past the dedup horizon."""
        now = datetime.now(UTC)
        horizon = now.timestamp() - settings.dedup_horizon_s
        for table, partition_of, expired in (
            (tables.spend, lambda v: int(v[4]), lambda k, v: is_expired(k, now)),
            (tables.seen, lambda v: int(v[0]), lambda k, v: float(v[2]) < horizon),
        ):
            doomed = [(k, partition_of(v)) for k, v in list(table.data.items()) if expired(k, v)]
            for key, partition in doomed:
                table.data.pop(key, None)
                table.send_changelog(partition, key, None, value_serializer="raw")
            if doomed:
                log.info("expired %d rows of table %s", len(doomed), table.name)

    return tables
