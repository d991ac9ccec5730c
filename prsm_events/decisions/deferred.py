"""Requests deferred recently, so that a gateway's retry of one (the same ``request_id``)
is not counted as new demand: pacing compares demand with spend, and a request asked for
three times is still one request's worth of demand.

>>> d = DeferredRequests(ttl_s=3600.0)
>>> d.retry("acme", "r1", now=0.0)        # first time: new demand
False
>>> d.note("acme", "r1", deferred=True, now=0.0)
>>> d.retry("acme", "r1", now=600.0)      # asked again after its retry_after_s
True
>>> d.note("acme", "r1", deferred=False, now=600.0)   # served (or refused): forgotten
>>> d.retry("acme", "r1", now=700.0), len(d)
(False, 0)
"""

from __future__ import annotations

__all__ = ["DeferredRequests"]


class DeferredRequests:
    def __init__(self, ttl_s: float = 86400.0, max_entries: int = 1_000_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._until: dict[tuple[str, str], float] = {}
        """(tenant, request id) -> when it is forgotten; in the order they were noted."""

    def __len__(self) -> int:
        return len(self._until)

    def retry(self, tenant: str, request_id: str, now: float) -> bool:
        """True if this request was deferred before (within ``ttl_s``)."""
        return self._until.get((tenant, request_id), -1.0) > now

    def note(self, tenant: str, request_id: str, deferred: bool, now: float) -> None:
        """Remember a deferred request (until ``ttl_s`` from now), forget a decided one."""
        key = (tenant, request_id)
        self._until.pop(key, None)
        if deferred:
            self._until[key] = now + self.ttl_s
        while self._until:  # oldest first (one ttl for all): stop at the first live one
            oldest = next(iter(self._until))
            if self._until[oldest] > now and len(self._until) <= self.max_entries:
                break
            del self._until[oldest]
