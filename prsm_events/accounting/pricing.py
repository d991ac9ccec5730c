"""Price a usage event: keep a client-given cost, else compute it from the catalog.

>>> from prsm_events.events.usage import UsageEvent
>>> cat = Catalog.shipped()
>>> e = UsageEvent(event_id="e1", ts="2026-01-01T00:00:00Z", tenant="acme", service="chat",
...                model="claude-sonnet-4", input_tokens=10_000, cached_input_tokens=8_000,
...                output_tokens=1_000)
>>> p = price_usage(e, cat)
>>> round(p.cost_usd, 6), p.priced_by
(0.0234, 'catalog:2025-08-15.2')
"""

from __future__ import annotations

import msgspec

from prsm_events.accounting.catalog import Catalog
from prsm_events.errors import InvalidEvent
from prsm_events.events.fast_path import Usage

__all__ = ["PricedUsage", "price_usage"]

CLIENT_PRICED = "client"


class PricedUsage(msgspec.Struct, frozen=True):
    """An accepted usage event with its final cost and who priced it."""

    event: Usage
    cost_usd: float
    priced_by: str
    """``client`` when the event carried cost_usd, else ``catalog:<version>``."""
    provider: str
    """The event's provider, or the catalog's provider of its model, or ``''``."""
    at: float
    """The event's ``ts`` in epoch seconds (read once: every fold of the event needs it)."""


def price_usage(event: Usage, catalog: Catalog) -> PricedUsage:
    """Return the priced event; raise InvalidEvent when it cannot be priced."""
    entry = catalog.lookup(event.model, event.provider) if event.model else None
    provider = event.provider or (entry.provider if entry else "")
    if event.cost_usd is not None:
        return PricedUsage(event, event.cost_usd, CLIENT_PRICED, provider,
                           event.ts.timestamp())
    if event.model is None:
        raise InvalidEvent("missing_cost", "event has neither cost_usd nor a model to price it")
    if entry is None:
        where = f" from provider '{event.provider}'" if event.provider else ""
        raise InvalidEvent(
            "unknown_model",
            f"model '{event.model}'{where} is not in catalog {catalog.version}; "
            "send cost_usd or load a catalog that prices it",
        )
    cost = entry.cost(
        input_tokens=event.input_tokens,
        output_tokens=event.output_tokens,
        cached_input_tokens=event.cached_input_tokens,
        cache_write_input_tokens=event.cache_write_input_tokens,
        reasoning_tokens=event.reasoning_tokens,
    )
    return PricedUsage(event, cost, catalog.priced_by, provider, event.ts.timestamp())
