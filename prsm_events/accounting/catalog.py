"""Model catalog: list prices and quality per model, and the cost of a usage event.

Prices are USD per million tokens. Cached input is billed at the cached rate, cache writes at
the cache-write rate, and reasoning tokens reported apart from output at the output rate.

>>> cat = Catalog.shipped()
>>> price = cat.lookup("gpt-4o")
>>> (price.provider, price.input, price.output)
('openai', 2.5, 10.0)
>>> round(price.cost(input_tokens=1_000_000, output_tokens=100_000), 6)
3.5
>>> cat.lookup("gpt-4o-2024-08-06").model   # dated snapshots resolve to their family
'gpt-4o'
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from prsm_events.errors import CatalogError

__all__ = ["Catalog", "ModelPrice", "token_cost"]

_LOOKUPS_KEPT = 4096

_DATE_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8})$")
_PER_TOKEN = 1e-6


class ModelPrice(BaseModel):
    """One catalog entry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: str = Field(min_length=1, max_length=128)
    model: str = Field(min_length=1, max_length=128)
    aliases: tuple[str, ...] = ()
    input: float = Field(ge=0, description="USD per 1M uncached input tokens.")
    cached_input: float | None = Field(None, ge=0, description="USD per 1M cache-read tokens.")
    cache_write_input: float | None = Field(None, ge=0, description="USD per 1M cache writes.")
    output: float = Field(ge=0, description="USD per 1M output (and reasoning) tokens.")
    quality: float = Field(ge=0, le=1)
    capabilities: tuple[str, ...] = ()

    def cost(
        self,
        *,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cached_input_tokens: int = 0,
        cache_write_input_tokens: int = 0,
        reasoning_tokens: int = 0,
    ) -> float:
        """USD cost of the given token counts (cached parts are included in input_tokens)."""
        return token_cost(self.rates(), input_tokens, cached_input_tokens,
                          cache_write_input_tokens, output_tokens + reasoning_tokens)

    def rates(self) -> tuple[float, float, float, float]:
        """USD per 1M uncached input, cache-read, cache-write and output tokens (a rate the
        catalog leaves out is the input rate)."""
        return (self.input, self.input if self.cached_input is None else self.cached_input,
                self.input if self.cache_write_input is None else self.cache_write_input,
                self.output)


def token_cost(rates: tuple[float, float, float, float], input_tokens: int,
               cached_input_tokens: int, cache_write_input_tokens: int,
               output_tokens: int) -> float:
    """USD cost of token counts at ``rates`` (``ModelPrice.rates``); ``output_tokens``
    includes reasoning tokens reported apart.

    >>> token_cost((2.5, 1.25, 2.5, 10.0), 1_000_000, 500_000, 0, 100_000)
    2.875
    """
    plain_rate, cached_rate, write_rate, output_rate = rates
    micro = ((input_tokens - cached_input_tokens - cache_write_input_tokens) * plain_rate
             + cached_input_tokens * cached_rate + cache_write_input_tokens * write_rate
             + output_tokens * output_rate)
    return micro * _PER_TOKEN


class CatalogFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str = Field(min_length=1, max_length=128)
    prices_read_on: str
    currency: str = "USD"
    unit: str = "USD per 1,000,000 tokens"
    price_source: str = ""
    quality_source: str = ""
    models: list[ModelPrice] = Field(min_length=1)


class Catalog:
    """Priced models, looked up by model id (or alias, or a dated snapshot of one)."""

    def __init__(self, data: CatalogFile) -> None:
        self.version = data.version
        self.prices_read_on = data.prices_read_on
        self.priced_by = f"catalog:{self.version}"
        """What an event priced by this catalog says priced it."""
        self.entries: tuple[ModelPrice, ...] = tuple(data.models)
        self._by_name: dict[str, ModelPrice] = {}
        self._by_provider: dict[tuple[str, str], ModelPrice] = {}
        self._offerings: dict[str, list[ModelPrice]] = {}
        for entry in self.entries:
            self._offerings.setdefault(entry.model, []).append(entry)
            for name in (entry.model, *entry.aliases):
                self._by_name.setdefault(name, entry)
                self._by_provider[(entry.provider, name)] = entry
        self._found: dict[tuple[str, str | None], ModelPrice | None] = {}
        """``lookup``'s answers, per (model, provider) asked (a hot path: once an event)."""

    @classmethod
    def from_json(cls, raw: str | bytes) -> Catalog:
        try:
            return cls(CatalogFile.model_validate_json(raw))
        except ValidationError as exc:
            raise CatalogError(f"invalid catalog: {exc}") from exc

    @classmethod
    def from_path(cls, path: Path) -> Catalog:
        try:
            return cls.from_json(path.read_bytes())
        except OSError as exc:
            raise CatalogError(f"cannot read catalog {path}: {exc}") from exc

    @classmethod
    def shipped(cls) -> Catalog:
        """The catalog that ships with the package."""
        raw = resources.files("prsm_events").joinpath("data/catalog.json").read_bytes()
        return cls.from_json(raw)

    def lookup(self, model: str, provider: str | None = None) -> ModelPrice | None:
        """The entry for a model id, or None when the catalog does not price it."""
        asked = (model, provider)
        try:
            return self._found[asked]
        except KeyError:
            pass
        if len(self._found) >= _LOOKUPS_KEPT:  # model ids come from clients: keep it bounded
            self._found.clear()
        found = self._found[asked] = self._lookup(model, provider)
        return found

    def _lookup(self, model: str, provider: str | None) -> ModelPrice | None:
        for name in (model, _DATE_SUFFIX.sub("", model)):
            if provider is not None:
                hit = self._by_provider.get((provider, name))
                if hit is not None:
                    return hit
            hit = self._by_name.get(name)
            if hit is not None and (provider is None or hit.provider == provider):
                return hit
        return None

    def offerings(self, model: str) -> list[ModelPrice]:
        """Every provider's entry for ``model`` (the catalog's first one first)."""
        entry = self.lookup(model)
        return [] if entry is None else list(self._offerings[entry.model])

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "prices_read_on": self.prices_read_on,
            "models": [e.model_dump(exclude_defaults=True) for e in self.entries],
        }

    def __len__(self) -> int:
        return len(self.entries)

    def __repr__(self) -> str:
        return f"Catalog(version={self.version!r}, models={len(self)})"


def load_catalog(path: Path | None) -> Catalog:
    """The catalog at ``path``, or the shipped one when ``path`` is None."""
    return Catalog.shipped() if path is None else Catalog.from_path(path)

