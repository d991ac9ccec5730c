"""Decisions as rows of the ClickHouse ``decisions`` table, which the sink writes.

The sink reads the ``decisions`` topic as the workers wrote it (the contract:
``events.decision.Decision``) and turns each record into one NDJSON row (ClickHouse's
``JSONEachRow``), with the record's place in the topic, on which a record read twice
collapses. A record that is not a decision raises ``ValueError`` (the sink dead-letters it).

>>> record = (b'{"request_id":"r1","ts":"2026-01-01T00:00:00Z","tenant":"acme","action":"allow",'
...           b'"model":"gpt-4o","provider":"openai","requested_model":"gpt-4o",'
...           b'"est_cost_usd":0.0075,"reason":{"code":"within_budget","message":"fits"},'
...           b'"budget":{"scope":"global","spent_usd":1.5}}')
>>> row = msgspec.json.decode(decision_row(record, 3, 17))
>>> row["action"], row["reason_code"], row["budget"], row["src_partition"], row["src_offset"]
('allow', 'within_budget', '{"scope":"global","spent_usd":1.5}', 3, 17)
>>> decision_row(b'{"request_id":"r1"}', 0, 0)
Traceback (most recent call last):
ValueError: not a decision: Object missing required field `ts`
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from prsm_events.events.decision import DecisionRecord

__all__ = ["DECISION_COLUMNS", "DecisionRow", "decision_row"]


class DecisionRow(msgspec.Struct):
    """One ``decisions`` table row: its columns in insert order."""

    request_id: str
    ts: datetime
    tenant: str
    action: str
    model: str
    provider: str
    requested_model: str
    priority: str
    est_cost_usd: float
    requested_est_cost_usd: float
    """The estimate at the requested model (``est_cost_usd`` unless routed)."""
    quality_given_up: float | None
    reason_code: str
    reason_message: str
    retry_after_s: float | None
    budget: str
    """The figures of the budget that drove the decision, as JSON ('' when none)."""
    source: str
    src_partition: int
    src_offset: int
    budget_scope: str
    budget_period: str
    budget_limit_usd: float | None
    budget_spent_usd: float | None
    budget_reserved_usd: float | None
    budget_remaining_usd: float | None
    budget_period_end: str | None
    forecast_period_end_usd: float | None
    forecast_exhaustion_ts: str | None


DECISION_COLUMNS: tuple[str, ...] = DecisionRow.__struct_fields__

_decode = msgspec.json.Decoder(DecisionRecord).decode
_encode = msgspec.json.Encoder().encode


def decision_row(value: bytes | None, partition: int, offset: int) -> bytes:
    """The NDJSON row of the decision record ``value`` read at (``partition``, ``offset``),
    read as the worker writes it (``DecisionRecord``)."""
    try:
        d = _decode(value or b"")
    except msgspec.DecodeError as exc:
        raise ValueError(f"not a decision: {exc}") from None
    b: Any = d.budget or _NONE
    f: Any = d.forecast or _NONE
    # a figure is a number (not a bool) or a non-empty text, else none (JSON's own types)
    limit, spent, reserved, remaining, end, forecast, exhaustion = (
        b.get("limit_usd"), b.get("spent_usd"), b.get("reserved_usd"), b.get("remaining_usd"),
        b.get("period_end"), f.get("period_end_spend_usd"), f.get("exhaustion_ts"))
    row = DecisionRow(
        d.request_id, d.ts, d.tenant, d.action.value, d.model or "", d.provider or "",
        d.requested_model, d.priority, d.est_cost_usd,
        d.est_cost_usd if d.requested_est_cost_usd is None else d.requested_est_cost_usd,
        d.quality_given_up, d.reason.code, d.reason.message, d.retry_after_s,
        "" if d.budget is None else _encode(d.budget).decode(), d.source, partition, offset,
        str(b.get("scope") or ""), str(b.get("period") or ""),
        float(limit) if type(limit) in _NUMBER else None,
        float(spent) if type(spent) in _NUMBER else None,
        float(reserved) if type(reserved) in _NUMBER else None,
        float(remaining) if type(remaining) in _NUMBER else None,
        end if type(end) is str and end else None,
        float(forecast) if type(forecast) in _NUMBER else None,
        exhaustion if type(exhaustion) is str and exhaustion else None)
    return _encode(row) + b"\n"


_NONE: dict[str, Any] = {}
_NUMBER = (int, float)
