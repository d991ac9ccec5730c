"""The contracts' accepted paths decoded by msgspec: the hot paths of ingest and decisions.

``UsageEvent`` and ``RequestEvent`` (pydantic) are the contracts: their JSON schemas, their
error messages. Validating parsed JSON with them costs about 8 us an event; converting a
batch of it into ``UsageRecord`` or ``RequestRecord``, msgspec Structs with the same fields,
constraints and values, 1-2 us an event. :func:`usage_record` and :func:`request_record`
return a record only when the model accepts the same fields with the same values; for
anything else (an error, or a shape the two might read differently, such as a timestamp with
more than 6 fraction digits) they return None, and the caller validates with the model,
which gives the reason. Each pair is compared field by field over generated input in
``tests/unit/events/test_fast_path.py``.

A batch (the events of an envelope, the requests of a fetch) is decoded at once by
:func:`usage_records` and :func:`request_records`: one ``msgspec.convert`` of the whole list,
and each of the models' string patterns (character classes) checked by one match over the
concatenated values of the batch rather than one per value; where anything in the batch is
off, the batch is split in halves until the bad elements stand alone, so each element gets
exactly what it would alone.

>>> r = usage_record({"event_id": "e1", "ts": "2026-01-01T01:00:00+01:00", "tenant": "acme",
...                   "service": "chat", "model": "gpt-4o", "input_tokens": 1000})
>>> r.ts.isoformat(), r.kind.value, r.output_tokens, r.tags
('2026-01-01T00:00:00+00:00', 'llm', 0, {})
>>> usage_record({"event_id": "e1", "ts": "2026-01-01T00:00:00Z", "tenant": "acme",
...               "service": "chat", "input_tokens": True}) is None   # UsageEvent says why
True
>>> [r is not None for r in usage_records([{"event_id": "e1", "ts": "2026-01-01T00:00:00Z",
...                                         "tenant": "acme", "service": "chat"},
...                                        {"event_id": "e 2", "ts": "2026-01-01T00:00:00Z",
...                                         "tenant": "acme", "service": "chat"}])]
[True, False]
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from itertools import chain
from math import isfinite
from operator import attrgetter
from typing import Annotated, Any, TypeVar, overload

import msgspec

from prsm_events.accounting.scopes import SCOPE_ID_PATTERN
from prsm_events.events.request import Priority, RequestEvent
from prsm_events.events.usage import UsageEvent, UsageKind, UsageStatus

__all__ = ["AsWritten", "Request", "RequestRecord", "Usage", "UsageRecord", "request_record",
           "request_records", "usage_array", "usage_json", "usage_record", "usage_records"]

# Lengths and numbers are msgspec's constraints; the models' string patterns are character
# classes, checked below over a whole batch at once (``_chars_hold``): every value of a field
# is made of allowed characters exactly when their concatenation is (lengths are checked apart)
_Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
_EventId = _Identifier
_RequestId = _Identifier
_TenantId = _Identifier
_TagValue = Annotated[str, msgspec.Meta(max_length=256)]
_TokenCount = Annotated[int, msgspec.Meta(ge=0, le=10**10)]
_EstimatedTokens = Annotated[int, msgspec.Meta(ge=0, le=10**8)]
_Timestamp = Annotated[datetime, msgspec.Meta(tz=True)]

_IDENTIFIER_CHARS = re.compile(r"[\x21-\x2e\x30-\x7e]*")
"""``usage.Identifier``: printable ASCII except '/'."""
_EVENT_ID_CHARS = re.compile(r"[\x21-\x7e]*")
"""``usage.EventId``: printable ASCII."""
_REQUEST_ID_CHARS = re.compile(r"[\x21-\x7b\x7d\x7e]*")
"""``RequestEvent.request_id``: printable ASCII except '|'."""
_TENANT_CHARS = re.compile(SCOPE_ID_PATTERN.removeprefix("^").removesuffix("$")
                           .replace("{1,128}", "*"))
"""``request.TenantId``: a scope id's characters (its length is the Struct's)."""
_TAG_VALUE_CHARS = re.compile(
    r"[^\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff]*")
"""``usage.TagValue``: no control, zero-width or direction-mark characters."""

_TS = (r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
       r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})")
_TIMESTAMPS = re.compile(f"{_TS}(?:\n{_TS})*")
"""Timestamps, one a line, in the models' shape (``events.usage._RFC3339``) with at most 6
fraction digits: beyond that pydantic truncates and msgspec rounds, so those go to the model."""


class UsageRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True,
                  gc=False):
    """``UsageEvent``'s fields, as msgspec decodes them (see the module doc); written
    without the fields at their defaults (:func:`usage_json`)."""

    event_id: _EventId
    ts: _Timestamp
    tenant: _Identifier
    service: _Identifier
    team: _Identifier | None = None
    api_key_id: _Identifier | None = None
    request_id: _EventId | None = None
    provider: _Identifier | None = None
    model: _Identifier | None = None
    input_tokens: _TokenCount = 0
    cached_input_tokens: _TokenCount = 0
    cache_write_input_tokens: _TokenCount = 0
    output_tokens: _TokenCount = 0
    reasoning_tokens: _TokenCount = 0
    cost_usd: Annotated[float, msgspec.Meta(ge=0, le=1e6)] | None = None
    kind: UsageKind = UsageKind.LLM
    latency_ms: Annotated[float, msgspec.Meta(ge=0)] | None = None
    status: UsageStatus = UsageStatus.OK
    tags: Annotated[dict[_Identifier, _TagValue], msgspec.Meta(max_length=32)] = {}


class RequestRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    """``RequestEvent``'s fields, as msgspec decodes them (see the module doc)."""

    request_id: _RequestId
    ts: _Timestamp
    tenant: _TenantId
    service: _Identifier
    model: _Identifier
    provider: _Identifier | None = None
    team: _Identifier | None = None
    api_key_id: _Identifier | None = None
    est_input_tokens: _EstimatedTokens | None = None
    est_output_tokens: _EstimatedTokens | None = None
    priority: Priority = Priority.NORMAL
    max_cost_usd: Annotated[float, msgspec.Meta(gt=0, le=1e6)] | None = None
    min_quality: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    capabilities: Annotated[tuple[_Identifier, ...], msgspec.Meta(max_length=16)] = ()


