"""The usage ingest agent: batch -> UsageIngestor -> accepted topic, DLQ, spend tables.

Messages are taken in batches (size, bytes or time bound, ``streams.batching``); a message
may itself be a batch envelope of many events (``events.envelope``). Per batch (nothing
acknowledged is lost, nothing counted twice):
1. in one synchronous step, read the tables and the ledger, and write the batch's changes to
   them (spend rows, the ``seen`` rows, settlements): no rebalance can come between; its
   events are taken a part at a time (``UsageIngestor.parts``), each part's folded into the
   ledger and encoded as accepted rows before the next is read;
2. hand to the producer, all at once: the accepted, priced events to the accepted topic (the
   sink, ``streams.store_sink``, inserts them into ClickHouse: a slow or absent ClickHouse
   never holds ingest up), the dead letters (``DeadLetterWriter``) and the changed rows'
   changelog records; the next batch is taken meanwhile (a pipelined agent,
   ``OrderedDelivery.agent``: up to four batches wait for the broker);
3. once the broker has them all, mark the batch's messages done (``PartitionProgress``: the
   offsets the worker commits); Faust flushes the producer before it commits offsets.
A write that fails makes every partition be read again from what was delivered.
A crash before step 3 re-delivers the batch, whichever of its records reached the broker:
ClickHouse collapses event_ids written twice, an event_id seen at the same place is accepted
again (not a duplicate), and each spend and ledger row skips messages at or below its stored
offset. A batch is read against the tables only while no rebalance or table recovery runs,
and only for the current consumer generation; otherwise it is dropped unacknowledged and
Faust delivers it again.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import faust
from faust.types import TableT

from prsm_events.accounting.dedup import SeenIndex
from prsm_events.accounting.ingest import IngestOutcome, RawMessage, UsageIngestor
from prsm_events.accounting.spend import Accepted, SpendRow, is_expired
from prsm_events.settings import Settings
from prsm_events.store.accepted_rows import accepted_records, joined_records
from streams.dead_letter_writer import DeadLetterWriter
from streams.faust_compat import (
    record_batches,
    steady,
    store_rows,
    table_store,
)
from streams.ordered_delivery import Batch, OrderedDelivery
from streams.partition_progress import RecordProbe
from streams.raw_topics import raw_topic

if TYPE_CHECKING:
    from streams.config_feeds import ConfigFeeds
    from streams.control import SpendControl

log = logging.getLogger("prsm.ingest")

__all__ = ["BYTES_PER_EVENT", "IngestStats", "IngestTables", "register_ingest"]

BYTES_PER_EVENT = 400
"""A batch holds at most PRSM_BATCH_MAX messages and about PRSM_BATCH_MAX times this many
bytes of them, so that batch envelopes (many events in a message) keep a batch, and the time
it holds the event loop, bounded. About the size of one event as any client writes it; the
SDK writes one in about 200 bytes, so a batch of its envelopes holds up to about twice
PRSM_BATCH_MAX events (docs/decisions/2026-12-06-what-bounds-envelope-ingest.md)."""


@dataclass
class IngestStats:
    accepted: int = 0
    dead_lettered: int = 0
    duplicates: int = 0
    batches: int = 0
    messages: int = 0  # messages processed (a batch envelope is one message of many events)
    acknowledged: int = 0  # messages acknowledged to Faust (committed at the next commit)
    rewinds: int = 0  # batches refused for a gap in offsets (PartitionProgress)
    rereads: int = 0  # times skipped messages were re-read (PartitionProgress)
    undelivered: int = 0  # batches whose records the broker did not take: read again
    fetch_pauses: int = 0  # partitions paused at the fetcher: messages waiting (MessageBuffer)
    dead_letter_codes: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def count_acknowledged(self, events: int) -> None:
        self.acknowledged += events

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "dead_lettered": self.dead_lettered,
            "duplicates": self.duplicates,
            "batches": self.batches,
            "messages": self.messages,
            "acknowledged": self.acknowledged,
            "rewinds": self.rewinds,
            "rereads": self.rereads,
            "undelivered": self.undelivered,
            "fetch_pauses": self.fetch_pauses,
            "dead_letter_codes": dict(self.dead_letter_codes),
        }


@dataclass
class IngestTables:
    spend: TableT[str, Any]
    seen: TableT[str, Any]


def accepted_values(accepted: Sequence[Accepted], now: datetime, max_bytes: int
                    ) -> dict[int, list[bytes]]:
    """The accepted topic's record values for the accepted events of messages, by the
    partition the events came from (the sink, ``streams.store_sink``, inserts them into
    ClickHouse)."""
    by_partition: dict[int, list[Accepted]] = defaultdict(list)
    for message in accepted:
        by_partition[message[0][0]].append(message)
    return {partition: accepted_records(items, now, max_bytes)
            for partition, items in by_partition.items()}


async def send_accepted(app: faust.App, topic: str, values: dict[int, list[bytes]],
                        max_bytes: int) -> list[asyncio.Future[Any]]:
    """Hand the record values of a batch's parts (``accepted_values``) to the producer,
    joined per partition into as few records as ``max_bytes`` allows, each to its source
    partition, in record batches; returns the futures of their delivery."""
    batches = record_batches(app)
    for partition, parts in values.items():
        for value in joined_records(parts, max_bytes):
            batches.add(topic, partition, None, value)
    return await batches.send()


def register_ingest(
    app: faust.App,
    settings: Settings,
    ingestor: UsageIngestor,
    stats: IngestStats,
    control: SpendControl,
    feeds: ConfigFeeds,
    dead_letters: DeadLetterWriter,
    probe: RecordProbe,
) -> IngestTables:
    usage_topic = raw_topic(app, settings.topic("usage"))
    accepted_topic = settings.topic("accepted")
    record_bytes = settings.max_message_bytes - 4096
    tables = IngestTables(
        spend=app.Table("spend", default=None, partitions=settings.partitions,
                        extra_topic_configs=settings.changelog_configs),
        seen=app.Table("seen", default=None, partitions=settings.partitions,
                       extra_topic_configs=settings.changelog_configs),
    )

    # Reads go to the stores directly (no per-key sensor hooks): this is the hot path.
    spend_rows, seen_rows = table_store(tables.spend), table_store(tables.seen)

    def spend_lookup(key: str) -> SpendRow | None:
        raw = spend_rows.get(key)
        return None if raw is None else SpendRow.from_list(raw)

    # one seen row per (partition, batch) of new event_ids (prsm_events.accounting.dedup); the
    # index is read again from the rows whenever a rebalance may have restored them
    seen = SeenIndex(max_row_bytes=settings.max_message_bytes - 4096)
    seen_generation: list[int | None] = [None]

    delivery = OrderedDelivery(app, usage_topic, feeds, control, probe, ready_poll_s=0.05,
                               buffer_high=max(4096, settings.batch_max * 2))

    async def hand(batch: Batch) -> asyncio.Future[None] | None:
        if not batch.still_current():
            return None  # rebalanced since it was accepted: tables may be restored; re-deliver
        events = batch.events
        now = datetime.now(UTC)
        messages = [RawMessage(e.message.topic, e.message.partition, e.message.offset,
                               e.message.key, e.message.value) for e in events]
        if seen_generation[0] != batch.generation:
            seen.rebuild(list(seen_rows.items()))
            # read again next batch while a recovery may still be restoring rows
            seen_generation[0] = batch.generation if steady(app) else None
        # read and change every table and the ledger in one synchronous step (no rebalance
        # can come between) ...
        control.sync_generation()
        out = IngestOutcome()  # the batch's, but for its accepted events
        accepted = 0
        values: dict[int, list[bytes]] = defaultdict(list)
        for part in ingestor.parts(messages, seen.get, spend_lookup, now):
            # each part's events to the ledger and to rows while they are in the CPU's
            # caches, then let them go: the next part's take their memory
            control.apply_messages(part.accepted)  # settle reservations, count spend
            for partition, records in accepted_values(part.accepted, now, record_bytes).items():
                values[partition].extend(records)
            accepted += part.accepted_count
            part.accepted.clear()
            out.absorb(part)
        changes = [
            (tables.seen, seen.accept(out.seen)),
            (tables.spend, {k: (v.partition, v.to_list()) for k, v in out.spend.items()}),
        ]
        store_rows(batch.stream, events, changes)
        for table, rows in changes:
            control.writer.mark(table, {key: partition for key, (partition, _) in rows.items()})
        # ... then hand it all to the producer; the next batch is taken while the broker
        # takes it (if a write fails, the partitions are read again from what was delivered,
        # and rows whose records were not delivered are sent again)
        sends = await send_accepted(app, accepted_topic, values, record_bytes)
        sends.append(asyncio.ensure_future(dead_letters.write(out.dead_letters, now)))
        sends.extend(await control.persist(wait=False))

        async def delivered() -> None:
            await asyncio.gather(*sends)
            for dead in out.dead_letters:
                stats.dead_letter_codes[dead.code] += 1
            stats.accepted += accepted
            stats.dead_lettered += len(out.dead_letters)
            stats.duplicates += out.duplicates
            stats.messages += len(events)
            stats.batches += 1
        return asyncio.ensure_future(delivered())

    delivery.agent("ingest-usage", hand, size=settings.batch_max,
                   within_s=settings.batch_within_s, on_acked=stats.count_acknowledged,
                   max_bytes=settings.batch_max * BYTES_PER_EVENT)

    @app.timer(interval=2.0)  # type: ignore[untyped-decorator]
    async def guard_usage() -> None:
        """Re-read usage partitions whose fetched messages never reached the agent."""
        await delivery.guard()
        stats.rewinds, stats.rereads = delivery.progress.rewinds, delivery.progress.rereads
        stats.undelivered = delivery.progress.epoch
        stats.fetch_pauses = delivery.buffer.pauses

    @app.timer(interval=300.0)  # type: ignore[untyped-decorator]
    async def expire_rows() -> None:
        """Drop spend rows of windows past retention and event ids past the dedup horizon."""
        now = datetime.now(UTC)
        horizon = now.timestamp() - settings.dedup_horizon_s
        # each value carries its row's source partition, where the tombstone must go
        doomed_spend = [(k, int(v[4])) for k, v in list(spend_rows.items())
                        if is_expired(k, now)]
        doomed_seen = seen.expire(list(seen_rows.items()), horizon)
        for table, doomed in ((tables.spend, doomed_spend), (tables.seen, doomed_seen)):
            for key, partition in doomed:
                table_store(table).pop(key, None)
                table.send_changelog(partition, key, None, value_serializer="raw")
            if doomed:
                log.info("expired %d rows of table %s", len(doomed), table.name)

    return tables
