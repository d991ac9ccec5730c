"""Alerts as rows of the ClickHouse ``alerts`` table, which the sink writes.

The sink reads the ``alerts`` topic as the workers wrote it (the contract:
``events.alerts.Alert``) and turns each record into one NDJSON row (ClickHouse's
``JSONEachRow``). An alert sent again carries the same ``alert_id``, on which the rows
collapse. A record that is not an alert raises ``ValueError`` (the sink dead-letters it).

>>> record = (b'{"alert_id":"a1","ts":"2026-01-01T00:00:00Z","kind":"budget_threshold",'
...           b'"scope":"tenant:acme","severity":"warning","observed":8.0,"expected":10.0,'
...           b'"score":0.8,"message":"80% of the day budget","details":{"alert_at":0.8}}')
>>> row = msgspec.json.decode(alert_row(record))
>>> row["alert_id"], row["kind"], row["driver"], row["details"]
('a1', 'budget_threshold', None, '{"alert_at":0.8}')
>>> alert_row(b'{"alert_id":"a1","kind":"gossip"}')  # doctest: +ELLIPSIS
Traceback (most recent call last):
ValueError: not an alert: ... validation errors for Alert...
"""

from __future__ import annotations

from datetime import datetime

import msgspec
from pydantic import ValidationError

from prsm_events.events.alerts import Alert

__all__ = ["ALERT_COLUMNS", "AlertRow", "alert_row"]


class AlertRow(msgspec.Struct):
    """One ``alerts`` table row: its columns in insert order."""

    alert_id: str
    ts: datetime
    kind: str
    scope: str
    severity: str
    observed: float
    expected: float
    score: float
    message: str
    period: str | None
    driver: str | None
    details: str
    """The alert's details, as JSON."""


ALERT_COLUMNS: tuple[str, ...] = AlertRow.__struct_fields__

_encode = msgspec.json.Encoder().encode


def alert_row(value: bytes | None) -> bytes:
    """The NDJSON row of the alert record ``value`` (read with the contract, ``Alert``)."""
    try:
        a = Alert.model_validate_json(value or b"")
    except ValidationError as exc:
        raise ValueError(f"not an alert: {exc}") from None
    row = AlertRow(a.alert_id, a.ts, a.kind, a.scope, a.severity, a.observed, a.expected,
                   a.score, a.message, a.period, a.driver, _encode(a.details).decode())
    return _encode(row) + b"\n"
