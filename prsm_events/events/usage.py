"""Event contracts: pydantic models of the messages on the prsm topics.

Messages are UTF-8 JSON objects, one event per message, keyed by tenant. The contract is
strict, because lenient input costs money: unknown fields are rejected so that a typo never
silently drops data; counts are JSON integers and money JSON numbers (``true``, ``"0.01"`` or
``10.0`` as a token count are refused); times are RFC 3339 strings with a zone; ids are
printable ASCII (see ``Identifier``).

>>> e = UsageEvent.model_validate_json(
...     b'{"event_id": "e1", "ts": "2026-01-01T00:00:00Z", "tenant": "acme", '
...     b'"service": "chat", "model": "gpt-4o", "input_tokens": 1000, "output_tokens": 200}')
>>> (e.tenant, e.kind.value, e.input_tokens, e.cost_usd)
('acme', 'llm', 1000, None)
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    model_validator,
)
from pydantic_core import PydanticCustomError

__all__ = [
    "EventId",
    "EventModel",
    "Identifier",
    "Money",
    "Number",
    "TagValue",
    "TokenCount",
    "UsageEvent",
    "UsageKind",
    "UsageStatus",
    "UtcTimestamp",
]


_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")
_TIMESTAMP_HINT = "an RFC 3339 string with a time zone, e.g. 2026-01-01T00:00:00Z"


def _rfc3339_text(value: Any) -> Any:
    """Let only RFC 3339 strings (or, from Python, datetimes) through: no epoch numbers."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and _RFC3339.fullmatch(value):
        return value
    raise PydanticCustomError("invalid_timestamp", f"timestamp must be {_TIMESTAMP_HINT}")


def _to_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise PydanticCustomError("invalid_timestamp", f"timestamp must be {_TIMESTAMP_HINT}")
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00: before year 1 in UTC
        raise PydanticCustomError("invalid_timestamp",
                                  "timestamp is out of range in UTC (years 1-9999)") from None


UtcTimestamp = Annotated[
    datetime, BeforeValidator(_rfc3339_text), AfterValidator(_to_utc),
    Field(description="RFC 3339 string with a time zone; epoch numbers refused "
          "(invalid_timestamp)."),
]
"""An RFC 3339 timestamp string with a zone (``T``, ``t`` or a space between date and time;
up to 9 fraction digits), normalised to UTC. Epoch numbers and zone-less times are refused."""

ID_CHARACTERS = "printable ASCII (0x21-0x7E) except '/'"
Identifier = Annotated[
    str, Field(min_length=1, max_length=128, pattern=r"^[\x21-\x2e\x30-\x7e]+$",
               description="Printable ASCII except '/' (invalid_identifier).")
]
"""A tenant, service, team, key or model id: 1-128 characters of printable ASCII except '/'
(letters, digits and ``!"#$%&'()*+,-.:;<=>?@[\\]^_`{|}~``): no whitespace, control, zero-width
or other non-ASCII characters, which would make two ids look alike."""

EventId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]
"""An idempotency key (``event_id``): 1-128 characters of printable ASCII."""

TagValue = Annotated[str, Field(max_length=256, pattern=r"^[^\x00-\x1f\x7f-\x9f\u200b-\u200f"
                                r"\u2028-\u202e\u2060-\u2064\ufeff]*$")]
"""A tag value: up to 256 characters, any text but control, zero-width and direction marks."""

TokenCount = Annotated[int, Strict(), Field(
    ge=0, le=10**10, description="A JSON integer: true, 10.0 or \"10\" are refused (wrong_type).")]
"""A token count: a JSON integer (not ``true``, ``10.0`` or ``"10"``)."""

Number = Annotated[float, Strict(), Field(
    description="A JSON number: strings and booleans are refused (wrong_type).")]
"""A JSON number (integer or decimal), never a string or a boolean."""

Money = Number
"""An amount in USD (a ``Number``)."""


class EventModel(BaseModel):
    """Shared configuration of every event: strict about unknown fields, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class UsageKind(StrEnum):
    LLM = "llm"
    COMPUTE = "compute"
    STORAGE = "storage"
    NETWORK = "network"
    OTHER = "other"


class UsageStatus(StrEnum):
    OK = "ok"
    ERROR = "error"
    TIMEOUT = "timeout"
    RATE_LIMITED = "rate_limited"


class UsageEvent(EventModel):
    """One unit of spend on the ``usage`` topic.

    One JSON object; a key given twice is refused (duplicate_key). Token fields follow the
    providers' billing: ``cached_input_tokens`` and
    ``cache_write_input_tokens`` are the parts of ``input_tokens`` read from / written to a
    prompt cache; ``reasoning_tokens`` are reasoning ("thinking") tokens reported *apart from*
    ``output_tokens`` (as Gemini reports them) and are billed at the output rate. Providers
    that already count reasoning in their output tokens (OpenAI, Anthropic) send 0.
    """

    event_id: EventId = Field(description="Idempotency key.")
    ts: UtcTimestamp
    tenant: Identifier
    service: Identifier
    team: Identifier | None = None
    api_key_id: Identifier | None = None
    request_id: EventId | None = None
    provider: Identifier | None = None
    model: Identifier | None = None
    input_tokens: TokenCount = 0
    cached_input_tokens: TokenCount = 0
    cache_write_input_tokens: TokenCount = 0
    output_tokens: TokenCount = 0
    reasoning_tokens: TokenCount = 0
    cost_usd: Money | None = Field(
        None, ge=0, le=1e6, description="Computed from the catalog when absent. A JSON number; "
        "an event above PRSM_MAX_EVENT_COST_USD (default 1000) is dead-lettered (cost_over_cap).",
    )
    kind: UsageKind = UsageKind.LLM
    latency_ms: Number | None = Field(None, ge=0)
    status: UsageStatus = UsageStatus.OK
    tags: dict[Identifier, TagValue] = Field(default_factory=dict, max_length=32)

    @model_validator(mode="after")
    def _check_token_parts(self) -> UsageEvent:
        cached = self.cached_input_tokens + self.cache_write_input_tokens
        if cached > self.input_tokens:
            raise ValueError(
                "cached_input_tokens + cache_write_input_tokens must not exceed input_tokens"
            )
        if self.cost_usd is None and self.kind != UsageKind.LLM:
            raise ValueError(f"cost_usd is required for kind '{self.kind}'")
        return self
