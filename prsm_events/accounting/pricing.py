"""Price a usage event: keep a client-given cost, else compute it from the catalog.

>>> from prsm_events.events.usage import UsageEvent
>>> cat = Catalog.shipped()
>>> e = UsageEvent(event_id="e1", ts="2026-01-01T00:00:00Z", tenant="acme", service="chat",
...                model="claude-sonnet-4", input_tokens=10_000, cached_input_tokens=8_000,
...                output_tokens=1_000)
>>> p = price_usage(e, cat)
>>> round(p.cost_usd, 6), p.priced_by
(0.0234, 'catalog:2025-08-15.2')
>>> [type(p).__name__ for p in price_usages([e, e.model_copy(update={"model": "nope"})], cat)]
['PricedUsage', 'InvalidEvent']
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from prsm_events.accounting.catalog import Catalog, token_cost
from prsm_events.errors import InvalidEvent
from prsm_events.events.fast_path import Usage

__all__ = ["PricedUsage", "price_usage", "price_usages"]

CLIENT_PRICED = "client"


class PricedUsage(msgspec.Struct, frozen=True, gc=False):
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
    [priced] = price_usages([event], catalog)
    if isinstance(priced, InvalidEvent):
        raise priced
    return priced


def price_usages(events: Sequence[Usage], catalog: Catalog
                 ) -> list[PricedUsage | InvalidEvent]:
    """Each event priced, or the ``InvalidEvent`` that says why it cannot be (each
    (model, provider) of the events looked up in the catalog once)."""
    entries: dict[tuple[str | None, str | None], _Entry] = {}
    priced_by = catalog.priced_by
    out: list[PricedUsage | InvalidEvent] = []
    append = out.append
    for event in events:
        asked = (event.model, event.provider)
        found = entries.get(asked)
        if found is None:
            found = entries[asked] = _entry(catalog, *asked)
        provider, rates = found
        if event.cost_usd is not None:
            append(PricedUsage(event, event.cost_usd, CLIENT_PRICED, provider,
                               event.ts.timestamp()))
        elif rates is None:
            append(_unpriced(event, catalog))
        else:
            cost = token_cost(rates, event.input_tokens, event.cached_input_tokens,
                              event.cache_write_input_tokens,
                              event.output_tokens + event.reasoning_tokens)
            append(PricedUsage(event, cost, priced_by, provider, event.ts.timestamp()))
    return out


_Entry = tuple[str, tuple[float, float, float, float] | None]
"""The provider of a (model, provider)'s events, and the catalog's rates (None: unpriced)."""


def _entry(catalog: Catalog, model: str | None, provider: str | None) -> _Entry:
    entry = catalog.lookup(model, provider) if model else None
    return provider or (entry.provider if entry else ""), None if entry is None else entry.rates()


def _unpriced(event: Usage, catalog: Catalog) -> InvalidEvent:
    """Why an event without a cost cannot be priced."""
    if event.model is None:
        return InvalidEvent("missing_cost", "event has neither cost_usd nor a model to price it")
    where = f" from provider '{event.provider}'" if event.provider else ""
    return InvalidEvent(
        "unknown_model",
        f"model '{event.model}'{where} is not in catalog {catalog.version}; "
        "send cost_usd or load a catalog that prices it",
    )