Usage = UsageEvent | UsageRecord
"""A valid usage event, as either decoder gives it (the same attributes and values)."""

Request = RequestEvent | RequestRecord
"""A valid request, as either decoder gives it (the same attributes and values)."""


def usage_record(fields: dict[str, Any]) -> UsageRecord | None:
    """``fields`` (parsed JSON) as a UsageRecord, or None: let ``UsageEvent`` judge them."""
    return usage_records([fields])[0]


def usage_records(items: Sequence[Any]) -> list[UsageRecord | None]:
    """Each of ``items`` (parsed JSON) as :func:`usage_record` gives it, decoded together."""
    return _records(items, _USAGE_LIST, _usage_holds)


def usage_json(event: Usage) -> bytes:
    """A valid event as the SDK writes it: its record's JSON, fields at their defaults left
    out (``UsageRecord`` with ``omit_defaults``). A batch of these is what
    :func:`usage_array` decodes at once.

    >>> usage_json(UsageEvent(event_id="e1", ts="2026-01-01T00:00:00Z", tenant="acme",
    ...                       service="chat", input_tokens=10))
    b'{"event_id":"e1","ts":"2026-01-01T00:00:00Z","tenant":"acme","service":"chat","input_tokens":10}'
    """
    record = event if type(event) is UsageRecord else msgspec.convert(
        event, UsageRecord, from_attributes=True)
    return _ENCODE(record)


