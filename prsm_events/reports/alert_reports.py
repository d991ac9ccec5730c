"""Reports over the ``alerts`` table: anomalies, newest first, with their drivers.

A tenant's alerts are those of its scopes (``tenant:acme`` and ``tenant:acme/...``).

>>> from prsm_events.reports.options import ReportOptions
>>> from datetime import UTC, datetime
>>> q = ANOMALIES.build(ReportOptions(tenant="acme"), datetime.now(UTC))
>>> q.params["scope"], q.params["scope_prefix"], q.params["limit"]
('tenant:acme', 'tenant:acme/', 100)
"""

from __future__ import annotations

from datetime import datetime

from prsm_events.reports.options import ReportOptions
from prsm_events.reports.query import QueryParts, ReportQuery
from prsm_events.reports.report import Report

__all__ = ["ANOMALIES"]

_COLUMNS = ("ts", "scope", "severity", "observed", "expected", "score", "driver", "message")


def anomalies_query(o: ReportOptions, now: datetime) -> ReportQuery:
    parts = QueryParts(o, ())
    parts.add("kind = 'anomaly'")
    parts.scopes_of_tenant()
    parts.params["limit"] = o.limit or 100
    sql = (f"SELECT {', '.join(_COLUMNS)} FROM {{db}}.alerts FINAL{parts.where()} "
           "ORDER BY ts DESC, scope LIMIT {limit:UInt32}")
    return ReportQuery(sql, parts.params, _COLUMNS)


ANOMALIES = Report(
    "anomalies", "Spend anomalies, newest first: observed against expected, score, severity "
    "and the driver (the service, model or key that moved).",
    frozenset({"tenant", "since", "until", "limit"}), anomalies_query)
