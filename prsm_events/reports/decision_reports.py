"""Reports over the ``decisions`` table: actions and reasons (over time), and what routing
saved.

Every decision sent is a row: a request deferred and asked again counts each time. Routing
savings count each routed request once (a request asked again after its route is answered
``already_decided``, which is left out); they are estimates at decision time, the figures the
gateway was given.

>>> from prsm_events.reports.options import ReportOptions
>>> from datetime import UTC, datetime
>>> DECISIONS.build(ReportOptions(every="hour"), datetime.now(UTC)).columns
('period', 'action', 'reason_code', 'decisions', 'high_or_critical', 'est_cost_usd')
"""

from __future__ import annotations

from datetime import datetime

from prsm_events.reports.options import ReportOptions
from prsm_events.reports.query import QueryParts, ReportQuery
from prsm_events.reports.report import Report

__all__ = ["DECISIONS", "ROUTING_SAVINGS"]


def _grouped(parts: QueryParts, keys: str, measures: str, order: str) -> str:
    """The SQL over ``decisions`` grouped by the period (with ``every``), then ``keys``."""
    head = "".join(f"{e}, " for e in parts.group_exprs())
    lead = "".join(f"{n}, " for n in parts.group_names())
    return (f"SELECT {head}{keys}, {measures} FROM {{db}}.decisions FINAL{parts.where()} "
            f"GROUP BY {lead}{keys} ORDER BY {lead}{order}")


def decisions_query(o: ReportOptions, now: datetime) -> ReportQuery:
    parts = QueryParts(o, ())
    parts.tenant_is()
    sql = _grouped(parts, "action, reason_code", "count() AS decisions, countIf(priority IN "
                   "('high', 'critical')) AS high_or_critical, sum(est_cost_usd) AS "
                   "est_cost_usd", "decisions DESC, action, reason_code")
    return ReportQuery(sql, parts.params, (*parts.group_columns(), "action", "reason_code",
                                           "decisions", "high_or_critical", "est_cost_usd"))


DECISIONS = Report(
    "decisions", "Decisions by action and reason (optionally per hour or day), with how many "
    "were of high or critical priority (refused ones: throttle, reject, defer) and their "
    "estimated cost.", frozenset({"every", "tenant", "since", "until"}), decisions_query,
    measure="decisions", series=lambda o: ("action", "reason_code"))


def savings_query(o: ReportOptions, now: datetime) -> ReportQuery:
    parts = QueryParts(o, ())
    parts.tenant_is()
    parts.add("action = 'route'")
    parts.add("reason_code != 'already_decided'")
    sql = _grouped(parts, "requested_model, model", "count() AS routed, "
                   "sum(requested_est_cost_usd) AS requested_usd, sum(est_cost_usd) AS "
                   "chosen_usd, requested_usd - chosen_usd AS saved_usd, avg(quality_given_up) "
                   "AS mean_quality_given_up, max(quality_given_up) AS max_quality_given_up",
                   "saved_usd DESC, requested_model, model")
    return ReportQuery(sql, parts.params, (
        *parts.group_columns(), "requested_model", "model", "routed", "requested_usd",
        "chosen_usd", "saved_usd", "mean_quality_given_up", "max_quality_given_up"))


ROUTING_SAVINGS = Report(
    "routing-savings", "Routed requests by requested and chosen model: the estimate at the "
    "requested model less the chosen one's (saved), and the catalog quality given up.",
    frozenset({"every", "tenant", "since", "until"}), savings_query,
    measure="saved_usd", series=lambda o: ("requested_model", "model"))
