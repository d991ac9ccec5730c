"""Reports over the ``budget_snapshots`` table: budget utilisation, and how good the
forecasts were.

Utilisation is what a budget has used (spent + reserved) of its limit, with its forecast, as
of its latest snapshot in the range (or, per hour or day, its highest in each). Forecast
accuracy compares every snapshot's period-end forecast of a calendar budget with the figure
its period closed at: the snapshot the scorer writes at the period's last tick
(``store.snapshot_rows``). A period counts once closed: it has ended and its last snapshot
lies within ``CLOSED_WITHIN_S`` of its end; forecasts made while the scorer was still learning
(too little history for the horizon: shown without an interval) are left out. Rows are
grouped by how far into its period the forecast was made (quarters), so that one sees how
early it was right.

>>> from prsm_events.reports.options import ReportOptions
>>> from datetime import UTC, datetime
>>> q = FORECAST_ACCURACY.build(ReportOptions(), datetime.now(UTC))
>>> q.columns[:4], q.params["closed_within_ms"]
(('budget_key', 'scope', 'period', 'elapsed'), 600000)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prsm_events.accounting.periods import ROLLING
from prsm_events.reports.options import ReportOptions
from prsm_events.reports.query import QueryParts, ReportQuery
from prsm_events.reports.report import Report

__all__ = ["BUDGET_UTILISATION", "CLOSED_WITHIN_S", "FORECAST_ACCURACY"]

CLOSED_WITHIN_S = 600
"""A period is closed (its actual known) by a snapshot at most this long before its end."""
_ROLLING = ", ".join(f"'{p}'" for p in ROLLING)
_LAST = ("budget_key", "scope", "period", "at", "period_end", "limit_usd", "used_usd",
         "utilisation", "forecast_usd", "forecast_low_usd", "forecast_high_usd",
         "exhaustion_ts")


def utilisation_query(o: ReportOptions, now: datetime) -> ReportQuery:
    parts = QueryParts(o, ())
    parts.scopes_of_tenant()
    if o.every:
        period = parts.group_exprs()[0]
        sql = (f"SELECT {period}, budget_key, any(scope) AS b_scope, count() AS snapshots, "
               "max(if(limit_usd > 0, toFloat64(used_usd) / toFloat64(limit_usd), NULL)) AS "
               "peak_utilisation, argMax(if(limit_usd > 0, forecast_usd / toFloat64(limit_usd), "
               "NULL), ts) AS forecast_share "
               f"FROM {{db}}.budget_snapshots FINAL{parts.where()} GROUP BY period, budget_key "
               "ORDER BY period, peak_utilisation DESC, budget_key")
        return ReportQuery(sql, parts.params, ("period", "budget_key", "scope", "snapshots",
                                               "utilisation", "forecast_share"))
    sql = ("SELECT budget_key, argMax(scope, ts) AS b_scope, argMax(period, ts) AS b_period, "
           "max(ts) AS at, argMax(period_end, ts) AS b_period_end, argMax(limit_usd, ts) AS "
           "b_limit, argMax(used_usd, ts) AS b_used, if(b_limit > 0, toFloat64(b_used) / "
           "toFloat64(b_limit), NULL) AS utilisation, argMax(forecast_usd, ts) AS b_forecast, "
           "argMax(forecast_low_usd, ts) AS b_low, argMax(forecast_high_usd, ts) AS b_high, "
           "argMax(exhaustion_ts, ts) AS b_exhaustion "
           f"FROM {{db}}.budget_snapshots FINAL{parts.where()} GROUP BY budget_key "
           "ORDER BY utilisation DESC, budget_key")
    return ReportQuery(sql, parts.params, _LAST)


BUDGET_UTILISATION = Report(
    "budget-utilisation", "Each budget's used share of its limit and its period-end "
    "forecast at its latest snapshot (per hour or day: its highest share in each).",
    frozenset({"every", "tenant", "since", "until"}), utilisation_query,
    measure="utilisation", series=lambda o: ("budget_key",))


def accuracy_query(o: ReportOptions, now: datetime) -> ReportQuery:
    parts = QueryParts(o, ())
    parts.scopes_of_tenant()
    parts.add(f"period NOT IN ({_ROLLING})")
    where = parts.where()
    elapsed = ("least(3, intDiv(4 * (toUnixTimestamp64Milli(s.ts) - toUnixTimestamp64Milli("
               "s.period_start)), greatest(1, toUnixTimestamp64Milli(s.period_end) - "
               "toUnixTimestamp64Milli(s.period_start))))")
    sql = (
        f"SELECT s.budget_key AS key, any(s.scope) AS b_scope, any(s.period) AS b_period, "
        f"{elapsed} AS quarter, uniqExact(s.period_start) AS periods, count() AS snapshots, "
        "avg(abs(s.forecast_usd - c.closed) / c.closed) AS mean_abs_error, "
        "avg(c.closed >= s.forecast_low_usd AND c.closed <= s.forecast_high_usd) AS coverage, "
        "avg((s.forecast_high_usd - s.forecast_low_usd) / c.closed) AS mean_width "
        f"FROM (SELECT * FROM {{db}}.budget_snapshots FINAL{where} AND NOT learning) AS s "
        "INNER JOIN (SELECT budget_key, period_start, toFloat64(argMax(used_usd, ts)) AS "
        f"closed, max(ts) AS closed_at FROM {{db}}.budget_snapshots FINAL{where} "
        "GROUP BY budget_key, period_start HAVING toUnixTimestamp64Milli(any(period_end)) - "
        "toUnixTimestamp64Milli(closed_at) <= {closed_within_ms:UInt64} AND "
        "toUnixTimestamp64Milli(any(period_end)) <= {now_ms:UInt64}) AS c "
        "ON s.budget_key = c.budget_key AND s.period_start = c.period_start "
        "WHERE s.ts < c.closed_at AND c.closed > 0 GROUP BY key, quarter ORDER BY key, quarter")
    parts.params["closed_within_ms"] = CLOSED_WITHIN_S * 1000
    parts.params["now_ms"] = int(now.timestamp() * 1000)
    return ReportQuery(sql, parts.params, (
        "budget_key", "scope", "period", "elapsed", "periods", "snapshots", "mean_abs_error",
        "coverage", "mean_width"))


def finish_accuracy(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The quarter of the period as a range of percent.

    >>> finish_accuracy([{"elapsed": 2}])
    [{'elapsed': '50-75%'}]
    """
    for r in records:
        q = int(r["elapsed"])
        r["elapsed"] = f"{25 * q}-{25 * (q + 1)}%"
    return records


FORECAST_ACCURACY = Report(
    "forecast-accuracy", "How good each calendar budget's period-end forecasts were, by how "
    "far into the period they were made: mean absolute error as a share of what the period "
    "closed at, the share of 90% intervals that held it (coverage), and the interval's mean "
    "width (same share), over the closed periods.",
    frozenset({"tenant", "since", "until"}), accuracy_query, finish_accuracy)
