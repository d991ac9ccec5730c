"""ClickHouseStore on the embedded engine (chDB through clickhouse-connect), in a subprocess.

chDB allows one data directory per process, so each check runs in a fresh interpreter.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from prsm_events.store.clickhouse import ClickHouseStore
from prsm_events.store.migrations import migrations


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
        [record] = accepted_records([((0, 7), [price_usage(e, Catalog.shipped())])],
                                    datetime.now(UTC))
        store = ClickHouseStore("chdb://{tmp_path}/ch")
        store.insert_json("usage", record)
        store.insert_json("usage", record)   # a retried batch
        store.close()
        store = ClickHouseStore("chdb://{tmp_path}/ch")   # DDL applied again on open
        print(store.query("SELECT count(), sum(cost_usd), any(priced_by) FROM {{db}}.usage FINAL"))
    """)
    assert out == "[(1, Decimal('0.002500000'), 'catalog:2025-08-15.2')]"


def test_server_dsn_database_and_redaction():
    store = ClickHouseStore("https://reporter:s3cret@ch.example.com:8443/costs", "prsm")
    assert store.database == "costs"
    assert not store.embedded
    assert "s3cret" not in store.redacted_dsn
    assert ClickHouseStore("http://ch:8123").database == "prsm"


def test_migrations_are_numbered_once_each_and_create_only_if_absent():
    found = migrations()
    assert [m.version for m in found] == list(range(1, len(found) + 1))
    for m in found:
        for statement in m.statements("prsm"):
            assert "{database}" not in statement
            if statement.startswith("CREATE"):
                assert "IF NOT EXISTS" in statement, statement


def test_a_store_of_float_money_is_migrated_once_with_its_rows(tmp_path):
    """A store written by the first two migrations (money as Float64, a decision's budget
    figures only as JSON) is migrated when a store opens it: every row kept, money now a
    Decimal of 9 places, the budget figures read from the JSON; opening it again applies
    nothing."""
    out = run_py(f"""
        import clickhouse_connect
        from prsm_events.store.clickhouse import ClickHouseStore
        from prsm_events.store.migrations import migrations
        client = clickhouse_connect.get_client(dsn="chdb://{tmp_path}/ch")
        for m in migrations()[:2]:
            for statement in m.statements("prsm"):
                client.command(statement)
        client.command("INSERT INTO prsm.usage (event_id, ts, tenant, cost_usd) VALUES "
                       "('e1', now64(3), 'acme', 0.1), ('e2', now64(3), 'acme', 0.2)")
        client.command("INSERT INTO prsm.decisions (request_id, ts, tenant, action, "
                       "est_cost_usd, budget) VALUES ('r1', now64(3), 'acme', 'allow', 0.0075, "
                       "'{{\\"scope\\":\\"global\\",\\"limit_usd\\":1.5,"
                       "\\"spent_usd\\":0.25,\\"period_end\\":\\"2026-01-02T00:00:00Z\\"}}')")
        client.close()
        store = ClickHouseStore("chdb://{tmp_path}/ch")
        print(store.query("SELECT sum(cost_usd), toTypeName(sum(cost_usd)) FROM {{db}}.usage"))
        print(store.query("SELECT est_cost_usd, requested_est_cost_usd, budget_scope, "
                          "budget_limit_usd, budget_spent_usd, budget_period_end "
                          "FROM {{db}}.decisions"))
        print(store.migrated)
        store.close()
        store = ClickHouseStore("chdb://{tmp_path}/ch")
        store.ping()
        print(store.migrated, store.query("SELECT count() FROM {{db}}.schema_migrations FINAL"))
    """)
    usage, decisions, first, again = out.splitlines()
    assert usage == "[(Decimal('0.300000000'), 'Decimal(38, 9)')]"  # not 0.30000000000000004
    assert decisions == ("[(Decimal('0.007500000'), Decimal('0.007500000'), 'global', "
                         "Decimal('1.500000000'), Decimal('0.250000000'), "
                         "datetime.datetime(2026, 1, 2, 0, 0))]")
    # a store from before the versions were listed lists none: every file is applied (the
    # first two, which create tables if absent, change nothing)
    assert first == str([m.version for m in migrations()])
    assert again == f"[] [({len(migrations())},)]"


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
        print(store.query("SELECT action, reason_code, retry_after_s, toFloat64(est_cost_usd), "
                          "budget, budget_scope FROM {{db}}.decisions FINAL ORDER BY src_offset"))
        print(store.query("SELECT alert_id, kind, severity, details FROM {{db}}.alerts FINAL"))
    """)
    decisions, alerts = out.splitlines()
    assert decisions == ("[('defer', 'awaiting_allotment', 0.25, 0.0, '', ''), "
                         "('allow', 'within_budget', None, 0.0075, '{\"scope\":\"global\"}', "
                         "'global')]")
    assert alerts == "[('a1', 'budget_threshold', 'warning', '{}')]"
