"""ClickHouseStore on the embedded engine (chDB through clickhouse-connect), in a subprocess.

chDB allows one data directory per process, so each check runs in a fresh interpreter.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from prsm_events.store.clickhouse import ClickHouseStore, ddl_statements


def run_py(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_writes_are_idempotent_and_ddl_reapplies(tmp_path):
    out = run_py(f"""
        from datetime import UTC, datetime
        from prsm_events.accounting.catalog import Catalog
        from prsm_events.store.accepted_rows import accepted_records
        from prsm_events.store.clickhouse import ClickHouseStore
        from prsm_events.events.usage import UsageEvent
        from prsm_events.accounting.pricing import price_usage
        e = UsageEvent(event_id="e1", ts="2026-01-01T00:00:00Z", tenant="acme", service="chat",
                       model="gpt-4o", input_tokens=1000, tags={{"team": "x"}})
        [record] = accepted_records([(price_usage(e, Catalog.shipped()), 0, 7)], datetime.now(UTC))
        store = ClickHouseStore("chdb://{tmp_path}/ch")
        store.insert_json("usage", record)
        store.insert_json("usage", record)   # a retried batch
        store.close()
        store = ClickHouseStore("chdb://{tmp_path}/ch")   # DDL applied again on open
        print(store.query("SELECT count(), sum(cost_usd), any(priced_by) FROM {{db}}.usage FINAL"))
    """)
    assert out == "[(1, 0.0025, 'catalog:2025-08-15.2')]"


def test_server_dsn_database_and_redaction():
    store = ClickHouseStore("https://reporter:s3cret@ch.example.com:8443/costs", "prsm")
    assert store.database == "costs"
    assert not store.embedded
    assert "s3cret" not in store.redacted_dsn
    assert ClickHouseStore("http://ch:8123").database == "prsm"


def test_ddl_is_idempotent_sql():
    statements = ddl_statements("prsm")
    assert all("IF NOT EXISTS" in s for s in statements)
    assert any("ReplacingMergeTree" in s for s in statements)


def test_decisions_and_alerts_land_once_each(tmp_path):
    """A decision record read twice (the sink re-delivered) is one row, two decisions of one
    request (a deferral, then the answer) are two; an alert sent twice (same alert_id) is one.
    The rows come from the records as the worker encodes them."""
    out = run_py(f"""
        from datetime import UTC, datetime
        from prsm_events.events.alerts import Alert
        from prsm_events.events.decision import (Action, DecisionRecord, ReasonRecord,
                                                 encode_decision)
        from prsm_events.store.alert_rows import alert_row
        from prsm_events.store.clickhouse import ClickHouseStore
        from prsm_events.store.decision_rows import decision_row
        ts = datetime(2026, 1, 1, tzinfo=UTC)
        defer = encode_decision(DecisionRecord(
            request_id="r1", ts=ts, tenant="acme", action=Action.DEFER, requested_model="gpt-4o",
            reason=ReasonRecord("awaiting_allotment", "more is on its way"), retry_after_s=0.25))
        allow = encode_decision(DecisionRecord(
            request_id="r1", ts=ts, tenant="acme", action=Action.ALLOW, model="gpt-4o",
            provider="openai", requested_model="gpt-4o", est_cost_usd=0.0075,
            reason=ReasonRecord("within_budget", "fits"), budget={{"scope": "global"}}))
        alert = Alert(alert_id="a1", ts=ts, kind="budget_threshold", scope="global",
                      severity="warning", observed=8.0, expected=10.0, score=0.8,
                      message="80%").model_dump_json().encode()
        store = ClickHouseStore("chdb://{tmp_path}/ch")
        rows = decision_row(defer, 2, 10) + decision_row(allow, 2, 11)
        store.insert_json("decisions", rows)
        store.insert_json("decisions", decision_row(allow, 2, 11))  # read twice
        store.insert_json("alerts", alert_row(alert))
        store.insert_json("alerts", alert_row(alert))  # sent twice
        print(store.query("SELECT action, reason_code, retry_after_s, est_cost_usd, budget "
                          "FROM {{db}}.decisions FINAL ORDER BY src_offset"))
        print(store.query("SELECT alert_id, kind, severity, details FROM {{db}}.alerts FINAL"))
    """)
    decisions, alerts = out.splitlines()
    assert decisions == ("[('defer', 'awaiting_allotment', 0.25, 0.0, ''), "
                         "('allow', 'within_budget', None, 0.0075, '{\"scope\":\"global\"}')]")
    assert alerts == "[('a1', 'budget_threshold', 'warning', '{}')]"
