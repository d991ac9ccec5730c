"""prsm-events: real-time AI spend control on Kafka.

Pure domain logic (models, catalog, pricing, spend windows, ingest, budgets, ledger, decision
policy) and the client SDK (UsagePublisher, DecisionClient, ThrottleCache).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prsm_events.budgets import Budget
    from prsm_events.catalog import Catalog, ModelPrice
    from prsm_events.decision import Action, Decision
    from prsm_events.decision_client import DecisionClient
    from prsm_events.directives import ThrottleDirective
    from prsm_events.errors import InvalidEvent, PrsmError
    from prsm_events.models import UsageEvent
    from prsm_events.publisher import SyncUsagePublisher, UsagePublisher
    from prsm_events.request import Priority, RequestEvent
    from prsm_events.settings import Settings
    from prsm_events.throttle_cache import ThrottleCache, ThrottleCheck

_HOMES = {
    "Budget": "budgets", "Catalog": "catalog", "ModelPrice": "catalog", "Action": "decision",
    "Decision": "decision", "DecisionClient": "decision_client",
    "ThrottleDirective": "directives", "InvalidEvent": "errors", "PrsmError": "errors",
    "UsageEvent": "models", "SyncUsagePublisher": "publisher", "UsagePublisher": "publisher",
    "Priority": "request", "RequestEvent": "request", "Settings": "settings",
    "ThrottleCache": "throttle_cache", "ThrottleCheck": "throttle_cache",
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