def usage_array(raw: bytes) -> tuple[list[UsageRecord], AsWritten] | None:
    """The events of ``raw``, a batch envelope (a JSON array), as records decoded straight
    from its bytes, with each one's JSON as written; or None, and each element is parsed and
    judged on its own (``envelope.decode_envelopes``).

    Only an array written as :func:`usage_json` writes events is taken so: its records,
    written again, must give back ``raw`` byte for byte. That proves the decoder read what
    was written, as a careful parse would have: msgspec keeps the last of a repeated key,
    but a key repeated (or spaced, escaped, a time written another way) is not written back.
    And every event must be valid as :func:`usage_records` takes it, its time in UTC.

    >>> events = [UsageEvent(event_id=f"e{i}", ts="2026-01-01T00:00:00Z", tenant="acme",
    ...                      service="chat", tags={"team": "x"}) for i in range(2)]
    >>> raw = b"[" + b",".join(map(usage_json, events)) + b"]"
    >>> records, written = usage_array(raw)
    >>> [r.event_id for r in records], written[1] == usage_json(events[1])
    (['e0', 'e1'], True)
    >>> usage_array(raw.replace(b'"team":"x"}}]', b'"team":"x","team":"y"}}]'))
    >>> usage_array(raw.replace(b'"ts"', b' "ts"'))
    """
    try:
        records = _USAGE_ARRAY.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if (not records or _ENCODE(records) != raw
            or not all(r.ts.tzinfo is UTC for r in records)
            or not _usage_holds(records, chars=not _plain(raw))):
        return None
    return records, AsWritten(records)


class AsWritten(Sequence[bytes]):
    """The JSON of each record of a batch that :func:`usage_array` read whole, as written:
    the batch, written again, is its bytes, so each record written again is its element.
    Each is encoded only when asked for (a dead letter's original, a size checked).

    >>> raw = b"[" + usage_json(UsageEvent(event_id="e1", ts="2026-01-01T00:00:00Z",
    ...                                    tenant="acme", service="chat")) + b"]"
    >>> records, written = usage_array(raw)
    >>> list(written) == [raw[1:-1]]
    True
    """

    __slots__ = ("records",)

    def __init__(self, records: list[UsageRecord]) -> None:
        self.records = records

    def __len__(self) -> int:
        return len(self.records)

    @overload
    def __getitem__(self, index: int) -> bytes: ...

    @overload
    def __getitem__(self, index: slice) -> list[bytes]: ...

    def __getitem__(self, index: int | slice) -> bytes | list[bytes]:
        if isinstance(index, slice):
            return list(map(_ENCODE, self.records[index]))
        return _ENCODE(self.records[index])


def _plain(raw: bytes) -> bool:
    """Whether every string in ``raw``, a message as msgspec writes it, is made of ASCII
    ``!``-``~`` but ``/`` (what every pattern of ``UsageEvent`` takes): msgspec escapes a
    control character or quote in a string, so with no backslash, space, ``/`` or DEL in it,
    and nothing but ASCII, no string holds anything else."""
    return raw.isascii() and not (b"\\" in raw or b" " in raw or b"/" in raw
                                  or b"\x7f" in raw)


def request_record(fields: dict[str, Any]) -> RequestRecord | None:
    """``fields`` (parsed JSON) as a RequestRecord, or None: let ``RequestEvent`` judge them.

    >>> r = request_record({"request_id": "r1", "ts": "2026-01-01T00:00:00Z", "tenant": "acme",
    ...                     "service": "chat", "model": "gpt-4o", "capabilities": ["tools"]})
    >>> r.priority.value, r.capabilities, r.est_input_tokens
    ('normal', ('tools',), None)
    """
    return request_records([fields])[0]


def request_records(items: Sequence[Any]) -> list[RequestRecord | None]:
    """Each of ``items`` (parsed JSON) as :func:`request_record` gives it, decoded together."""
    return _records(items, _REQUEST_LIST, _request_holds)


_R = TypeVar("_R", UsageRecord, RequestRecord)
_T = TypeVar("_T")


_USAGE_LIST = list[UsageRecord]
_REQUEST_LIST = list[RequestRecord]
_USAGE_ARRAY = msgspec.json.Decoder(_USAGE_LIST)
_ENCODE = msgspec.json.Encoder().encode


def _records(items: Sequence[Any], kinds: type[list[_R]], holds: Callable[[list[_R]], bool]
             ) -> list[_R | None]:
    """The items as records, at once. Where msgspec refuses the batch, and where a pattern
    or a rule does not hold, by halves: a few bad items among many cost a few more batches,
    down to each bad one alone (None)."""
    def converted(part: list[Any]) -> list[_R | None] | None:
        records = _convert(part, kinds)
        return None if records is None else _by_halves(
            records, lambda some: some if holds(some) else None)

    return _in_utc(_by_halves(list(items), converted))


