"""Budgets: a spend limit on a scope over a period, and the book of budgets in force.

Budgets live on the compacted ``budgets`` topic. A scope may hold several budgets (say
$50/day and $1000/month), so a record's key is ``<scope>|<period>`` (compaction keeps one
record per key; a null value deletes that budget). A request must fit every hard budget of
every scope it falls in.

>>> b = Budget(scope="tenant:acme", period="month", limit_usd=1000, alert_at=(0.5, 0.8))
>>> b.key, b.hard
('tenant:acme|month', True)
>>> book = BudgetBook()
>>> book.apply(b.key.encode(), b.model_dump_json().encode())
>>> [x.key for x in book.applicable(["global", "tenant:acme", "tenant:acme/service:chat"])]
['tenant:acme|month']
>>> book.apply(b"tenant:acme|month", None)          # a tombstone removes it
>>> len(book)
0
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import cached_property
from typing import Annotated

from pydantic import AfterValidator, Field, field_validator, model_validator

from prsm_events.accounting.periods import PERIODS, ROLLING, check_timezone
from prsm_events.accounting.scopes import Scope, scopes_of, tenant_of
from prsm_events.events.usage import EventModel

__all__ = ["Budget", "BudgetBook", "budget_key"]


def _check_scope(text: str) -> str:
    return str(Scope.parse(text))


def _check_period(text: str) -> str:
    if text not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}")
    return text


def budget_key(scope: str, period: str) -> str:
    """The record key of a budget on the budgets topic."""
    return f"{scope}|{period}"


class Budget(EventModel):
    """One budget (the value of a record on the ``budgets`` topic)."""

    scope: Annotated[str, AfterValidator(_check_scope)]
    period: Annotated[str, AfterValidator(_check_period)] = Field(
        description="day | week | month (calendar, in `timezone`) or rolling 1h | 24h | 7d."
    )
    limit_usd: float = Field(ge=0, le=1e12)
    alert_at: tuple[float, ...] = Field(
        (), max_length=10, description="Fractions of the limit that raise a threshold alert."
    )
    hard: bool = Field(True, description="Hard budgets block requests; soft ones only alert.")
    pacing: bool = Field(False, description="Spread the budget over its period (pacing; "
                         "calendar periods only).")
    anomaly_throttle: bool = Field(
        True, description="On a high-severity spend anomaly of this scope, throttle the "
        "dimension that drives it (a directive on the policies topic).")
    timezone: Annotated[str, AfterValidator(check_timezone)] = "UTC"

    @model_validator(mode="after")
    def _check_pacing(self) -> Budget:
        if self.pacing and self.period in ROLLING:
            raise ValueError("pacing needs a calendar period (day, week, month): a rolling "
                             "window has no end to pace toward")
        return self

    @field_validator("alert_at")
    @classmethod
    def _check_alert_at(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(not 0 < f <= 1 for f in value):
            raise ValueError("alert_at fractions must be in (0, 1]")
        return tuple(sorted(set(value)))

    # cached: read for every budget of every decision and tick (a budget is immutable; a
    # changed budget is a new object, from the budgets topic)
    @cached_property
    def key(self) -> str:
        return budget_key(self.scope, self.period)

    @cached_property
    def tenant(self) -> str | None:
        # the scope was checked when the budget was made (a tick reads the tenant of every
        # budget, so it is not parsed again)
        return tenant_of(self.scope)

    @cached_property
    def limit_nano(self) -> int:
        """The limit in integer nano-USD (``ledger_view.NANO``), as the ledger counts."""
        return round(self.limit_usd * 1_000_000_000)


SCOPED_KEPT = 65_536
"""How many distinct (tenant, team, service, api key, model) ``BudgetBook.scoped`` keeps."""


class BudgetBook:
    """The budgets in force, by key, built from the budgets topic (last record wins)."""

    def __init__(self, budgets: Iterable[Budget] = ()) -> None:
        self._by_key: dict[str, Budget] = {}
        self._by_scope: dict[str, list[Budget]] = {}
        self._scoped: dict[tuple[str | None, ...], tuple[tuple[str, ...], tuple[Budget, ...]]]
        self._scoped = {}
        for budget in budgets:
            self.put(budget)

    def scoped(self, tenant: str, *, team: str | None = None, service: str | None = None,
               api_key_id: str | None = None, model: str | None = None
               ) -> tuple[tuple[str, ...], tuple[Budget, ...]]:
        """Every scope an event of these fields counts against (``scopes_of``), and every
        budget on them: kept until the book changes (an event's fields repeat).

        >>> book = BudgetBook([Budget(scope="tenant:acme", period="day", limit_usd=5)])
        >>> scopes, budgets = book.scoped("acme", model="gpt-4o")
        >>> scopes, [b.key for b in budgets]
        (('global', 'tenant:acme', 'tenant:acme/model:gpt-4o'), ['tenant:acme|day'])
        """
        key = (tenant, team, service, api_key_id, model)
        found = self._scoped.get(key)
        if found is None:
            if len(self._scoped) >= SCOPED_KEPT:
                self._scoped.clear()
            scopes = tuple(scopes_of(tenant, team=team, service=service, api_key_id=api_key_id,
                                     model=model))
            found = self._scoped[key] = (scopes, tuple(self.applicable(scopes)))
        return found

    def put(self, budget: Budget) -> None:
        """Add or replace (same key, so same scope) a budget; O(budgets on its scope)."""
        self._scoped.clear()
        old = self._by_key.get(budget.key)
        self._by_key[budget.key] = budget
        on_scope = self._by_scope.setdefault(budget.scope, [])
        if old is None:
            on_scope.append(budget)
        else:
            on_scope[on_scope.index(old)] = budget

    def remove(self, key: str) -> Budget | None:
        self._scoped.clear()
        gone = self._by_key.pop(key, None)
        if gone is not None:
            on_scope = self._by_scope[gone.scope]
            on_scope.remove(gone)
            if not on_scope:
                del self._by_scope[gone.scope]
        return gone

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """Apply one record of the budgets topic; raise ValueError for a malformed one."""
        if key is None:
            raise ValueError("budget record has no key (expected '<scope>|<period>')")
        text = key.decode("utf-8", errors="replace")
        if value is None:
            self.remove(text)
            return
        budget = Budget.model_validate_json(value)
        if budget.key != text:
            raise ValueError(f"budget record key {text!r} does not match its value {budget.key!r}")
        self.put(budget)

    def applicable(self, scopes: Iterable[str]) -> list[Budget]:
        """Every budget on any of ``scopes``."""
        return [b for scope in scopes for b in self._by_scope.get(scope, ())]

    def get(self, key: str) -> Budget | None:
        return self._by_key.get(key)

    def __iter__(self) -> Iterator[Budget]:
        return iter(list(self._by_key.values()))

    def __len__(self) -> int:
        return len(self._by_key)
