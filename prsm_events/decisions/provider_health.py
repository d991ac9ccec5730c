"""Provider availability and latency per (provider, model), learned online from usage events.

Each outcome counts with a weight that halves every ``half_life_s``, so the figures follow
the recent past. Availability is the decayed share of ``ok`` outcomes, with one prior success
so that an unseen provider counts as available.

>>> h = ProviderHealth(half_life_s=60)
>>> for i in range(3):
...     h.observe("openai", "gpt-4o", "ok", 800.0, ts=100.0 + i)
>>> h.observe("openai", "gpt-4o", "rate_limited", None, ts=103.0)
>>> round(h.availability("openai", "gpt-4o", now=103.0), 2)
0.8
>>> round(h.availability("openai", "gpt-4o", now=103.0 + 3600), 2)   # an hour later: forgotten
1.0
>>> h.availability("azure", "gpt-4o", now=0.0)
1.0
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ProviderHealth", "ProviderStats"]

FAILURES = ("error", "timeout", "rate_limited")


@dataclass(slots=True)
class ProviderStats:
    ts: float = 0.0
    total: float = 0.0
    ok: float = 0.0
    failures: dict[str, float] = field(default_factory=lambda: dict.fromkeys(FAILURES, 0.0))
    latency_ms: float | None = None


class ProviderHealth:
    """Decaying outcome counts and latency (EWMA) per (provider, model)."""

    def __init__(self, half_life_s: float = 300.0, prior_ok: float = 1.0) -> None:
        self.half_life_s = half_life_s
        self.prior_ok = prior_ok
        self.stats: dict[tuple[str, str], ProviderStats] = {}

    def _decayed(self, stats: ProviderStats, now: float) -> float:
        factor: float = 0.5 ** (max(0.0, now - stats.ts) / self.half_life_s)
        return factor

    def observe(
        self, provider: str, model: str, status: str, latency_ms: float | None, ts: float
    ) -> None:
        self.observe_many(provider, model, [(status, latency_ms, ts)])

    def observe_many(self, provider: str, model: str,
                     outcomes: Iterable[tuple[str, float | None, float]]) -> None:
        """``observe`` each (status, latency_ms, ts), in order (the same figures)."""
        stats = self.stats.get((provider, model))
        half_life_s = self.half_life_s
        for status, latency_ms, ts in outcomes:
            if stats is None:
                stats = self.stats[(provider, model)] = ProviderStats(ts=ts)
            # ``_decayed`` (inline: once per event): nothing to decay at or before stats.ts
            decay = 0.5 ** ((ts - stats.ts) / half_life_s) if ts > stats.ts else 1.0
            if decay != 1.0:  # (times 1.0 changes nothing)
                stats.total *= decay
                stats.ok *= decay
                failures = stats.failures
                for kind in FAILURES:
                    failures[kind] *= decay
            if ts > stats.ts:
                stats.ts = ts
            stats.total += 1.0
            if status == "ok":
                stats.ok += 1.0
                if latency_ms is not None:
                    prev = stats.latency_ms
                    stats.latency_ms = (latency_ms if prev is None
                                        else 0.9 * prev + 0.1 * latency_ms)
            elif status in stats.failures:
                stats.failures[status] += 1.0

    def availability(self, provider: str, model: str, now: float) -> float:
        stats = self.stats.get((provider, model))
        if stats is None:
            return 1.0
        decay = self._decayed(stats, now)
        share: float = (stats.ok * decay + self.prior_ok) / (stats.total * decay + self.prior_ok)
        return share

    def snapshot(self, now: float) -> list[dict[str, Any]]:
        """Current figures of every (provider, model) seen, for the HTTP API."""
        out = []
        for (provider, model), stats in sorted(self.stats.items()):
            decay = self._decayed(stats, now)
            total = stats.total * decay
            out.append({
                "provider": provider, "model": model,
                "availability": round(self.availability(provider, model, now), 4),
                "weight": round(total, 3),
                **{f"{k}_share": round(v * decay / total, 4) if total else 0.0
                   for k, v in stats.failures.items()},
                "latency_ms": None if stats.latency_ms is None else round(stats.latency_ms, 1),
            })
        return out
