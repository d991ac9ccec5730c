"""/metrics: the worker's figures as Prometheus families, parsed back with the client
library's own parser; budget gauges bounded to the busiest budgets the worker answers for."""

from __future__ import annotations

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from prsm_events.accounting.budget_figures import BudgetFigures
from prsm_events.accounting.budgets import Budget
from prsm_events.accounting.ledger_view import NANO, BudgetView
from prsm_events.operations.stage_times import StageTimes
from prsm_events.watch.outlook import OutlookColumns
from streams.control import DECISION_STAGES
from streams.metrics import MetricSources, WorkerMetrics


def outlook(count: int) -> OutlookColumns:
    budgets = [Budget(scope=f"tenant:t{i}", period="day", limit_usd=10) for i in range(count)]
    views = [BudgetView(b, 0.0, (i % 10) * NANO, 0, 0.0, 86_400.0) for i, b in enumerate(budgets)]
    return OutlookColumns.calendar(budgets, BudgetFigures.of_views(views, 0.0),
                                   *(np.full(count, 0.5) for _ in range(3)))


def stage_times() -> StageTimes:
    times = StageTimes(DECISION_STAGES)
    times.observe("queued", [0.002, 0.004, 0.2])
    times.observe_batch("answered", 0.003, 4)
    return times


def sources(sink: bool = True) -> MetricSources:
    parts = [outlook(25)]
    return MetricSources(
        ingest=lambda: {"accepted": 40, "duplicates": 2,
                        "dead_letter_codes": {"invalid_json": 3, "missing_cost": 1}},
        decisions=lambda: {"requests": 12, "alerts": 1, "directives": 0,
                           "stages": stage_times().as_dict()},
        decided=lambda: {("allow", "within_budget"): 9, ("route", "routed_cheaper_model"): 3},
        sink=lambda: {"running": True, "rows": 40, "decisions": 12, "alerts": 1,
                      "snapshots": 25, "failures": 0, "refused": 1, "waiting": 4,
                      "blocked_since": None} if sink else None,
        scoring=lambda: {"ticks": 7, "tick_ms": 12.5, "scopes": 30},
        outlooks=lambda: parts, answers_for=lambda b: b.scope != "tenant:t9",
        budgets_in_force=lambda: 25,
        health=lambda: {"ready": 1.0, "broker_up": 1.0, "stalled_partitions": 0.0},
        lags={("prsm.usage", 0): 5, ("prsm.requests", 1): 0})


def scrape(metrics: WorkerMetrics) -> dict[str, dict[tuple, float]]:
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def test_counters_and_gauges_carry_the_worker_s_figures():
    got = scrape(WorkerMetrics(sources(), budgets=5))
    assert got["prsm_events_accepted_total"] == {(): 40}
    assert got["prsm_events_dead_lettered_total"][(("code", "invalid_json"),)] == 3
    assert got["prsm_decisions_total"] == {
        (("action", "allow"), ("reason", "within_budget")): 9,
        (("action", "route"), ("reason", "routed_cheaper_model")): 3}
    assert got["prsm_sink_rows_total"][(("table", "budget_snapshots"),)] == 25
    assert got["prsm_sink_waiting_records"] == {(): 4}
    assert got["prsm_scoring_tick_seconds"] == {(): 0.0125}
    assert got["prsm_consumer_lag_messages"][(("partition", "0"), ("topic", "prsm.usage"))] == 5
    assert got["prsm_ready"] == {(): 1.0} and "process_cpu_seconds_total" in got


def test_decision_stages_are_histograms_of_requests():
    got = scrape(WorkerMetrics(sources(), budgets=5))
    buckets = got["prsm_decision_stage_seconds_bucket"]
    assert buckets[(("le", "0.005"), ("stage", "queued"))] == 2  # cumulative
    assert buckets[(("le", "+Inf"), ("stage", "queued"))] == 3
    assert buckets[(("le", "0.002"), ("stage", "answered"))] == 0
    assert buckets[(("le", "0.003"), ("stage", "answered"))] == 4  # a batch of 4 requests
    assert got["prsm_decision_stage_seconds_count"][(("stage", "answered"),)] == 4
    assert abs(got["prsm_decision_stage_seconds_sum"][(("stage", "queued"),)] - 0.206) < 1e-12
    assert {dict(k)["stage"] for k in buckets} == set(DECISION_STAGES)


def test_budget_gauges_are_the_busiest_budgets_the_worker_answers_for_and_no_more():
    got = scrape(WorkerMetrics(sources(), budgets=5))
    used = {dict(labels)["budget"]: v for labels, v in got["prsm_budget_used_usd"].items()}
    # used $i % 10 of $10: t9 and t19 are the busiest, t9 is another worker's
    assert len(used) == 5 and "tenant:t9|day" not in used
    assert sorted(used.values(), reverse=True) == [9.0, 8.0, 8.0, 7.0, 7.0]
    assert set(got["prsm_budget_limit_usd"].values()) == {10.0}
    assert all(v == 9.5 for labels, v in got["prsm_budget_forecast_usd"].items()
               if dict(labels)["budget"] == "tenant:t19|day")
    assert scrape(WorkerMetrics(sources(), budgets=0)).get("prsm_budget_used_usd") is None


def test_a_worker_without_the_sink_says_so_and_exports_no_sink_figures():
    got = scrape(WorkerMetrics(sources(sink=False), budgets=5))
    assert got["prsm_sink_running"] == {(): 0.0} and "prsm_sink_rows_total" not in got
