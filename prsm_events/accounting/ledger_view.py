"""A budget's figures at one instant: what a decision is made from and reports.

>>> from prsm_events.accounting.budgets import Budget
>>> b = Budget(scope="tenant:acme", period="day", limit_usd=10)
>>> v = BudgetView(b, now=1000.0, spent=6 * NANO, reserved=3 * NANO, start=0.0, end=86400.0)
>>> v.remaining_usd, v.fits(NANO), v.fits(2 * NANO)
(1.0, True, False)
>>> v.seconds_until_fits(2 * NANO)   # reservations block: settle or expire soon
(None, 'reservations')
>>> v.seconds_until_fits(5 * NANO)   # settled spend blocks: the period must roll
(85400.0, 'period_end')
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

import msgspec

from prsm_events.accounting.budgets import Budget
from prsm_events.accounting.periods import ROLLING

__all__ = ["NANO", "BudgetView", "usd"]

NANO = 1_000_000_000


def usd(nano: int) -> float:
    """``nano`` nano-USD in USD: the float nearest the exact figure (which has nine decimal
    places), what ``round(nano / NANO, 9)`` gives, without its cost: an integer divided by
    10^9 is rounded once, to the float nearest the exact quotient, and no other float rounds
    to nine places nearer it (``tests/unit/accounting/test_ledger_view.py`` checks).

    >>> usd(7_500_000), usd(-1), usd(10**18 + 1)
    (0.0075, -1e-09, 1000000000.0)
    """
    return nano / NANO


@lru_cache(maxsize=1024)
def _utc_text(epoch: float) -> str:
    """A period's end as its figures write it (few distinct values: cached)."""
    return datetime.fromtimestamp(epoch, UTC).isoformat()


class BudgetView(msgspec.Struct, frozen=True):
    """Spent and reserved nano-USD of a budget's current period (or rolling window)."""

    budget: Budget
    now: float
    spent: int
    reserved: int
    start: float
    end: float
    releases: tuple[tuple[float, int], ...] = ()
    """Rolling windows: (time a bucket leaves the window, its amount), oldest first."""
    allotment: int | None = None
    """A global budget's admission view: the allotment of the request's partition, which
    its row may hold (``accounting.escrow``); None: the whole limit."""
    whole: BudgetView | None = None
    """A global budget's admission view: the budget over every partition as known (its
    figures are what a decision reports)."""
    share: float = 1.0
    """A global budget read over every partition by a worker that owns some of them: the
    part of ``spent`` its own partitions hold (when they hold none, the part of the
    partitions it owns). A forecast of its spend here, scaled by ``1 / share``, is one of
    the whole budget's."""

    @property
    def limit(self) -> int:
        if self.allotment is not None:
            return self.allotment
        return self.budget.limit_nano

    @property
    def remaining(self) -> int:
        return self.limit - self.spent - self.reserved

    @property
    def spent_usd(self) -> float:
        return usd(self.spent)

    @property
    def reserved_usd(self) -> float:
        return usd(self.reserved)

    @property
    def remaining_usd(self) -> float:
        return usd(self.remaining)

    @property
    def rolling(self) -> bool:
        return self.budget.period in ROLLING

    def holding(self, amount: int) -> BudgetView:
        """The same view with ``amount`` more reserved."""
        if self.whole is not None:
            return msgspec.structs.replace(self, reserved=self.reserved + amount,
                                           whole=self.whole.holding(amount))
        return msgspec.structs.replace(self, reserved=self.reserved + amount)

    @property
    def room(self) -> int | None:
        """A global budget's admission view: what the budget has left over every partition
        as known, which moves of allotment could bring to this partition; None otherwise."""
        return None if self.whole is None else self.whole.remaining

    def fits(self, amount: int) -> bool:
        """The admission rule: spent + reserved + amount <= limit."""
        return self.spent + self.reserved + amount <= self.limit

    def exhausted(self, below: float) -> bool:
        """Settled spend leaves less than ``below`` (a fraction) of the limit."""
        return self.limit - self.spent <= below * self.limit

    def seconds_until_fits(self, amount: int) -> tuple[float | None, str]:
        """When ``amount`` fits at the earliest if nothing else is spent, and why.

        ``(0, 'now')`` if it fits, ``(None, 'reservations')`` if only outstanding
        reservations stand in the way, ``(None, 'never')`` when it exceeds the limit itself.
        """
        if self.fits(amount):
            return 0.0, "now"
        if amount > self.limit:
            return None, "never"
        excess = self.spent + amount - self.limit
        if excess <= 0:
            return None, "reservations"
        if not self.rolling:
            return max(0.0, self.end - self.now), "period_end"
        freed = 0
        for at, bucket in self.releases:
            freed += bucket
            if freed >= excess:
                return max(0.0, at - self.now), "window"
        return float(ROLLING[self.budget.period]), "window"

    def figures(self) -> dict[str, object]:
        """The figures a decision or report carries (a global budget: over every
        partition as known)."""
        if self.whole is not None:
            return self.whole.figures()
        budget, spent, reserved = self.budget, self.spent, self.reserved
        return {
            "scope": budget.scope,
            "period": budget.period,
            "limit_usd": budget.limit_usd,
            "spent_usd": usd(spent),
            "reserved_usd": usd(reserved),
            "remaining_usd": usd(self.limit - spent - reserved),
            "period_end": None if budget.period in ROLLING else _utc_text(self.end),
            "hard": budget.hard,
        }

    def run_rate_forecast(self) -> dict[str, object] | None:
        """Calendar periods: period-end spend and exhaustion time at the run rate so far."""
        if self.whole is not None:
            return self.whole.run_rate_forecast()
        elapsed = self.now - self.start
        if self.rolling or elapsed <= 0:
            return None
        rate = self.spent / elapsed
        projected = self.spent + rate * max(0.0, self.end - self.now)
        exhaustion = None
        if rate > 0 and self.spent < self.limit:
            at = self.now + (self.limit - self.spent) / rate
            if at < self.end:
                exhaustion = datetime.fromtimestamp(at, UTC).isoformat()
        return {"method": "run_rate", "period_end_spend_usd": usd(round(projected)),
                "exhaustion_ts": exhaustion}
