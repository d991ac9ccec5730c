"""The events and figures tests build, defined once: a usage event, a request, a budget view.

Every field can be overridden; the defaults are a small, valid, priced call.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from prsm_events.accounting.budgets import Budget
from prsm_events.accounting.ledger_view import NANO, BudgetView
from prsm_events.events.request import RequestEvent
from prsm_events.events.usage import UsageEvent

__all__ = ["DAY_S", "request", "usage", "view"]

DAY_S = 86400.0


def usage(event_id: str | None = None, tenant: str = "acme", **fields: Any) -> UsageEvent:
    """A usage event: gpt-4o-mini, 1,000 input and 100 output tokens, now."""
    return UsageEvent.model_validate({
        "event_id": event_id or uuid.uuid4().hex, "ts": datetime.now(UTC), "tenant": tenant,
        "service": "chat", "model": "gpt-4o-mini", "input_tokens": 1000,
        "output_tokens": 100, **fields})


def request(request_id: str | None = None, tenant: str = "acme", **fields: Any) -> RequestEvent:
    """A request: gpt-4o, 1,000 input and 500 output tokens estimated, now."""
    return RequestEvent.model_validate({
        "request_id": request_id or f"{tenant}-{uuid.uuid4().hex[:12]}",
        "ts": datetime.now(UTC), "tenant": tenant, "service": "chat", "model": "gpt-4o",
        "est_input_tokens": 1000, "est_output_tokens": 500, **fields})


def view(budget: Budget, spent: float = 0.0, reserved: float = 0.0, *, now: float = 100.0,
         start: float = 0.0, end: float | None = None, releases: tuple[Any, ...] = ()
         ) -> BudgetView:
    """``budget``'s figures at ``now`` (USD amounts; by default 100 s into a period that
    starts at 0 and ends a day after ``start``)."""
    return BudgetView(budget, now, round(spent * NANO), round(reserved * NANO), start,
                      start + DAY_S if end is None else end, releases)