def _by_halves(items: list[_T], whole: Callable[[list[_T]], list[Any] | None]) -> list[Any]:
    """``whole(items)``; where it refuses (None), each half the same way, down to None for
    an item refused alone."""
    found = whole(items)
    if found is not None:
        return found
    if len(items) <= 1:
        return [None] * len(items)
    half = len(items) // 2
    return _by_halves(items[:half], whole) + _by_halves(items[half:], whole)


def _convert(items: Sequence[Any], kinds: type[list[_R]]) -> list[_R] | None:
    """Every item as a record (``kinds``: a list of them), or None if any one is not (or not
    surely as the model)."""
    try:
        stamps = "\n".join([fields["ts"] for fields in items])
        if stamps.count("\n") != len(items) - 1 or _TIMESTAMPS.fullmatch(stamps) is None:
            return None  # (a stamp with a line break of its own is not one stamp)
        return msgspec.convert(items, kinds)
    except Exception:  # whatever msgspec cannot take, the model judges (and says why)
        return None


def _chars_hold(chars: re.Pattern[str], values: Iterable[str | None]) -> bool:
    """Whether every value (None and "" skipped) is made of ``chars``."""
    return chars.fullmatch("".join(filter(None, values))) is not None


_USAGE_IDENTIFIERS = attrgetter("tenant", "service", "team", "api_key_id", "provider", "model")
_USAGE_EVENT_IDS = attrgetter("event_id", "request_id")
_REQUEST_IDENTIFIERS = attrgetter("service", "model", "provider", "team", "api_key_id")


def _usage_holds(records: list[UsageRecord], chars: bool = True) -> bool:
    """The patterns of ``UsageEvent``'s strings (unless known to hold: ``chars``), and its
    own rules (its model validator)."""
    tagged = [r.tags for r in records if r.tags]
    if chars and not (_chars_hold(_IDENTIFIER_CHARS, chain(
                chain.from_iterable(map(_USAGE_IDENTIFIERS, records)),
                chain.from_iterable(tagged)))
            and _chars_hold(_EVENT_ID_CHARS, chain.from_iterable(map(_USAGE_EVENT_IDS, records)))
            and _chars_hold(_TAG_VALUE_CHARS, chain.from_iterable(t.values() for t in tagged))):
        return False
    llm = UsageKind.LLM
    for r in records:
        if r.cached_input_tokens + r.cache_write_input_tokens > r.input_tokens:
            return False
        if r.cost_usd is None and r.kind is not llm:
            return False
        if r.latency_ms is not None and not isfinite(r.latency_ms):
            return False  # UsageEvent refuses infinity (msgspec's ge=0 lets it through)
    return True


def _request_holds(records: list[RequestRecord]) -> bool:
    """The patterns of ``RequestEvent``'s strings."""
    return (_chars_hold(_REQUEST_ID_CHARS, [r.request_id for r in records])
            and _chars_hold(_TENANT_CHARS, [r.tenant for r in records])
            and _chars_hold(_IDENTIFIER_CHARS, chain(
                chain.from_iterable(map(_REQUEST_IDENTIFIERS, records)),
                chain.from_iterable(r.capabilities for r in records))))


def _in_utc(records: list[_R | None]) -> list[_R | None]:
    """The records with their ``ts`` in UTC, as the models normalise it (None for one that
    cannot be: beyond year 1 or 9999 in UTC, the model says why; None stays None)."""
    if all(r is None or r.ts.tzinfo is UTC for r in records):
        return records
    return [r if r is None or r.ts.tzinfo is UTC else _one_in_utc(r) for r in records]


def _one_in_utc(record: _R) -> _R | None:
    ts = record.ts
    try:
        if ts.utcoffset():
            return msgspec.structs.replace(record, ts=ts.astimezone(UTC))
    except OverflowError:
        return None
    return msgspec.structs.replace(record, ts=ts.replace(tzinfo=UTC))
