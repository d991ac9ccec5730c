"""SDK: a local, always-current view of the throttle directives on ``policies``.

A gateway checks each request locally, without a round trip::

    async with ThrottleCache(Settings()) as cache:
        verdict = cache.check("acme", service="chat", model="gpt-4o", request_id=rid)
        if not verdict.allowed:
            ...  # answer 429 with verdict.retry_after_s

``check`` is synchronous and touches only memory; the cache follows the compacted topic
in the background (a directive shows up within about ``fetch_max_wait_ms``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from prsm_events.accounting.scopes import scopes_of
from prsm_events.events.directives import ThrottleDirective
from prsm_events.kafka.compacted_view import CompactedView
from prsm_events.sdk.client_lifecycle import AsyncClient
from prsm_events.settings import Settings

__all__ = ["ThrottleCache", "ThrottleCheck"]


@dataclass(frozen=True, slots=True)
class ThrottleCheck:
    allowed: bool
    directive: ThrottleDirective | None = None
    """The directive that stops the request (the one lifted last, when several do)."""
    retry_after_s: float | None = None


class ThrottleCache(AsyncClient):
    """Directives by key, from the ``policies`` topic (see module doc)."""

    def __init__(self, settings: Settings | None = None, *, fetch_max_wait_ms: int = 100) -> None:
        self.settings = settings or Settings()
        self.directives: dict[str, ThrottleDirective] = {}
        self.bad_records = 0
        self._view = CompactedView(self.settings.kafka, self.settings.topic("policies"),
                                   self._apply, fetch_max_wait_ms=fetch_max_wait_ms)

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            raise ValueError("policy record without a key")
        if value is None:
            self.directives.pop(key.decode(), None)
            return
        directive = ThrottleDirective.model_validate_json(value)
        self.directives[directive.key] = directive

    async def start(self, timeout: float = 30.0) -> None:
        """Start following the topic; return once it was read to its current end."""
        await self._view.start()
        await self._view.wait_caught_up(timeout)

    async def stop(self) -> None:
        await self._view.stop()

    def check(
        self,
        tenant: str,
        service: str | None = None,
        *,
        team: str | None = None,
        api_key_id: str | None = None,
        model: str | None = None,
        request_id: str | None = None,
        priority: str = "normal",
        now: datetime | None = None,
    ) -> ThrottleCheck:
        """Whether a request of this tenant/service/... may go ahead now."""
        now = now or datetime.now(UTC)
        scopes = set(scopes_of(tenant, team=team, service=service, api_key_id=api_key_id,
                               model=model))
        stopping = [d for d in self.directives.values()
                    if d.scope in scopes and d.blocks(request_id, now, priority)]
        if not stopping:
            return ThrottleCheck(True)
        last = max(stopping, key=lambda d: d.until or datetime.max.replace(tzinfo=UTC))
        retry = None if last.until is None else (last.until - now).total_seconds()
        return ThrottleCheck(False, last, retry)
