"""Reports over the ``usage`` table: spend (over time, by any dimensions) and top movers.

>>> from prsm_events.reports.options import ReportOptions
>>> from datetime import UTC, datetime
>>> q = SPEND.build(ReportOptions(every="day", by=("service",)), datetime.now(UTC))
>>> q.columns
('period', 'service', 'cost_usd', 'events', 'input_tokens', 'output_tokens')
>>> finish_spend([{"cost_usd": 3.0}, {"cost_usd": 1.0}])
[{'cost_usd': 3.0, 'share': 0.75}, {'cost_usd': 1.0, 'share': 0.25}]
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from prsm_events.reports.options import ReportOptions
from prsm_events.reports.query import QueryParts, ReportQuery
from prsm_events.reports.report import Report

__all__ = ["SPEND", "TOP_MOVERS", "finish_movers", "finish_spend"]

_MEASURES = ("cost_usd", "events", "input_tokens", "output_tokens")


def spend_query(o: ReportOptions, now: datetime) -> ReportQuery:
    parts = QueryParts(o, o.by or ("tenant",))
    parts.tenant_is()
    group = parts.group_exprs()
    names = parts.group_names()
    dims = ", ".join(n for n in names if n != "period")
    sql = (f"SELECT {', '.join(group)}, sum(cost_usd) AS cost_usd, count() AS events, "
           "sum(input_tokens) AS input_tokens, sum(output_tokens + reasoning_tokens) AS "
           f"output_tokens FROM {{db}}.usage FINAL{parts.where()} GROUP BY {', '.join(names)} "
           "ORDER BY " + ("period, " if o.every else "") + f"cost_usd DESC, {dims}")
    return ReportQuery(sql, parts.params, (*parts.group_columns(), *_MEASURES))


def finish_spend(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each row's share of its period's cost (of the whole cost without periods)."""
    totals: dict[Any, float] = defaultdict(float)
    for r in records:
        totals[r.get("period")] += r["cost_usd"]
    for r in records:
        total = totals[r.get("period")]
        r["share"] = r["cost_usd"] / total if total else 0.0
    return records


SPEND = Report(
    "spend", "Cost, events and tokens by any dimensions (default tenant), optionally per hour "
    "or day.", frozenset({"every", "by", "tenant", "since", "until"}), spend_query,
    finish_spend, ("share",), measure="cost_usd",
    series=lambda o: o.by or ("tenant",))


def movers_query(o: ReportOptions, now: datetime) -> ReportQuery:
    until = o.until or now
    since = o.since or until - timedelta(days=1)
    before = since - (until - since)
    parts = QueryParts(ReportOptions(by=o.by, tenant=o.tenant), o.by or ("service",))
    parts.tenant_is()
    time = "DateTime64(3, 'UTC')"
    parts.add(f"ts >= {{previous:{time}}}", previous=before)
    parts.add(f"ts < {{until:{time}}}", until=until)
    parts.params["since"] = since
    group = parts.dimension_exprs()
    names = ", ".join(parts.group_names())
    split = f"ts >= {{since:{time}}}"
    sql = (f"SELECT {', '.join(group)}, sumIf(cost_usd, {split}) AS now_usd, "
           f"sumIf(cost_usd, NOT ({split})) AS before_usd, now_usd - before_usd AS change_usd "
           f"FROM {{db}}.usage FINAL{parts.where()} GROUP BY {names} "
           f"ORDER BY change_usd DESC, {names} LIMIT {{limit:UInt32}}")
    parts.params["limit"] = o.limit or 20
    return ReportQuery(sql, parts.params, (*parts.group_columns(), "cost_usd", "previous_usd",
                                           "change_usd"))


def finish_movers(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The change in percent of the previous period (None when it had no cost: new).

    >>> finish_movers([{"cost_usd": 3.0, "previous_usd": 2.0, "change_usd": 1.0},
    ...                {"cost_usd": 1.0, "previous_usd": 0.0, "change_usd": 1.0}])[1]["change_pct"]
    """
    for r in records:
        r["change_pct"] = (100.0 * r["change_usd"] / r["previous_usd"] if r["previous_usd"]
                           else None)
    return records


TOP_MOVERS = Report(
    "top-movers", "What grew most: cost in [since, until) (default the last day) against "
    "the period of the same length before, by any dimensions (default service).",
    frozenset({"by", "tenant", "since", "until", "limit"}), movers_query, finish_movers,
    ("change_pct",))
