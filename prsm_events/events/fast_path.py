"""The contracts' accepted paths decoded by msgspec: the hot paths of ingest and decisions.

``UsageEvent`` and ``RequestEvent`` (pydantic) are the contracts: their JSON schemas, their
error messages. Validating parsed JSON with them costs about 8 us an event; converting it
into ``UsageRecord`` or ``RequestRecord``, msgspec Structs with the same fields, constraints
and values, 1-3 us. :func:`usage_record` and :func:`request_record` return a record only
when the model accepts the same fields with the same values; for anything else (an error, or
a shape the two might read differently, such as a timestamp with more than 6 fraction digits)
they return None, and the caller validates with the model, which gives the reason. Each
pair is compared field by field over generated input in ``tests/unit/events/test_fast_path.py``.

>>> r = usage_record({"event_id": "e1", "ts": "2026-01-01T01:00:00+01:00", "tenant": "acme",
...                   "service": "chat", "model": "gpt-4o", "input_tokens": 1000})
>>> r.ts.isoformat(), r.kind.value, r.output_tokens, r.tags
('2026-01-01T00:00:00+00:00', 'llm', 0, {})
>>> usage_record({"event_id": "e1", "ts": "2026-01-01T00:00:00Z", "tenant": "acme",
...               "service": "chat", "input_tokens": True}) is None   # UsageEvent says why
True
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from math import isfinite
from typing import Annotated, Any, TypeVar

import msgspec

from prsm_events.accounting.scopes import SCOPE_ID_PATTERN
from prsm_events.events.request import Priority, RequestEvent
from prsm_events.events.usage import UsageEvent, UsageKind, UsageStatus

__all__ = ["Request", "RequestRecord", "Usage", "UsageRecord", "request_record", "usage_record"]

# the models' patterns with \A and \Z, not ^ and $ ($ lets a trailing newline through in
# Python's re, not in pydantic's)
_Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=128,
                                          pattern=r"\A[\x21-\x2e\x30-\x7e]+\Z")]
_EventId = Annotated[str, msgspec.Meta(min_length=1, max_length=128,
                                       pattern=r"\A[\x21-\x7e]+\Z")]
_TagValue = Annotated[str, msgspec.Meta(
    max_length=256, pattern=r"\A[^\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064"
    r"\ufeff]*\Z")]
_TokenCount = Annotated[int, msgspec.Meta(ge=0, le=10**10)]
_TenantId = Annotated[str, msgspec.Meta(
    pattern=r"\A" + SCOPE_ID_PATTERN.removeprefix("^").removesuffix("$") + r"\Z")]
_RequestId = Annotated[str, msgspec.Meta(min_length=1, max_length=128,
                                         pattern=r"\A[\x21-\x7b\x7d\x7e]+\Z")]
_EstimatedTokens = Annotated[int, msgspec.Meta(ge=0, le=10**8)]
_Timestamp = Annotated[datetime, msgspec.Meta(tz=True)]

_RFC3339_UP_TO_MICROSECONDS = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([Zz]|[+-]\d{2}:\d{2})")
"""The models' timestamp shape (``events.usage._RFC3339``) with at most 6 fraction digits:
beyond that pydantic truncates and msgspec rounds, so those go to the model."""


class UsageRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``UsageEvent``'s fields, as msgspec decodes them (see the module doc)."""

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


class RequestRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
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
    record = _convert(fields, UsageRecord)
    if record is None:
        return None
    # UsageEvent's own rules (its model validator)
    if record.cached_input_tokens + record.cache_write_input_tokens > record.input_tokens:
        return None
    if record.cost_usd is None and record.kind is not UsageKind.LLM:
        return None
    if record.latency_ms is not None and not isfinite(record.latency_ms):
        return None  # UsageEvent refuses infinity (msgspec's ge=0 lets it through)
    return _in_utc(record)


def request_record(fields: dict[str, Any]) -> RequestRecord | None:
    """``fields`` (parsed JSON) as a RequestRecord, or None: let ``RequestEvent`` judge them.

    >>> r = request_record({"request_id": "r1", "ts": "2026-01-01T00:00:00Z", "tenant": "acme",
    ...                     "service": "chat", "model": "gpt-4o", "capabilities": ["tools"]})
    >>> r.priority.value, r.capabilities, r.est_input_tokens
    ('normal', ('tools',), None)
    """
    record = _convert(fields, RequestRecord)
    return None if record is None else _in_utc(record)


_R = TypeVar("_R", UsageRecord, RequestRecord)


def _convert(fields: dict[str, Any], kind: type[_R]) -> _R | None:
    ts = fields.get("ts")
    if type(ts) is not str or _RFC3339_UP_TO_MICROSECONDS.fullmatch(ts) is None:
        return None
    try:
        return msgspec.convert(fields, kind)
    except Exception:  # whatever msgspec cannot take, the model judges (and says why)
        return None


def _in_utc(record: _R) -> _R | None:
    """The record with its ``ts`` in UTC, as the models normalise it."""
    ts = record.ts
    try:
        if ts.utcoffset():
            return msgspec.structs.replace(record, ts=ts.astimezone(UTC))
    except OverflowError:  # beyond year 1 or 9999 in UTC: the model says why
        return None
    if ts.tzinfo is not UTC:
        return msgspec.structs.replace(record, ts=ts.replace(tzinfo=UTC))
    return record
