"""Model and provider choice under cost, quality and capability constraints (pure).

``cheaper_model`` picks, among catalog models that meet the quality floor and the required
capabilities, cost less than the requested one, stay within the per-request ceiling, run at
an available provider and fit the budgets, the one with the best performance/cost score
(quality per USD; the cheaper one on a tie). ``other_provider`` looks for another provider
of the same model by availability per USD, allowing ``overrun`` above the ceiling.

>>> from prsm_events.accounting.catalog import Catalog
>>> cat = Catalog.shipped()
>>> ask = Ask(input_tokens=2000, output_tokens=500, quality_floor=0.8,
...           capabilities=("tools", "vision"))
>>> pick = cheaper_model(cat, cat.lookup("gpt-5"), ask, lambda p, m: 1.0, lambda c: True)
>>> pick.entry.model, pick.entry.quality >= 0.8
('gpt-5-mini', True)
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from prsm_events.accounting.catalog import Catalog, ModelPrice
from prsm_events.accounting.ledger import to_nano

__all__ = ["Ask", "Offer", "cheaper_model", "estimate", "other_provider"]

Availability = Callable[[str, str], float]
Fits = Callable[[int], bool]


class Ask(msgspec.Struct, frozen=True):
    """What a request needs from a model."""

    input_tokens: int
    output_tokens: int
    quality_floor: float = 0.0
    capabilities: tuple[str, ...] = ()
    ceiling: int | None = None
    """Per-request cost ceiling in nano-USD (max_cost_usd)."""
    min_availability: float = 0.5


class Offer(msgspec.Struct, frozen=True):
    """A model at a provider, with the request's estimated cost there (nano-USD)."""

    entry: ModelPrice
    cost: int
    availability: float

    @property
    def score(self) -> float:
        """The performance/cost score: quality per nano-USD."""
        return self.entry.quality / max(self.cost, 1)


def estimate(entry: ModelPrice, ask: Ask) -> int:
    """Estimated cost of the request at ``entry`` in nano-USD (rounded up)."""
    return to_nano(entry.cost(input_tokens=ask.input_tokens, output_tokens=ask.output_tokens))


def cheaper_model(
    catalog: Catalog, requested: ModelPrice, ask: Ask, availability: Availability, fits: Fits
) -> Offer | None:
    """The best-scoring cheaper model that meets every constraint, or None."""
    own = estimate(requested, ask)
    best: Offer | None = None
    for entry in catalog.entries:
        if entry.model == requested.model or entry.quality < ask.quality_floor:
            continue
        if not set(ask.capabilities) <= set(entry.capabilities):
            continue
        cost = estimate(entry, ask)
        if cost >= own or (ask.ceiling is not None and cost > ask.ceiling):
            continue
        up = availability(entry.provider, entry.model)
        if up < ask.min_availability or not fits(cost):
            continue
        offer = Offer(entry, cost, up)
        if best is None or (offer.score, -offer.cost) > (best.score, -best.cost):
            best = offer
    return best


def other_provider(
    catalog: Catalog, requested: ModelPrice, ask: Ask, availability: Availability,
    fits: Fits, overrun: float = 0.10,
) -> Offer | None:
    """Another provider of the requested model (availability per USD), or None.

    The ceiling is stretched by ``overrun`` (10%: the seed's budget extension); budgets are
    never stretched.
    """
    ceiling = None if ask.ceiling is None else int(ask.ceiling * (1 + overrun))
    best: Offer | None = None
    for entry in catalog.offerings(requested.model):
        if entry.provider == requested.provider:
            continue
        cost = estimate(entry, ask)
        up = availability(entry.provider, entry.model)
        if up < ask.min_availability or (ceiling is not None and cost > ceiling):
            continue
        if not fits(cost):
            continue
        offer = Offer(entry, cost, up)
        if best is None or up / max(cost, 1) > best.availability / max(best.cost, 1):
            best = offer
    return best
