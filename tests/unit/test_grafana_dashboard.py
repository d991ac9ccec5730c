"""deploy/grafana/prsm-dashboard.json: every Prometheus query names metrics the worker
exports, and every ClickHouse query runs on the real engine against the tables as migrated."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from streams.metrics import WorkerMetrics
from tests.unit.store.test_clickhouse import run_py
from tests.unit.streams.test_metrics import sources

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "prsm-dashboard.json"


def targets(kind: str) -> list[dict]:
    doc = json.loads(DASHBOARD.read_text())
    return [t for p in doc["panels"] if p["datasource"]["type"] == kind for t in p["targets"]]


def test_every_prometheus_query_names_a_metric_the_worker_exports():
    exported = {s.name for f in text_string_to_metric_families(
        WorkerMetrics(sources(), budgets=5).exposition().decode()) for s in f.samples}
    exprs = [t["expr"] for t in targets("prometheus")]
    assert len(exprs) >= 10
    for expr in exprs:
        names = set(re.findall(r"\bprsm_[a-z_]+", expr))
        assert names and names <= exported, (expr, names - exported)


def test_every_clickhouse_query_runs_on_the_migrated_tables(tmp_path):
    sqls = [t["rawSql"].replace("$__timeFilter(ts)", "ts >= now() - INTERVAL 1 DAY")
            for t in targets("grafana-clickhouse-datasource")]
    assert len(sqls) >= 5 and not any("$__" in s for s in sqls)
    out = run_py(f"""
        from prsm_events.store.clickhouse import ClickHouseStore
        store = ClickHouseStore("chdb://{tmp_path}/ch")
        for sql in {sqls!r}:
            store.query(sql.replace("prsm.", "{{db}}."))
        print("ok")
    """)
    assert out == "ok"
