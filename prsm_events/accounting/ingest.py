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
>>> out.accepted_count, out.duplicates, [d.code for d in out.dead_letters]
(1, 1, ['invalid_json'])
>>> round(out.spend["tenant:t|total|all"].cost_usd, 4)
0.15
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from typing import Any, NamedTuple

import msgspec

from prsm_events.accounting.catalog import Catalog
from prsm_events.accounting.dedup import SeenEvent
from prsm_events.accounting.pricing import PricedUsage, price_usages
from prsm_events.accounting.spend import Accepted, SpendRow, fold_spend
from prsm_events.errors import InvalidEvent
from prsm_events.events.dead_letter import DeadLetter
from prsm_events.events.envelope import Element, Whole, decode_batches, decode_envelope
from prsm_events.events.fast_path import Usage, usage_array, usage_records
from prsm_events.events.usage import UsageEvent
from prsm_events.events.validation import EventLimits

__all__ = ["PART_BYTES", "IngestOutcome", "RawMessage", "UsageIngestor", "processing_error"]

log = logging.getLogger("prsm.ingest")


PART_BYTES = 64 * 1024
"""How many bytes of messages :meth:`UsageIngestor.parts` takes at a time, by default: about
300 events (an SDK envelope holds up to 500)."""


class RawMessage(msgspec.Struct, frozen=True):
    """A message as it came off the broker."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def processing_error(exc: Exception, msg: RawMessage, index: int | None = None,
                     original: bytes | None = None) -> DeadLetter:
    """The dead letter of a message (or of the event at ``index`` of a batch, written as
    ``original``) whose processing raised an unexpected error (a bug): code
    ``processing_error``, so that it is kept and its partition moves on."""
    return DeadLetter("processing_error", f"processing_error: {type(exc).__name__}: {exc}",
                      msg.topic, msg.partition, msg.offset, msg.key,
                      msg.value if original is None else original, index)


@dataclass(slots=True)
class IngestOutcome:
    accepted: list[Accepted] = field(default_factory=list)
    """The accepted events of each message ((partition, offset), its events in order),
    partition by partition, each in its order; a message with none is left out."""
    dead_letters: list[DeadLetter] = field(default_factory=list)
    duplicates: int = 0
    seen: dict[str, SeenEvent] = field(default_factory=dict)
    """New event_id entries for the dedup table."""
    spend: dict[str, SpendRow] = field(default_factory=dict)
    """Changed spend rows."""

    def absorb(self, part: IngestOutcome) -> None:
        """Add the outcome of the next part of a batch (``UsageIngestor.parts``)."""
        self.accepted.extend(part.accepted)
        self.dead_letters.extend(part.dead_letters)
        self.duplicates += part.duplicates
        self.seen.update(part.seen)
        self.spend.update(part.spend)  # a later part's row has the earlier parts' events

    @property
    def accepted_count(self) -> int:
        """How many events were accepted."""
        return sum(len(events) for _, events in self.accepted)

    def accepted_events(self) -> list[tuple[PricedUsage, int, int]]:
        """Every accepted event with its source (partition, offset), in order."""
        return [(priced, partition, offset)
                for (partition, offset), events in self.accepted for priced in events]


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
        """The outcome of ``batch``: its events judged, priced, de-duplicated against
        ``seen_lookup`` (the dedup table) and each other, and folded into the rows
        ``spend_lookup`` gives (the spend table)."""
        out = IngestOutcome()
        for part in self.parts(batch, seen_lookup, spend_lookup, now, part_bytes=None):
            out.absorb(part)
        return out

    def parts(
        self,
        batch: Sequence[RawMessage],
        seen_lookup: Callable[[str], SeenEvent | None],
        spend_lookup: Callable[[str], SpendRow | None],
        now: datetime,
        part_bytes: int | None = PART_BYTES,
    ) -> Iterator[IngestOutcome]:
        """:meth:`process`, a part of ``batch`` at a time (messages of about ``part_bytes``
        in all; None: the whole batch at once): the outcome of each part, judged after the
        parts before it (their new event ids and their spend rows count as stored), so that
        the parts together are the batch's outcome (``IngestOutcome.absorb``). A caller that
        takes each part's events further (accepted rows, the ledger) before asking for the
        next one finds their objects still in the CPU's caches
        (docs/decisions/2026-12-06-a-batch-in-parts.md)."""
        # partition by partition, each in its order: consecutive messages of a partition
        # are folded into their spend rows at once (fetched batches alternate partitions)
        taken: set[tuple[int, int]] = set()
        messages = []
        for msg in sorted(batch, key=attrgetter("partition")):
            if (msg.partition, msg.offset) not in taken:  # delivered twice: processed once
                taken.add((msg.partition, msg.offset))
                messages.append(msg)
        seen_before: dict[str, SeenEvent] = {}
        rows_before: dict[str, SpendRow] = {}

        def row_so_far(key: str) -> SpendRow | None:
            found = rows_before.get(key)
            return spend_lookup(key) if found is None else found

        for part in _parts(messages, part_bytes):
            out = self._process(part, seen_before, seen_lookup, row_so_far, now)
            seen_before.update(out.seen)
            rows_before.update(out.spend)
            yield out

    def _process(
        self,
        messages: list[RawMessage],
        seen_before: Mapping[str, SeenEvent],
        seen_lookup: Callable[[str], SeenEvent | None],
        spend_lookup: Callable[[str], SpendRow | None],
        now: datetime,
    ) -> IngestOutcome:
        """The outcome of ``messages``, distinct and in partition order, after the parts
        whose new event ids are ``seen_before``."""
        out = IngestOutcome()
        lookups = _SeenLookups(seen_before, seen_lookup)
        for msg, decoded in zip(messages, self._decode(messages, now), strict=True):
            if isinstance(decoded, Exception):
                out.dead_letters.append(processing_error(decoded, msg))
            elif isinstance(decoded, Whole):
                self._take(msg, range(len(decoded.events)), decoded.events, decoded.written,
                           lookups, out)
            else:
                self._take_elements(msg, decoded, lookups, out)
        out.spend = fold_spend(spend_lookup, out.accepted)
        return out

    def _decode(self, messages: list[RawMessage], now: datetime
                ) -> list[_Decoded] | list[_Decoded | Exception]:
        """The events of every message, decoded together; should that raise (a bug), each
        message alone, so that only the one that raises is kept as a processing error."""
        try:
            return decode_batches([m.value for m in messages], UsageEvent, self.limits, now,
                                  usage_records, usage_array)
        except Exception:
            pass
        decoded: list[_Decoded | Exception] = []
        for msg in messages:
            try:
                decoded.append(decode_envelope(msg.value, UsageEvent, self.limits, now,
                                               usage_records))
            except Exception as exc:  # a bug must never hold the partition: keep the message
                log.exception("usage message %s[%d]@%d could not be processed",
                              msg.topic, msg.partition, msg.offset)
                decoded.append(exc)
        return decoded

    def _take_elements(self, msg: RawMessage, elements: list[Element[Usage]],
                       lookups: _SeenLookups, out: IngestOutcome) -> None:
        """Dead-letter the invalid elements of ``msg``, take the valid ones; dead letters
        in the order of the elements."""
        first = len(out.dead_letters)
        valid: list[Element[Usage]] = []
        for element in elements:
            if element.error is None:
                valid.append(element)
            else:
                out.dead_letters.append(_dead_letter(msg, element.error, element.index,
                                                     element.original))
        decoded = len(out.dead_letters) - first
        self._take(msg, [e.index for e in valid], [e.event for e in valid], valid, lookups,
                   out)
        if decoded and len(out.dead_letters) - first > decoded:
            out.dead_letters[first:] = sorted(out.dead_letters[first:],
                                              key=lambda d: d.source_index or 0)

    def _take(self, msg: RawMessage, indexes: Sequence[int | None], events: Sequence[Any],
              sources: Sequence[Element[Usage] | bytes], lookups: _SeenLookups,
              out: IngestOutcome) -> None:
        """Price and de-duplicate the valid ``events`` of ``msg`` (each at its index in the
        batch, None for a message of one event; its source: its element, or its JSON as
        written), or dead-letter each that cannot be priced."""
        partition, offset = msg.partition, msg.offset
        cap = self.limits.max_cost_usd
        seen, (before, stored) = out.seen, lookups
        accepted: list[PricedUsage] = []
        assert len(sources) == len(events)
        # a source is read only for a refused event: a batch's are encoded when asked for
        for at, (index, priced) in enumerate(zip(indexes, self._price(msg, events, indexes),
                                                 strict=True)):
            if type(priced) is not PricedUsage or priced.cost_usd > cap:
                self._refuse(msg, priced, index, sources[at], out)
                continue
            event_id = priced.event.event_id
            place = index or 0
            first = seen.get(event_id) or before.get(event_id) or stored(event_id)
            if first is not None and not first.is_same_event(partition, offset, place):
                out.duplicates += 1
                continue
            if first is None:
                seen[event_id] = SeenEvent(partition, offset, priced.at, place)
            accepted.append(priced)
        if accepted:
            out.accepted.append(((partition, offset), accepted))

    def _price(self, msg: RawMessage, events: Sequence[Usage], indexes: Sequence[int | None]
               ) -> list[PricedUsage | Exception]:
        """The events priced together; should that raise (a bug), each alone, so that only
        the one that raises is kept as a processing error."""
        try:
            return list(price_usages(events, self.catalog))
        except Exception:
            pass
        priced: list[PricedUsage | Exception] = []
        for event, index in zip(events, indexes, strict=True):
            try:
                priced.extend(price_usages([event], self.catalog))
            except Exception as exc:  # a bug must never hold the partition: keep the event
                log.exception("usage message %s[%d]@%d (event %s) could not be processed",
                              msg.topic, msg.partition, msg.offset, index)
                priced.append(exc)
        return priced

    def _refuse(self, msg: RawMessage, priced: PricedUsage | Exception, index: int | None,
                source: Element[Usage] | bytes, out: IngestOutcome) -> None:
        """Dead-letter an event that cannot be priced, or costs more than the cap."""
        original = source.original if isinstance(source, Element) else source
        if isinstance(priced, PricedUsage):
            where = "" if index is None else f"event {index} of the batch: "
            priced = InvalidEvent(
                "cost_over_cap",
                f"{where}cost ${priced.cost_usd:,.2f} ({priced.priced_by}) is above the "
                f"per-event cap ${self.limits.max_cost_usd:,.2f} (PRSM_MAX_EVENT_COST_USD)")
        if isinstance(priced, InvalidEvent):
            out.dead_letters.append(_dead_letter(msg, priced, index, original))
        else:
            out.dead_letters.append(processing_error(priced, msg, index, original))


_Decoded = list[Element[Usage]] | Whole[Usage]


class _SeenLookups(NamedTuple):
    """Where an event_id was first accepted: among the new ids of the batch's parts before
    this one (a dict: asked of every event, without a call of ours), else as stored."""

    before: Mapping[str, SeenEvent]
    stored: Callable[[str], SeenEvent | None]


def _parts(messages: list[RawMessage], part_bytes: int | None) -> Iterator[list[RawMessage]]:
    """``messages`` in consecutive runs of about ``part_bytes`` (a message of more is a run
    of its own; None: one run)."""
    if part_bytes is None:
        if messages:
            yield messages
        return
    run: list[RawMessage] = []
    size = 0
    for msg in messages:
        run.append(msg)
        size += len(msg.value or b"") + 64  # (a message without a value still counts)
        if size >= part_bytes:
            yield run
            run, size = [], 0
    if run:
        yield run


def _dead_letter(msg: RawMessage, exc: InvalidEvent, index: int | None,
                 original: bytes | None) -> DeadLetter:
    return DeadLetter(exc.code, exc.reason, msg.topic, msg.partition, msg.offset, msg.key,
                      original, index)
