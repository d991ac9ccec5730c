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
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from prsm_events.errors import InvalidEvent
from prsm_events.models import UsageEvent
from prsm_events.request import RequestEvent

E = TypeVar("E", bound=BaseModel)

__all__ = [
    "EventLimits",
    "decode_event",
    "decode_request",
    "decode_usage",
    "describe_validation_error",
]

_CODE_BY_PYDANTIC_TYPE = {
    "extra_forbidden": "unknown_field",
    "missing": "missing_field",
    "json_invalid": "invalid_json",
    "model_type": "not_an_object",
}


@dataclass(frozen=True, slots=True)
class EventLimits:
    """Bounds on incoming messages (see ``Settings`` for their environment variables)."""

    max_bytes: int = 64 * 1024
    max_future_skew: timedelta = timedelta(hours=1)
    max_age: timedelta = timedelta(days=400)


def describe_validation_error(exc: ValidationError) -> InvalidEvent:
    """One InvalidEvent naming the first problem's code, plus every problem's field."""
    errors = exc.errors(include_url=False, include_input=False)
    code = _CODE_BY_PYDANTIC_TYPE.get(errors[0]["type"], "invalid_field")
    if code == "invalid_json":
        detail = errors[0]["msg"].split(": ", 1)[-1]
        return InvalidEvent(code, f"message is not UTF-8 JSON ({detail})")
    if code == "not_an_object":
        return InvalidEvent(code, "message must be a JSON object")
    parts = []
    for err in errors:
        field = ".".join(str(p) for p in err["loc"]) or "event"
        parts.append(f"{field}: {err['msg']}")
    return InvalidEvent(code, "; ".join(parts))


def decode_event(raw: bytes | None, model: type[E], limits: EventLimits, now: datetime) -> E:
    """Parse and validate one message as ``model``; raise InvalidEvent with the reason."""
    if raw is None or not raw.strip():
        raise InvalidEvent("empty", "message has no value")
    if len(raw) > limits.max_bytes:
        raise InvalidEvent(
            "oversized", f"message is {len(raw)} bytes, the limit is {limits.max_bytes}"
        )
    try:
        event = model.model_validate_json(raw)
    except ValidationError as exc:
        raise describe_validation_error(exc) from None
    ts: datetime = event.ts  # type: ignore[attr-defined]
    if ts > now + limits.max_future_skew:
        raise InvalidEvent(
            "ts_out_of_range",
            f"ts {ts.isoformat()} is more than {limits.max_future_skew} ahead of now",
        )
    if ts < now - limits.max_age:
        raise InvalidEvent("ts_out_of_range", f"ts {ts.isoformat()} is older than {limits.max_age}")
    return event


def decode_usage(raw: bytes | None, limits: EventLimits, now: datetime) -> UsageEvent:
    """Parse and validate one usage message; raise InvalidEvent with the reason."""
    return decode_event(raw, UsageEvent, limits, now)


def decode_request(raw: bytes | None, limits: EventLimits, now: datetime) -> RequestEvent:
    """Parse and validate one request message; raise InvalidEvent with the reason."""
    return decode_event(raw, RequestEvent, limits, now)
