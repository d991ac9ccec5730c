"""prsm-events: real-time AI spend control on Kafka.

Pure domain logic (models, catalog, pricing, spend windows, ingest, budgets, ledger, decision
policy) and the client SDK (UsagePublisher, DecisionClient, ThrottleCache).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prsm_events.accounting.budgets import Budget
    from prsm_events.accounting.catalog import Catalog, ModelPrice
    from prsm_events.errors import InvalidEvent, PrsmError
    from prsm_events.events.decision import Action, Decision
    from prsm_events.events.directives import ThrottleDirective
    from prsm_events.events.request import Priority, RequestEvent
    from prsm_events.events.usage import UsageEvent
    from prsm_events.sdk.decision_client import DecisionClient
    from prsm_events.sdk.publisher import SyncUsagePublisher, UsagePublisher
    from prsm_events.sdk.throttle_cache import ThrottleCache, ThrottleCheck
    from prsm_events.settings import Settings

_HOMES = {
    "Budget": "accounting.budgets", "Catalog": "accounting.catalog",
    "ModelPrice": "accounting.catalog", "Action": "events.decision",
    "Decision": "events.decision", "DecisionClient": "sdk.decision_client",
    "ThrottleDirective": "events.directives", "InvalidEvent": "errors", "PrsmError": "errors",
    "UsageEvent": "events.usage", "SyncUsagePublisher": "sdk.publisher",
    "UsagePublisher": "sdk.publisher", "Priority": "events.request",
    "RequestEvent": "events.request", "Settings": "settings",
    "ThrottleCache": "sdk.throttle_cache", "ThrottleCheck": "sdk.throttle_cache",
}


def __getattr__(name: str) -> Any:
    """Load the SDK's names on first use: ``prsm_events.scoring`` (NumPy/CuPy only) imports
    without pydantic or Kafka clients, e.g. on a bare GPU machine."""
    module = _HOMES.get(name)
    if module is None:
        raise AttributeError(f"module 'prsm_events' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"prsm_events.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "Action",
    "Budget",
    "Catalog",
    "Decision",
    "DecisionClient",
    "InvalidEvent",
    "ModelPrice",
    "Priority",
    "PrsmError",
    "RequestEvent",
    "Settings",
    "SyncUsagePublisher",
    "ThrottleCache",
    "ThrottleCheck",
    "ThrottleDirective",
    "UsageEvent",
    "UsagePublisher",
]
