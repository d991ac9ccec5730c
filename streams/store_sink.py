"""The ClickHouse sink role: consume the accepted, decisions, alerts and snapshots topics and
insert their records into ``usage``, ``decisions``, ``alerts`` and ``budget_snapshots``.

The usage agent writes accepted, priced events to ``prsm.accepted`` (``store.accepted_rows``)
and goes on; the decision agent and the budget signals send decisions and alerts to their
topics. This role alone writes them to ClickHouse, so that a slow or absent ClickHouse never
holds up ingest, budgets or decisions, and one store is whole whatever the number of workers.
It runs inside a worker (PRSM_SINK=worker, the default) or on its own (``prsm sink``), in the
consumer group ``<PRSM_APP_ID>-sink``: with a ClickHouse server several sinks may share the
partitions; the embedded store has exactly one (the process that opens it).

Commit order per batch: insert each table's rows (``store.sink.ClickHouseSink``; retried with
backoff while ClickHouse is away, nothing committed meanwhile), dead-letter the records that
are not rows of their table or that ClickHouse refuses (waiting for the broker), then commit
the batch's offsets. A crash anywhere re-delivers the batch, and inserting it again counts
nothing twice (ReplacingMergeTree: usage on (tenant, event_id), decisions on their place in
the topic, alerts on alert_id, snapshots on (budget_key, ts)).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import groupby
from operator import attrgetter
from typing import Any

import mode
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, ConsumerStoppedError, KafkaError

from prsm_events.errors import StoreUnavailable
from prsm_events.events.dead_letter import DeadLetter
from prsm_events.operations.backoff import Backoff
from prsm_events.settings import Settings
from prsm_events.store.alert_rows import alert_row
from prsm_events.store.clickhouse import ClickHouseStore
from prsm_events.store.decision_rows import decision_row
from prsm_events.store.ndjson_records import row_count
from prsm_events.store.sink import ClickHouseSink, Refused
from streams.dead_letter_writer import DeadLetterWriter, aiokafka_sender

__all__ = ["FLUSH_BYTES", "SinkStats", "StoreSink"]

log = logging.getLogger("prsm.sink")

FLUSH_BYTES = 16 * 1024 * 1024
"""The sink inserts once this many bytes of records have gathered (or PRSM_SINK_FLUSH_S)."""
ROWS_BETWEEN_YIELDS = 64
"""The sink turns records into rows on the worker's event loop (a decision record into its
row: 10-20 us), and lets the loop run between every this many: half a second of decisions at
1,000 requests/s held it 5-10 ms at once, a request's p99 at that rate."""
SINK_FETCH_MIN_BYTES = 64 * 1024
SINK_FETCH_MAX_WAIT_MS = 250
"""The broker answers the sink's fetch once this much is waiting, or after this long: a few
fetches a second under load instead of one per record batch written (each fetch costs the
worker's loop, which the decisions share; docs/decisions/2026-12-04-benchmark-history.md)."""


@dataclass
class SinkStats:
    running: bool = False
    records: int = 0  # accepted-topic records written (a record holds a batch's rows)
    rows: int = 0  # usage rows inserted (a record re-delivered after a crash counts again)
    decisions: int = 0  # decision rows inserted (likewise)
    alerts: int = 0  # alert rows inserted (likewise)
    snapshots: int = 0  # budget snapshot rows inserted (likewise)
    inserts: int = 0
    failures: int = 0  # inserts that failed because ClickHouse did not answer
    blocked_since: float | None = None  # wall time of the first failure of the current outage
    refused: int = 0  # records ClickHouse refused while it answered: dead-lettered
    waiting: dict[Any, int] = field(default_factory=dict)  # records behind, per partition

    def as_dict(self) -> dict[str, Any]:
        return {"running": self.running, "records": self.records, "rows": self.rows,
                "decisions": self.decisions, "alerts": self.alerts,
                "snapshots": self.snapshots,
                "inserts": self.inserts, "failures": self.failures,
                "blocked_since": self.blocked_since, "refused": self.refused,
                "waiting": sum(self.waiting.values())}


