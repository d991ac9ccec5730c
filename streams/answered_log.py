"""The decisions topic as the reservations' log: a worker taking over a partition holds
every reservation its predecessor answered for, even one whose changelog record never
reached the broker.

A decision that stands on a reservation carries the reservation's ledger row in a record
header (``RESERVATION_HEADER``: ``[key, row]`` as JSON, ``key`` being ``tenant|request_id``),
and it is handed to the producer in the same step as the reservation's changelog record, not
after the broker has that record: one broker round trip per decision instead of two in a row
(docs/decisions/2026-12-05-decisions-carry-reservations.md). Either record may land without
the other. So:

- once a batch's decisions and its changelog records are all with the broker (and every
  batch before it is done), the worker records, per partition, the offset of the decisions
  topic below which every decision's reservation is in the changelog: the row
  ``answered_key(p)`` of the ledger table, written with the next flush;
- a worker that takes a partition over (its tables restored from the changelogs) reads the
  decisions of that partition from that offset to the end (``AnsweredLog.read``) and holds
  each reservation the restored ledger does not know and that has not expired
  (``BudgetLedger.restore_reservation``), before either agent processes a message of the
  partition. Without the row (a first start), it reads from one reservation TTL, and a
  minute, back.

A re-delivered request then finds its reservation and is answered ``already_decided``, as
before. The decisions topic is written by the worker only; a header that does not parse is
logged and skipped, and one claiming to outlive a reservation made now is refused, so a
stray record can hold nothing for longer than a TTL.

>>> name, value = reservation_header("acme|r1", [500, ["day"], 130.0, False, []])
>>> read_reservation([(name, value)])
('acme|r1', [500, ['day'], 130.0, False, []])
>>> read_reservation([("other", b"x")]) is None
True
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from prsm_events.kafka.connection import KafkaConnection

__all__ = ["RESERVATION_HEADER", "AnsweredLog", "answered_ends", "answered_key",
           "read_reservation", "reservation_header"]

log = logging.getLogger("prsm.answered")

RESERVATION_HEADER = "prsm-reservation"
"""The record header of a decision that carries its reservation's ledger row."""

NO_MARK_LOOKBACK_S = 60.0
"""Without a recorded offset, decisions are read from this long before one TTL ago (clocks of
two workers may differ this much)."""


def answered_key(partition: int) -> str:
    """The ledger table's row holding the decisions offset of ``partition`` below which every
    reservation is in the changelog."""
    return f"#answered#p{partition}"


def answered_ends(delivered: Sequence[asyncio.Future[Any]]) -> dict[int, int]:
    """Per partition, the offset after the last of the records whose (done) delivery futures
    are ``delivered``, one per record, the records of one record batch sharing one: aiokafka
    gives a batch's future the batch's first offset."""
    counts: dict[int, tuple[asyncio.Future[Any], int]] = {}
    for future in delivered:
        seen = counts.get(id(future))
        counts[id(future)] = (future, 1 if seen is None else seen[1] + 1)
    ends: dict[int, int] = {}
    for future, n in counts.values():
        sent = future.result()
        ends[sent.partition] = max(ends.get(sent.partition, 0), sent.offset + n)
    return ends


def reservation_header(key: str, row: list[Any]) -> tuple[str, bytes]:
    """The header a decision standing on reservation ``key`` (its ledger ``row``) carries."""
    return RESERVATION_HEADER, orjson.dumps([key, row])


def read_reservation(headers: Sequence[tuple[str, bytes]] | None
                     ) -> tuple[str, list[Any]] | None:
    """The (key, row) a decision's headers carry; None when there is none; raises
    ValueError when the header is there but is not a key and a row."""
    for name, value in headers or ():
        if name != RESERVATION_HEADER:
            continue
        doc = orjson.loads(value)
        if (not isinstance(doc, list) or len(doc) != 2 or not isinstance(doc[0], str)
                or "|" not in doc[0] or not isinstance(doc[1], list) or len(doc[1]) != 5):
            raise ValueError(f"not a reservation header: {value[:200]!r}")
        return doc[0], doc[1]
    return None


class AnsweredLog:
    """Reads back the reservations the decisions of some partitions carry."""

    def __init__(self, kafka: KafkaConnection, topic: str, timeout_s: float = 30.0) -> None:
        self.kafka = kafka
        self.topic = topic
        self.timeout_s = timeout_s

    async def read(self, starts: dict[int, int | None], since_ms: int
                   ) -> list[tuple[str, list[Any]]]:
        """Every (key, row) carried by the decisions of each partition of ``starts`` from its
        offset (None: the first at or after ``since_ms``) to the partition's end now, in
        offset order. Raises TimeoutError when the broker does not serve them within
        ``timeout_s``."""
        if not starts:
            return []
        consumer = AIOKafkaConsumer(**self.kafka.client_args(), group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest",
                                    isolation_level="read_uncommitted")
        await consumer.start()
        try:
            return await asyncio.wait_for(self._read(consumer, starts, since_ms),
                                          self.timeout_s)
        finally:
            await consumer.stop()

    async def _read(self, consumer: AIOKafkaConsumer, starts: dict[int, int | None],
                    since_ms: int) -> list[tuple[str, list[Any]]]:
        tps = {p: TopicPartition(self.topic, p) for p in starts}
        consumer.assign(list(tps.values()))
        ends = await consumer.end_offsets(list(tps.values()))
        unmarked = [tp for p, tp in tps.items() if starts[p] is None]
        found = await consumer.offsets_for_times({tp: since_ms for tp in unmarked}
                                                 ) if unmarked else {}
        for p, tp in tps.items():
            start = starts[p]
            if start is None:
                at = found.get(tp)
                start = ends[tp] if at is None else at.offset
            consumer.seek(tp, min(start, ends[tp]))
        rows: list[tuple[str, list[Any]]] = []
        waiting = {tp for tp in tps.values() if await consumer.position(tp) < ends[tp]}
        while waiting:
            fetched = await consumer.getmany(*waiting, timeout_ms=200)
            for tp, records in fetched.items():
                for record in records:
                    if record.offset >= ends[tp]:
                        break
                    try:
                        found_row = read_reservation(record.headers)
                    except ValueError as exc:
                        log.warning("%s[%d]@%d: %s", tp.topic, tp.partition, record.offset,
                                    exc)
                        continue
                    if found_row is not None:
                        rows.append(found_row)
            waiting = {tp for tp in waiting if await consumer.position(tp) < ends[tp]}
        return rows
