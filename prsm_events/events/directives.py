"""Throttle directives on the compacted ``policies`` topic, and how a request matches them.

A directive's record key is ``<scope>|<origin>`` (origin: ``budget:<period>``,
``pacing:<period>`` or ``anomaly``), so directives of different origins on one scope coexist; a null
value lifts it. ``block`` stops every matching request until ``until``; ``throttle`` lets
through the share ``allow_fraction`` (chosen by request id, so a retry gets the same answer).

>>> d = ThrottleDirective(scope="tenant:acme", origin="budget:day", action="block",
...                       until="2026-01-02T00:00:00Z", reason="budget_exhausted",
...                       message="daily budget spent", ts="2026-01-01T12:00:00Z")
>>> d.key
'tenant:acme|budget:day'
>>> from datetime import datetime, UTC
>>> d.blocks("req-1", datetime(2026, 1, 1, 13, tzinfo=UTC))
True
>>> d.blocks("req-1", datetime(2026, 1, 2, 0, 1, tzinfo=UTC))   # expired
False
"""

from __future__ import annotations

import zlib
from datetime import datetime
from typing import Literal

from pydantic import Field

from prsm_events.events.usage import EventModel, UtcTimestamp

__all__ = ["ThrottleDirective"]


class ThrottleDirective(EventModel):
    scope: str
    origin: str = Field(description="budget:<period> | pacing:<period> | anomaly")
    action: Literal["block", "throttle"]
    allow_fraction: float = Field(0.0, ge=0, le=1, description="throttle: share let through.")
    until: UtcTimestamp | None = Field(None, description="Lifted at this time (None: until "
                                       "a tombstone).")
    reason: str
    message: str
    ts: UtcTimestamp
    details: dict[str, float | str | None] = Field(default_factory=dict)
    priorities: tuple[str, ...] | None = Field(
        None, description="Only requests of these priorities are stopped (None: all); pacing "
        "never stops high or critical requests.")

    @property
    def key(self) -> str:
        return f"{self.scope}|{self.origin}"

    def active(self, now: datetime) -> bool:
        return self.until is None or now < self.until

    def blocks(self, request_id: str | None, now: datetime, priority: str = "normal") -> bool:
        """True when this directive stops the request at ``now``."""
        if not self.active(now):
            return False
        if self.priorities is not None and priority not in self.priorities:
            return False
        if self.action == "block":
            return True
        if request_id is None:  # no id to spread on: only a full pass-through lets it by
            return self.allow_fraction < 1.0
        return zlib.crc32(request_id.encode()) / 2**32 >= self.allow_fraction
