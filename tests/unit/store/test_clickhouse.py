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
        store.insert_usage_json(record)
        store.insert_usage_json(record)   # a retried batch
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
