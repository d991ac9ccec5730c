"""prsm-events: real-time AI spend control on Kafka.

Pure domain logic (models, catalog, pricing, spend windows, ingest, budgets, ledger, decision
policy) and the client SDK (UsagePublisher, DecisionClient, ThrottleCache).
"""

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
