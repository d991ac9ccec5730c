"""A report's SQL, built from its options: the WHERE clause, the time step and the grouping.

Every value from a user reaches ClickHouse as a bound parameter (``{name:Type}``), never as
SQL text: a tag key, a tenant, a time. Column aliases are ours (``dim_0``), and the report
names its columns itself.

>>> from prsm_events.reports.options import ReportOptions
>>> q = QueryParts(ReportOptions(every="hour", by=("model", "tag:team"), tenant="acme"))
>>> q.tenant_is()
>>> q.group_exprs()
['toStartOfHour(ts) AS period', 'model AS dim_0', 'tags[{tag_1:String}] AS dim_1']
>>> q.where(), q.params["tag_1"], q.params["tenant"]
(' WHERE tenant = {tenant:String}', 'team', 'acme')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prsm_events.reports.options import DIMENSIONS, ReportOptions

__all__ = ["QueryParts", "ReportQuery"]

_STEP = {"hour": "toStartOfHour(ts)", "day": "toStartOfDay(ts)"}
_TIME = "DateTime64(3, 'UTC')"


@dataclass(frozen=True)
class ReportQuery:
    """The SQL (``{db}``: the database), its bound parameters and the names of the columns
    it returns, in order."""

    sql: str
    params: dict[str, Any]
    columns: tuple[str, ...]


@dataclass
class QueryParts:
    """WHERE, period and dimensions of a report over a table with ``ts`` (and, for usage,
    the dimension columns)."""

    options: ReportOptions
    by: tuple[str, ...] | None = None
    """The dimensions (default: the options' ``by``)."""
    params: dict[str, Any] = field(default_factory=dict)
    conditions: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        o = self.options
        if self.by is None:
            self.by = o.by
        if o.since is not None:
            self.conditions.append(f"ts >= {{since:{_TIME}}}")
            self.params["since"] = o.since
        if o.until is not None:
            self.conditions.append(f"ts < {{until:{_TIME}}}")
            self.params["until"] = o.until

    def tenant_is(self, column: str = "tenant") -> None:
        if self.options.tenant is not None:
            self.conditions.append(f"{column} = {{tenant:String}}")
            self.params["tenant"] = self.options.tenant

    def scopes_of_tenant(self) -> None:
        """Only rows whose ``scope`` is the tenant's or below it (``tenant:T``,
        ``tenant:T/...``), when the options name a tenant."""
        tenant = self.options.tenant
        if tenant is not None:
            self.add("(scope = {scope:String} OR startsWith(scope, {scope_prefix:String}))",
                     scope=f"tenant:{tenant}", scope_prefix=f"tenant:{tenant}/")

    def add(self, condition: str, **params: Any) -> None:
        self.conditions.append(condition)
        self.params.update(params)

    def where(self) -> str:
        return (" WHERE " + " AND ".join(self.conditions)) if self.conditions else ""

    def dimension_exprs(self) -> list[str]:
        out = []
        for i, name in enumerate(self.by or ()):
            if name.startswith("tag:"):
                self.params[f"tag_{i}"] = name.removeprefix("tag:")
                out.append(f"tags[{{tag_{i}:String}}] AS dim_{i}")
            else:
                out.append(f"{DIMENSIONS[name]} AS dim_{i}")
        return out

    def group_exprs(self) -> list[str]:
        """The period (when ``every``) and the dimensions, as SELECT expressions."""
        period = [f"{_STEP[self.options.every]} AS period"] if self.options.every else []
        return period + self.dimension_exprs()

    def group_names(self) -> list[str]:
        """The aliases of ``group_exprs``."""
        period = ["period"] if self.options.every else []
        return period + [f"dim_{i}" for i in range(len(self.by or ()))]

    def group_columns(self) -> tuple[str, ...]:
        """The report's names of the grouping columns."""
        return (("period",) if self.options.every else ()) + tuple(self.by or ())
