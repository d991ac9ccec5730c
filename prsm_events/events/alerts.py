"""Alerts on the ``alerts`` topic: budget thresholds, forecast overruns and spend anomalies.

>>> a = Alert(alert_id="tenant:acme|month|0.8|2026-01-01", ts="2026-01-20T00:00:00Z",
...           kind="budget_threshold", scope="tenant:acme", severity="warning",
...           observed=812.0, expected=800.0, score=0.812, message="80% of the month spent")
>>> a.kind
'budget_threshold'
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from prsm_events.events.usage import EventModel, UtcTimestamp

__all__ = ["Alert"]


class Alert(EventModel):
    alert_id: str = Field(description="Stable per occurrence (re-sends carry the same id).")
    ts: UtcTimestamp
    kind: Literal["anomaly", "budget_threshold", "forecast_overrun"]
    scope: str
    severity: Literal["info", "warning", "high", "critical"]
    observed: float
    expected: float
    score: float
    message: str
    period: str | None = None
    driver: str | None = Field(
        None, description="anomaly: the scope (service, model or api key) carrying the excess.")
    details: dict[str, float | str | None] = Field(default_factory=dict)
