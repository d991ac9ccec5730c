"""The worker's Prometheus metrics, ``GET /metrics``: read from the worker's own figures when
scraped, so the hot paths count nothing twice.

Every family is documented in docs/operations.md (Metrics). Labels are bounded: dead-letter
codes, decision actions and reason codes are fixed sets, lag is per assigned partition, and
budgets are the ``PRSM_METRICS_BUDGETS`` (100) this worker answers for with the highest used
share of their limit at the last scoring tick.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from prsm_events.accounting.budgets import Budget
from prsm_events.watch.outlook import OutlookColumns

__all__ = ["CONTENT_TYPE", "MetricSources", "WorkerMetrics", "busiest_budgets"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The text format ``generate_latest`` writes, as every Prometheus version reads it."""


@dataclass
class MetricSources:
    """Where the figures come from (the worker's stats objects, as ``/stats`` shows them)."""

    ingest: Callable[[], dict[str, Any]]
    decisions: Callable[[], dict[str, Any]]
    decided: Callable[[], dict[tuple[str, str], int]]
    sink: Callable[[], dict[str, Any] | None]
    scoring: Callable[[], dict[str, Any]]
    outlooks: Callable[[], Sequence[OutlookColumns]]
    answers_for: Callable[[Budget], bool]
    budgets_in_force: Callable[[], int]
    health: Callable[[], dict[str, float]]
    alert_delivery: Callable[[], dict[str, int] | None] = lambda: None
    lags: dict[tuple[str, int], int] = field(default_factory=dict)
    """Messages behind per (topic, partition), set by the endpoint before a scrape."""


def busiest_budgets(parts: Sequence[OutlookColumns], keep: Callable[[Budget], bool],
                    count: int) -> list[tuple[Budget, float, float, float, float, float]]:
    """The ``count`` budgets ``keep`` says yes to with the highest used share of their limit:
    (budget, limit, used, period-end forecast, its 90% high, 1.0 while still learning), most
    used first.

    >>> from prsm_events.accounting.budget_figures import BudgetFigures
    >>> from prsm_events.accounting.ledger_view import NANO, BudgetView
    >>> bs = [Budget(scope=f"tenant:t{i}", period="day", limit_usd=10) for i in range(3)]
    >>> vs = [BudgetView(b, 0.0, i * NANO, 0, 0.0, 86400.0) for i, b in enumerate(bs)]
    >>> cols = OutlookColumns.calendar(bs, BudgetFigures.of_views(vs, 0.0),
    ...                                *(np.zeros(3) for _ in range(3)))
    >>> [(b.scope, used) for b, _, used, *_ in busiest_budgets([cols], lambda b: True, 2)]
    [('tenant:t2', 2.0), ('tenant:t1', 1.0)]
    """
    found: list[tuple[float, int, int]] = []
    for p, part in enumerate(parts):
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(part.limit > 0, part.used / part.limit, 0.0)
        order = np.argsort(-share, kind="stable")
        taken = 0
        for i in order:
            if taken == count:
                break
            if keep(part.budgets[int(i)]):
                found.append((float(share[i]), p, int(i)))
                taken += 1
    found.sort(key=lambda f: -f[0])
    out = []
    for _, p, i in found[:count]:
        part = parts[p]
        out.append((part.budgets[i], float(part.limit[i]), float(part.used[i]),
                    float(part.period_end_spend[i]), float(part.high[i]),
                    float(part.learning[i])))
    return out


