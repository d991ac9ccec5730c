"""Turn raw message bytes into a validated event, or a precise reason why not.

>>> from datetime import UTC
>>> limits = EventLimits()
>>> now = datetime(2026, 1, 1, tzinfo=UTC)
>>> decode_usage(b'{"event_id": "e1", "ts": "2026-01-01T00:00:00Z", "tenant": "acme", '
...              b'"service": "chat", "cost_usd": -1}', limits, now)
Traceback (most recent call last):
...
prsm_events.errors.InvalidEvent: invalid_field: cost_usd: Input should be greater than or equal to 0
>>> decode_usage(b'\\xff\\xfe', limits, now)
Traceback (most recent call last):
...
prsm_events.errors.InvalidEvent: invalid_json: message is not UTF-8 JSON (expected value ...)
>>> decode_usage(b'{"event_id": "e1", "cost_usd": -1, "cost_usd": 0.02}', limits, now)
Traceback (most recent call last):
...
prsm_events.errors.InvalidEvent: duplicate_key: message repeats key "cost_usd" ...
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import jiter
from pydantic import BaseModel, ValidationError

from prsm_events.errors import InvalidEvent
from prsm_events.events.fast_path import Request, request_records
from prsm_events.events.request import RequestEvent
from prsm_events.events.usage import ID_CHARACTERS, UsageEvent

E = TypeVar("E")

FastPath = Callable[[Sequence[Any]], Sequence[E | None]]
"""A faster decoder of a model's valid fields (``events.fast_path``), for a batch of parsed
events: each one's event, with the same values the model would give, or None to let the
model judge its fields."""

__all__ = [
    "EventLimits",
    "decode_event",
    "decode_events",
    "decode_request",
    "decode_requests",
    "decode_usage",
    "describe_validation_error",
    "parse_message",
    "parse_object",
    "validate_fields",
    "validated",
]

_CODE_BY_PYDANTIC_TYPE = {
    "extra_forbidden": "unknown_field",
    "missing": "missing_field",
    "json_invalid": "invalid_json",
    "model_type": "not_an_object",
    "invalid_timestamp": "invalid_timestamp",
    "string_pattern_mismatch": "invalid_identifier",
}
_WRONG_TYPES = frozenset({
    "int_type", "float_type", "string_type", "bool_type", "dict_type", "list_type",
    "tuple_type", "int_from_float", "none_required",
})
"""pydantic error types meaning "this JSON value has the wrong type": code ``wrong_type``."""


@dataclass(frozen=True, slots=True)
class EventLimits:
    """Bounds on incoming messages (see ``Settings`` for their environment variables)."""

    max_bytes: int = 64 * 1024
    """The largest event: a single-event message, or one element of a batch."""
    max_batch_bytes: int = 1_000_000
    """The largest batch message (a JSON array of events; ``events.envelope``)."""
    max_batch_events: int = 10_000
    """The most events in one batch message: a megabyte of tiny bad elements must not become
    half a million dead letters."""
    max_future_skew: timedelta = timedelta(hours=1)
    max_age: timedelta = timedelta(days=400)
    max_cost_usd: float = 1000.0
    """Most one usage event may cost (given or priced); more is dead-lettered
    (``cost_over_cap``) as a likely bug rather than spend."""

    def times(self, now: datetime) -> tuple[datetime, datetime]:
        """The earliest and latest ``ts`` an event may have at ``now`` (both taken)."""
        return now - self.max_age, now + self.max_future_skew


_TAG_VALUE_RULE = "no control, zero-width or direction-mark characters in a tag value"


def _code_of(error_type: str) -> str:
    if error_type in _WRONG_TYPES:
        return "wrong_type"
    return _CODE_BY_PYDANTIC_TYPE.get(error_type, "invalid_field")


def describe_validation_error(exc: ValidationError) -> InvalidEvent:
    """One InvalidEvent naming the first problem's code, plus every problem's field."""
    errors = exc.errors(include_url=False, include_input=False)
    code = _code_of(errors[0]["type"])
    if code == "invalid_json":
        detail = errors[0]["msg"].split(": ", 1)[-1]
        return InvalidEvent(code, f"message is not UTF-8 JSON ({detail})")
    if code == "not_an_object":
        return InvalidEvent(code, "message must be a JSON object")
    parts = []
    for err in errors:
        field = ".".join(str(p) for p in err["loc"]) or "event"
        message = err["msg"]
        if err["type"] == "string_pattern_mismatch":
            message = (_TAG_VALUE_RULE if err["loc"][0] == "tags" and err["loc"][-1] != "[key]"
                       else f"characters allowed: {ID_CHARACTERS}")
        parts.append(f"{field}: {message}")
    return InvalidEvent(code, "; ".join(parts))


def parse_object(raw: bytes) -> dict[str, Any]:
    """Parse one JSON object strictly: UTF-8, no NaN/Infinity, no repeated key at any depth
    (with "last wins" a repeated key could pass one value to a check and count another).

    >>> parse_object(b'{"a": 1}')
    {'a': 1}
    >>> parse_object(b'{"a": {"b": 1, "b": 2}}')
    Traceback (most recent call last):
    ...
    prsm_events.errors.InvalidEvent: duplicate_key: message repeats key "b" ...
    """
    try:
        value = jiter.from_json(raw, allow_inf_nan=False, catch_duplicate_keys=True,
                                cache_mode="keys")
    except ValueError as exc:
        text = str(exc)
        if text.startswith("Detected duplicate key"):
            raise InvalidEvent("duplicate_key",
                               "message repeats key " + text.split("key ", 1)[1]) from None
        raise InvalidEvent("invalid_json", f"message is not UTF-8 JSON ({text})") from None
    if not isinstance(value, dict):
        raise InvalidEvent("not_an_object", "message must be a JSON object")
    return value


def parse_message(raw: bytes | None, limits: EventLimits) -> dict[str, Any]:
    """One event's message parsed as a JSON object, within the size limit; raise
    InvalidEvent with the reason."""
    if raw is None or not raw.strip():
        raise InvalidEvent("empty", "message has no value")
    if len(raw) > limits.max_bytes:
        raise InvalidEvent(
            "oversized", f"message is {len(raw)} bytes, the limit is {limits.max_bytes}"
        )
    return parse_object(raw)


def decode_event(raw: bytes | None, model: type[E], limits: EventLimits, now: datetime,
                 fast: FastPath[E] | None = None) -> E:
    """Parse and validate one message as ``model`` (``fast`` first, when given); raise
    InvalidEvent with the reason."""
    return validate_fields(parse_message(raw, limits), model, limits, now, fast)


def decode_events(raws: Sequence[bytes | None], model: type[E], limits: EventLimits,
                  now: datetime, fast: FastPath[E] | None = None) -> list[E | InvalidEvent]:
    """:func:`decode_event` of each message (its event, or why not), ``fast`` taking the
    fields of all at once."""
    parsed: list[dict[str, Any] | InvalidEvent] = []
    for raw in raws:
        try:
            parsed.append(parse_message(raw, limits))
        except InvalidEvent as exc:
            parsed.append(exc)
    found = iter(fast([p for p in parsed if type(p) is dict]) if fast is not None else ())
    out: list[E | InvalidEvent] = []
    for fields in parsed:
        if isinstance(fields, InvalidEvent):
            out.append(fields)
            continue
        try:
            out.append(validated(fields, next(found, None), model, limits, now))
        except InvalidEvent as exc:
            out.append(exc)
    return out


def validate_fields(fields: Any, model: type[E], limits: EventLimits, now: datetime,
                    fast: FastPath[E] | None = None) -> E:
    """Validate parsed JSON as ``model`` (``fast`` first, when given), and its ``ts``
    against the limits. ``model`` is a pydantic model."""
    if not isinstance(fields, dict):
        raise InvalidEvent("not_an_object", "message must be a JSON object")
    return validated(fields, None if fast is None else fast([fields])[0], model, limits, now)


def validated(fields: dict[str, Any], found: E | None, model: type[E], limits: EventLimits,
              now: datetime) -> E:
    """``found`` (the fast path's event of ``fields``) or, when None, the model's, if its
    ``ts`` is within the limits around ``now``; else raise InvalidEvent with the reason."""
    if found is None:
        pydantic_model: type[BaseModel] = model  # type: ignore[assignment]
        try:
            found = pydantic_model.model_validate(fields)  # type: ignore[assignment]
        except ValidationError as exc:
            raise describe_validation_error(exc) from None
    event: E = found  # type: ignore[assignment]
    ts: datetime = event.ts  # type: ignore[attr-defined]
    earliest, latest = limits.times(now)
    if ts > latest:
        raise InvalidEvent(
            "ts_out_of_range",
            f"ts {ts.isoformat()} is more than {limits.max_future_skew} ahead of now",
        )
    if ts < earliest:
        raise InvalidEvent("ts_out_of_range", f"ts {ts.isoformat()} is older than {limits.max_age}")
    return event


def decode_usage(raw: bytes | None, limits: EventLimits, now: datetime) -> UsageEvent:
    """Parse and validate one usage message; raise InvalidEvent with the reason."""
    return decode_event(raw, UsageEvent, limits, now)


_REQUEST_MODEL: type[Request] = RequestEvent
"""Judges what ``request_records`` does not take."""


def decode_request(raw: bytes | None, limits: EventLimits, now: datetime) -> Request:
    """Parse and validate one request message; raise InvalidEvent with the reason."""
    return decode_event(raw, _REQUEST_MODEL, limits, now, request_records)


def decode_requests(raws: Sequence[bytes | None], limits: EventLimits, now: datetime
                    ) -> list[Request | InvalidEvent]:
    """:func:`decode_request` of each message: its request, or why not."""
    return decode_events(raws, _REQUEST_MODEL, limits, now, request_records)
