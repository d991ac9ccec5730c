"""Reports over the ClickHouse tables: ``prsm report NAME`` and ``GET /reports/NAME``.

Each report is a documented SQL query (``prsm report NAME --sql`` prints it; the default
ones are in ``docs/reports.md``), its rows rendered as a table, JSON or CSV, and, where it has
a time axis, drawn to PNG or HTML (``--plot``).

>>> list(REPORTS)  # doctest: +NORMALIZE_WHITESPACE
['spend', 'top-movers', 'decisions', 'routing-savings', 'anomalies', 'budget-utilisation',
 'forecast-accuracy']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from prsm_events.reports.alert_reports import ANOMALIES
from prsm_events.reports.budget_reports import BUDGET_UTILISATION, FORECAST_ACCURACY
from prsm_events.reports.decision_reports import DECISIONS, ROUTING_SAVINGS
from prsm_events.reports.options import ReportError, ReportOptions
from prsm_events.reports.query import ReportQuery
from prsm_events.reports.report import Report, records_of
from prsm_events.reports.result import REPORT_FORMATS, ReportResult
from prsm_events.reports.usage_reports import SPEND, TOP_MOVERS

__all__ = ["REPORTS", "REPORT_FORMATS", "Report", "ReportError", "ReportOptions",
           "ReportQuery", "ReportResult", "report_named", "run_report"]

REPORTS: dict[str, Report] = {r.name: r for r in (
    SPEND, TOP_MOVERS, DECISIONS, ROUTING_SAVINGS, ANOMALIES, BUDGET_UTILISATION,
    FORECAST_ACCURACY)}


def report_named(name: str) -> Report:
    if name not in REPORTS:
        raise ReportError(f"no report {name!r}; the reports: {', '.join(REPORTS)}")
    return REPORTS[name]


def run_report(name: str, given: Mapping[str, str | None], now: datetime,
               query: Callable[[str, dict[str, Any]], list[tuple[Any, ...]]]) -> ReportResult:
    """Parse the options ``given`` (strings) for report ``name``, run its SQL through
    ``query`` (the store's) and finish its rows."""
    report = report_named(name)
    options = ReportOptions.parse(given, report.takes)
    q = report.build(options, now)
    records = records_of(q.columns, query(q.sql, q.params))
    if report.finish is not None:
        records = report.finish(records)
    return ReportResult(name, options.described(), report.columns(q), records)