class WorkerMetrics(Collector):
    """The collector of the worker's figures (a registry of its own: ``registry``)."""

    def __init__(self, sources: MetricSources, budgets: int) -> None:
        self.sources = sources
        self.budgets = budgets
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        ProcessCollector(registry=self.registry)  # CPU, memory, open files of the process

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)

    def collect(self) -> Iterator[Metric]:
        s = self.sources
        yield from self._ingest(s.ingest())
        yield from self._decisions(s.decisions(), s.decided())
        yield from self._sink(s.sink())
        yield from self._scoring(s.scoring())
        yield from self._budgets()
        lag = GaugeMetricFamily("prsm_consumer_lag_messages", "Messages behind the end of "
                                "each assigned partition the worker reads.",
                                labels=["topic", "partition"])
        for (topic, partition), behind in sorted(s.lags.items()):
            lag.add_metric([topic, str(partition)], behind)
        yield lag
        for name, value in s.health().items():
            yield GaugeMetricFamily(f"prsm_{name}", _HEALTH[name], value=value)
        delivery = s.alert_delivery()
        if delivery is not None:
            family = CounterMetricFamily("prsm_alert_deliveries", "Alerts handled by this "
                                         "worker's delivery, by outcome (delivered and "
                                         "undelivered count per route).", labels=["outcome"])
            for outcome in ("delivered", "undelivered", "retries", "duplicates", "too_old",
                            "unmatched", "unreadable"):
                family.add_metric([outcome], delivery[outcome])
            yield family

    def _ingest(self, st: dict[str, Any]) -> Iterator[Metric]:
        yield CounterMetricFamily("prsm_events_accepted", "Usage events accepted.",
                                  value=st["accepted"])
        yield CounterMetricFamily("prsm_events_duplicates", "Usage events already counted.",
                                  value=st["duplicates"])
        letters = CounterMetricFamily("prsm_events_dead_lettered", "Usage messages and events "
                                      "dead-lettered, by code.", labels=["code"])
        for code, n in sorted(st["dead_letter_codes"].items()):
            letters.add_metric([code], n)
        yield letters

    def _decisions(self, st: dict[str, Any], decided: dict[tuple[str, str], int]
                   ) -> Iterator[Metric]:
        yield CounterMetricFamily("prsm_requests", "Requests read.", value=st["requests"])
        family = CounterMetricFamily("prsm_decisions", "Decisions sent, by action and reason "
                                     "code.", labels=["action", "reason"])
        for (action, reason), n in sorted(decided.items()):
            family.add_metric([action, reason], n)
        yield family
        stages = HistogramMetricFamily(
            "prsm_decision_stage_seconds", "Time requests spent in each stage of the worker: "
            "fetched, queued, decided, answered (docs/operations.md).",
            labels=["stage"])
        for stage, h in st.get("stages", {}).items():
            stages.add_metric([stage], [*((repr(bound), n) for bound, n in h["buckets"]),
                                        ("+Inf", h["count"])], h["sum_s"])
        yield stages
        yield CounterMetricFamily("prsm_alerts", "Alerts published.", value=st["alerts"])
        yield CounterMetricFamily("prsm_directives", "Throttle and pacing directives "
                                  "published.", value=st["directives"])

    def _sink(self, st: dict[str, Any] | None) -> Iterator[Metric]:
        yield GaugeMetricFamily("prsm_sink_running", "1 when this worker runs the ClickHouse "
                                "sink.", value=1.0 if st and st.get("running") else 0.0)
        if not st:
            return
        rows = CounterMetricFamily("prsm_sink_rows", "Rows the sink inserted, by table (a "
                                   "record read again after a crash counts again).",
                                   labels=["table"])
        for table, key in (("usage", "rows"), ("decisions", "decisions"), ("alerts", "alerts"),
                           ("budget_snapshots", "snapshots")):
            rows.add_metric([table], st[key])
        yield rows
        yield CounterMetricFamily("prsm_sink_failures", "Inserts that failed because "
                                  "ClickHouse did not answer.", value=st["failures"])
        yield CounterMetricFamily("prsm_sink_refused", "Records ClickHouse refused "
                                  "(dead-lettered).", value=st["refused"])
        yield GaugeMetricFamily("prsm_sink_waiting_records", "Records the sink has yet to "
                                "write.", value=st["waiting"])
        blocked = st.get("blocked_since")
        yield GaugeMetricFamily("prsm_sink_blocked_seconds", "How long the sink has been "
                                "unable to insert (0: it is not).",
                                value=0.0 if blocked is None else max(0.0, time.time() - blocked))

    def _scoring(self, st: dict[str, Any]) -> Iterator[Metric]:
        yield CounterMetricFamily("prsm_scoring_ticks", "Scoring ticks run.",
                                  value=st.get("ticks", 0))
        yield GaugeMetricFamily("prsm_scoring_tick_seconds", "How long the last scoring tick "
                                "took.", value=st.get("tick_ms", 0.0) / 1000)
        yield GaugeMetricFamily("prsm_scoring_scopes", "Scopes the scorer keeps.",
                                value=st.get("scopes", 0))
        yield GaugeMetricFamily("prsm_scoring_parked_scopes", "Scopes the scorer set aside: "
                                "another worker answers for their tenant.",
                                value=st.get("parked", 0))

    def _budgets(self) -> Iterator[Metric]:
        s = self.sources
        yield GaugeMetricFamily("prsm_budgets", "Budgets in force.", value=s.budgets_in_force())
        labels = ["budget", "scope", "period"]
        families = [GaugeMetricFamily(f"prsm_budget_{name}", doc, labels=labels)
                    for name, doc in _BUDGET_GAUGES]
        for budget, *values in busiest_budgets(s.outlooks(), s.answers_for, self.budgets):
            for family, value in zip(families, values, strict=True):
                family.add_metric([budget.key, budget.scope, budget.period], value)
        yield from families


_BUDGET_GAUGES = (
    ("limit_usd", "A budget's limit."),
    ("used_usd", "What a budget has spent and reserved in its period (at the last tick)."),
    ("forecast_usd", "A budget's forecast period-end spend (rolling: the window's peak)."),
    ("forecast_high_usd", "The high end of that forecast's 90% interval."),
    ("forecast_learning", "1 while that forecast rests on too little history for its "
     "horizon (no interval is shown then)."),
)
_HEALTH = {
    "ready": "1 when the worker is ready (assigned, tables restored, config read).",
    "broker_up": "1 when the broker answers.",
    "stalled_partitions": "Partitions with messages waiting and no progress for "
                          "PRSM_STALL_AFTER_S.",
}