class StoreSink(mode.Service):
    def __init__(self, settings: Settings, store: ClickHouseStore, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.tables = {settings.topic("accepted"): "usage",
                       settings.topic("decisions"): "decisions",
                       settings.topic("alerts"): "alerts",
                       settings.topic("snapshots"): "budget_snapshots"}
        """Topic -> the table its records go to."""
        self.store = store
        self.sinks = {table: ClickHouseSink(store, table) for table in self.tables.values()}
        self.stats = SinkStats()
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._dead_letters: DeadLetterWriter | None = None
        self._committed: dict[TopicPartition, int] = {}  # next offset to write

    async def on_start(self) -> None:
        args = self.settings.kafka.client_args()
        self._consumer = AIOKafkaConsumer(
            *self.tables, **args, group_id=f"{self.settings.app_id}-sink",
            client_id=f"prsm-sink-{socket.gethostname()}-{os.getpid()}",  # who, in the group
            enable_auto_commit=False, auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_partition_fetch_bytes=max(1 << 20, self.settings.topic_max_message_bytes),
            fetch_min_bytes=SINK_FETCH_MIN_BYTES, fetch_max_wait_ms=SINK_FETCH_MAX_WAIT_MS,
            session_timeout_ms=10_000, heartbeat_interval_ms=2_000)
        self._producer = AIOKafkaProducer(**args, acks="all",
                                          max_request_size=self.settings.topic_max_message_bytes)
        await self._producer.start()
        self._dead_letters = DeadLetterWriter(aiokafka_sender(self._producer),
                                              self.settings.topic("dlq"),
                                              self.settings.max_message_bytes)
        await self._consumer.start()
        self.stats.running = True

    async def on_stop(self) -> None:
        self.stats.running = False
        for client in (self._consumer, self._producer):
            if client is not None:
                await client.stop()

    @mode.Service.task
    async def _run(self) -> None:
        while not self.should_stop:
            try:
                records = await self._gather()
                if records:
                    await self.write(records)
            except ConsumerStoppedError:
                return  # stopping: a batch not committed is written again by the next sink
            except KafkaError as exc:
                log.warning("cannot read or commit %s: %r; trying again in 1s",
                            ", ".join(self.tables), exc)
                await asyncio.sleep(1.0)

    async def _gather(self) -> list[ConsumerRecord[bytes, bytes]]:
        """Records for one insert: what has come within PRSM_SINK_FLUSH_S, up to FLUSH_BYTES."""
        assert self._consumer is not None
        records: list[ConsumerRecord[bytes, bytes]] = []
        size = 0
        deadline = None
        while size < FLUSH_BYTES:
            wait_s = 1.0 if deadline is None else deadline - time.monotonic()
            if wait_s <= 0:
                break
            got = await self._consumer.getmany(timeout_ms=int(wait_s * 1000))
            for part in got.values():
                records.extend(part)
                size += sum(len(r.value or b"") for r in part)
            if not records:
                return []
            if deadline is None:
                deadline = time.monotonic() + self.settings.sink_flush_s
        return records

    def _note_waiting(self, spans: dict[TopicPartition, tuple[int, int]]) -> None:
        """Records behind per partition: the broker's end less the next one to write (the
        first of ``spans``, (first, next) offsets per partition, where none was written)."""
        consumer = self._consumer
        assert consumer is not None
        for tp, (first, _) in spans.items():
            self._committed.setdefault(tp, first)
        waiting = {}
        for tp in consumer.assignment():
            end = consumer.highwater(tp)
            if end is not None and tp in self._committed:
                waiting[tp] = max(0, end - self._committed[tp])
        self.stats.waiting = waiting

    async def write(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        """Note what is waiting, insert each table's rows (until ClickHouse takes them),
        dead-letter the records that are not rows of their table or that ClickHouse refuses,
        commit."""
        spans = _spans(records)
        self._note_waiting(spans)
        rows: dict[str, list[tuple[int, bytes]]] = {}  # table -> (index in records, rows)
        refused: list[tuple[int, str]] = []
        for i, r in enumerate(records):
            if i and i % ROWS_BETWEEN_YIELDS == 0:
                await asyncio.sleep(0)  # the decisions share this loop: no long stall
            table = self.tables[r.topic]
            try:
                value = (r.value or b"" if table in ("usage", "budget_snapshots") else
                         decision_row(r.value, r.partition, r.offset) if table == "decisions"
                         else alert_row(r.value))
            except ValueError as exc:
                refused.append((i, str(exc)))
                continue
            rows.setdefault(table, []).append((i, value))
        for table, items in rows.items():
            got = await self._insert(table, [value for _, value in items])
            refused += [(items[x.index][0], x.reason) for x in got]
            bad = {x.index for x in got}
            written = [value for j, (_, value) in enumerate(items) if j not in bad]
            if table == "usage":
                self.stats.rows += sum(row_count(v) for v in written)
            elif table == "budget_snapshots":
                self.stats.snapshots += sum(row_count(v) for v in written)
            elif table == "decisions":
                self.stats.decisions += len(written)
            else:
                self.stats.alerts += len(written)
        self.stats.inserts += 1
        if refused:
            await self._dead_letter([(records[i], reason) for i, reason in refused])
        self.stats.records += len(records)
        await self._commit(spans)

    async def _insert(self, table: str, values: list[bytes]) -> list[Refused]:
        """Insert ``values`` into ``table``, retrying while ClickHouse does not answer;
        return the values it refused."""
        backoff = Backoff(cap=self.settings.sink_retry_max_s)
        while True:
            try:
                refused = await asyncio.to_thread(self.sinks[table].write, values)
                break
            except StoreUnavailable as exc:
                self.stats.failures += 1
                if self.stats.blocked_since is None:
                    self.stats.blocked_since = time.time()
                delay = next(backoff)
                log.warning("ClickHouse unavailable, retrying %d %s records in %.1fs: %s",
                            len(values), table, delay, exc)
                await asyncio.sleep(delay)
        self.stats.blocked_since = None
        return refused

    async def _dead_letter(self, refused: list[tuple[ConsumerRecord[bytes, bytes], str]]
                           ) -> None:
        assert self._dead_letters is not None
        letters = []
        for record, reason in refused:
            letters.append(DeadLetter("sink_refused", f"sink_refused: {reason}", record.topic,
                                      record.partition, record.offset, record.key, record.value))
            log.error("ClickHouse refused %s[%d]@%d: %s", record.topic, record.partition,
                      record.offset, reason)
        await self._dead_letters.write(letters, datetime.now(UTC))
        self.stats.refused += len(refused)

    async def _commit(self, spans: dict[TopicPartition, tuple[int, int]]) -> None:
        assert self._consumer is not None
        offsets = {tp: end for tp, (_, end) in spans.items()}
        try:
            await self._consumer.commit(offsets)
        except CommitFailedError as exc:
            # the group rebalanced meanwhile: the partitions' new owner inserts them again
            log.info("sink commit refused after a rebalance (%s); the batch is re-delivered",
                     exc)
            return
        for tp, offset in offsets.items():
            self._committed[tp] = offset
        self._note_waiting({})


def _spans(records: list[ConsumerRecord[bytes, bytes]]) -> dict[TopicPartition, tuple[int, int]]:
    """The records' first and next offsets per partition (a fetch gives each partition's
    records together: one name and one min and max per run of them)."""
    spans: dict[TopicPartition, tuple[int, int]] = {}
    for (topic, partition), run in groupby(records, _PLACE):
        offsets = [r.offset for r in run]
        tp = TopicPartition(topic, partition)
        low, high = min(offsets), max(offsets) + 1
        known = spans.get(tp)
        spans[tp] = (low, high) if known is None else (min(known[0], low), max(known[1], high))
    return spans


_PLACE = attrgetter("topic", "partition")
