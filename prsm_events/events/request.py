"""The request event: what a gateway asks before it calls a model.

>>> r = RequestEvent.model_validate_json(
...     b'{"request_id": "r1", "ts": "2026-01-01T00:00:00Z", "tenant": "acme", '
...     b'"service": "chat", "model": "gpt-4o", "est_input_tokens": 2000, "priority": "low"}')
>>> (r.priority.value, r.est_output_tokens, r.capabilities)
('low', None, ())
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field

from prsm_events.accounting.scopes import SCOPE_ID_PATTERN
from prsm_events.events.usage import EventModel, Identifier, Money, Number, TokenCount, UtcTimestamp

__all__ = ["Priority", "RequestEvent", "TenantId"]

TenantId = Annotated[str, Field(pattern=SCOPE_ID_PATTERN)]
"""A tenant id usable in budget scopes: printable ASCII except '/', ':', '|' and '#'."""


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    CRITICAL = "critical"


class RequestEvent(EventModel):
    """One request on the ``requests`` topic, published before calling a model.

    ``team`` and ``api_key_id`` are optional extras (beyond DESIGN.md's list) so that team
    and API-key budgets apply to requests as they do to usage.
    """

    request_id: str = Field(min_length=1, max_length=128, pattern=r"^[\x21-\x7b\x7d\x7e]+$",
                            description="Printable ASCII except '|'.")
    ts: UtcTimestamp
    tenant: TenantId
    service: Identifier
    model: Identifier
    provider: Identifier | None = None
    team: Identifier | None = None
    api_key_id: Identifier | None = None
    est_input_tokens: TokenCount | None = Field(None, le=10**8)
    est_output_tokens: TokenCount | None = Field(None, le=10**8)
    priority: Priority = Priority.NORMAL
    max_cost_usd: Money | None = Field(None, gt=0, le=1e6, description="Per-request ceiling.")
    min_quality: Number | None = Field(None, ge=0, le=1)
    capabilities: tuple[Identifier, ...] = Field((), max_length=16)
