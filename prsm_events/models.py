"""Event contracts: pydantic models of the messages on the prsm topics.

Messages are UTF-8 JSON objects, one event per message, keyed by tenant. Unknown fields are
rejected so that a typo never silently drops data.

>>> e = UsageEvent.model_validate_json(
...     b'{"event_id": "e1", "ts": "2026-01-01T00:00:00Z", "tenant": "acme", '
...     b'"service": "chat", "model": "gpt-4o", "input_tokens": 1000, "output_tokens": 200}')
>>> (e.tenant, e.kind.value, e.input_tokens, e.cost_usd)
('acme', 'llm', 1000, None)
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "EventModel",
    "Identifier",
    "UsageEvent",
    "UsageKind",
    "UsageStatus",
    "UtcTimestamp",
]


def _to_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp needs a time zone (RFC 3339, e.g. 2026-01-01T00:00:00Z)")
    return value.astimezone(UTC)


UtcTimestamp = Annotated[datetime, AfterValidator(_to_utc)]
"""An RFC 3339 timestamp with a zone, normalised to UTC."""

Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\s/]+$")]
"""A tenant, service, team, key or model id: 1-128 characters, no whitespace, no '/'."""

TokenCount = Annotated[int, Field(ge=0, le=10**10)]


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

    Token fields follow the providers' billing: ``cached_input_tokens`` and
    ``cache_write_input_tokens`` are the parts of ``input_tokens`` read from / written to a
    prompt cache; ``reasoning_tokens`` are reasoning ("thinking") tokens reported *apart from*
    ``output_tokens`` (as Gemini reports them) and are billed at the output rate. Providers
    that already count reasoning in their output tokens (OpenAI, Anthropic) send 0.
    """

    event_id: str = Field(min_length=1, max_length=128, description="Idempotency key.")
    ts: UtcTimestamp
    tenant: Identifier
    service: Identifier
    team: Identifier | None = None
    api_key_id: Identifier | None = None
    request_id: str | None = Field(None, max_length=128)
    provider: Identifier | None = None
    model: Identifier | None = None
    input_tokens: TokenCount = 0
    cached_input_tokens: TokenCount = 0
    cache_write_input_tokens: TokenCount = 0
    output_tokens: TokenCount = 0
    reasoning_tokens: TokenCount = 0
    cost_usd: float | None = Field(
        None, ge=0, le=1e6, description="Computed from the catalog when absent."
    )
    kind: UsageKind = UsageKind.LLM
    latency_ms: float | None = Field(None, ge=0)
    status: UsageStatus = UsageStatus.OK
    tags: dict[str, str] = Field(default_factory=dict, max_length=32)

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
