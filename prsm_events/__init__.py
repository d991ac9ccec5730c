"""prsm-events: real-time AI spend control on Kafka.

Pure domain logic (models, catalog, pricing, spend windows, ingest) and the client SDK.
"""

from prsm_events.catalog import Catalog, ModelPrice
from prsm_events.errors import InvalidEvent, PrsmError
from prsm_events.models import UsageEvent
from prsm_events.publisher import SyncUsagePublisher, UsagePublisher
from prsm_events.settings import Settings

__all__ = [
    "Catalog",
    "InvalidEvent",
    "ModelPrice",
    "PrsmError",
    "Settings",
    "SyncUsagePublisher",
    "UsageEvent",
    "UsagePublisher",
]
