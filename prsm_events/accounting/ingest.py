"""The usage ingest step as one pure function of a batch: validate, price, de-duplicate, fold.

A message is one event, or a batch envelope of many (``events.envelope``): each event of a
batch is judged alone, and dead-lettered alone with its index.

The Faust agent reads a batch of raw messages, calls :meth:`UsageIngestor.process` with
lookups into its tables, then writes what the outcome says: rows to ClickHouse, dead letters
to the DLQ, changed rows to the tables.

>>> from datetime import UTC, datetime
>>> ingest = UsageIngestor(Catalog.shipped(), EventLimits())
>>> ok = (b'{"event_id": "a", "ts": "2026-01-01T00:00:00Z", "tenant": "t", "service": "s", '
...       b'"model": "gpt-4o-mini", "input_tokens": 1000000}')
>>> batch = [RawMessage("prsm.usage", 0, 1, b"t", ok), RawMessage("prsm.usage", 0, 2, b"t", ok),
...          RawMessage("prsm.usage", 0, 3, b"t", b"{oops")]
>>> out = ingest.process(batch, lambda k: None, lambda k: None, datetime(2026, 1, 1, tzinfo=UTC))
>>> len(out.accepted), out.duplicates, [d.code for d in out.dead_letters]
(1, 1, ['invalid_json'])
>>> round(out.spend["tenant:t|total|all"].cost_usd, 4)
0.15
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from typing import Any

import msgspec

from prsm_events.accounting.catalog import Catalog
from prsm_events.accounting.dedup import SeenEvent
from prsm_events.accounting.pricing import PricedUsage, price_usage
from prsm_events.accounting.spend import SpendRow, by_message, fold_spend
from prsm_events.errors import InvalidEvent
from prsm_events.events.dead_letter import DeadLetter
from prsm_events.events.envelope import Element, decode_envelope, decode_envelopes
from prsm_events.events.fast_path import Usage, usage_array, usage_records
from prsm_events.events.usage import UsageEvent
from prsm_events.events.validation import EventLimits

__all__ = ["IngestOutcome", "RawMessage", "UsageIngestor", "processing_error"]

log = logging.getLogger("prsm.ingest")


class RawMessage(msgspec.Struct, frozen=True):
    """A message as it came off the broker."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def processing_error(exc: Exception, msg: RawMessage, element: Element[Any] | None = None
                     ) -> DeadLetter:
    """The dead letter of a message (or one event of a batch) whose processing raised an
    unexpected error (a bug): code ``processing_error``, so that it is kept and its
    partition moves on."""
    index = None if element is None else element.index
    original = msg.value if element is None else element.original
    return DeadLetter("processing_error", f"processing_error: {type(exc).__name__}: {exc}",
                      msg.topic, msg.partition, msg.offset, msg.key, original, index)


@dataclass(slots=True)
class IngestOutcome:
    accepted: list[tuple[PricedUsage, int, int]] = field(default_factory=list)
    """Accepted events with their source (partition, offset), partition by partition, each
    in its order (the events of a batch message share its offset)."""
    dead_letters: list[DeadLetter] = field(default_factory=list)
    duplicates: int = 0
    seen: dict[str, SeenEvent] = field(default_factory=dict)
    """New event_id entries for the dedup table."""
    spend: dict[str, SpendRow] = field(default_factory=dict)
    """Changed spend rows."""

    def by_message(self) -> list[tuple[tuple[int, int], list[PricedUsage]]]:
        """The accepted events grouped by their message (partition, offset), in order."""
        return by_message(self.accepted)


class UsageIngestor:
    """Validates, prices and de-duplicates usage messages; folds them into spend rows."""

    def __init__(self, catalog: Catalog, limits: EventLimits) -> None:
        self.catalog = catalog
        self.limits = limits

    def process(
        self,
        batch: Sequence[RawMessage],
        seen_lookup: Callable[[str], SeenEvent | None],
        spend_lookup: Callable[[str], SpendRow | None],
        now: datetime,
    ) -> IngestOutcome:
        out = IngestOutcome()
        taken: set[tuple[int, int]] = set()
        # partition by partition, each in its order: consecutive messages of a partition
        # are folded into their spend rows at once (fetched batches alternate partitions)
        messages = []
        for msg in sorted(batch, key=attrgetter("partition")):
            if (msg.partition, msg.offset) not in taken:  # delivered twice: processed once
                taken.add((msg.partition, msg.offset))
                messages.append(msg)
        for msg, elements in zip(messages, self._decode(messages, now), strict=True):
            if isinstance(elements, Exception):
                out.dead_letters.append(processing_error(elements, msg))
                continue
            for element in elements:
                self._take(msg, element, seen_lookup, out)
        out.spend = fold_spend(spend_lookup, out.accepted)
        return out

    def _decode(self, messages: list[RawMessage], now: datetime
                ) -> list[list[Element[Usage]]] | list[list[Element[Usage]] | Exception]:
        """The events of every message, decoded together; should that raise (a bug), each
        message alone, so that only the one that raises is kept as a processing error."""
        try:
            return decode_envelopes([m.value for m in messages], UsageEvent, self.limits, now,
                                    usage_records, usage_array)
        except Exception:
            pass
        decoded: list[list[Element[Usage]] | Exception] = []
        for msg in messages:
            try:
                decoded.append(decode_envelope(msg.value, UsageEvent, self.limits, now,
                                               usage_records))
            except Exception as exc:  # a bug must never hold the partition: keep the message
                log.exception("usage message %s[%d]@%d could not be processed",
                              msg.topic, msg.partition, msg.offset)
                decoded.append(exc)
        return decoded

    def _take(self, msg: RawMessage, element: Element[Usage],
              seen_lookup: Callable[[str], SeenEvent | None], out: IngestOutcome) -> None:
        """Price and de-duplicate one event of ``msg``, or dead-letter it."""
        index = element.index
        try:
            if element.error is not None:
                raise element.error
            assert element.event is not None
            event = element.event
            priced = price_usage(event, self.catalog)
            if priced.cost_usd > self.limits.max_cost_usd:
                where = "" if index is None else f"event {index} of the batch: "
                raise InvalidEvent(
                    "cost_over_cap",
                    f"{where}cost ${priced.cost_usd:,.2f} ({priced.priced_by}) is above the "
                    f"per-event cap ${self.limits.max_cost_usd:,.2f} "
                    "(PRSM_MAX_EVENT_COST_USD)")
        except InvalidEvent as exc:
            out.dead_letters.append(
                DeadLetter(exc.code, exc.reason, msg.topic, msg.partition, msg.offset,
                           msg.key, element.original, index))
            return
        except Exception as exc:  # a bug must never hold the partition: keep the event
            log.exception("usage message %s[%d]@%d (event %s) could not be processed",
                          msg.topic, msg.partition, msg.offset, index)
            out.dead_letters.append(processing_error(exc, msg, element))
            return
        place = index or 0
        first = out.seen.get(event.event_id) or seen_lookup(event.event_id)
        if first is not None and not first.is_same_event(msg.partition, msg.offset, place):
            out.duplicates += 1
            return
        if first is None:
            out.seen[event.event_id] = SeenEvent(msg.partition, msg.offset,
                                                 priced.at, place)
        out.accepted.append((priced, msg.partition, msg.offset))
