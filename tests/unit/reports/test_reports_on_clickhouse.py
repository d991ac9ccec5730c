"""Every report on the real ClickHouse engine (chDB, through clickhouse-connect): rows
written as the sink writes them (one event and one decision written twice, as a redelivery
would), each report's figures checked against the data, computed here."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

import orjson
import pytest

from tests.unit.reports.report_data import (
    T0,
    alerts,
    decisions,
    money,
    snapshots,
    usage_events,
)
from tests.unit.store.test_clickhouse import run_py

ASKED = {
    "by_tenant": ("spend", {}),
    "daily": ("spend", {"every": "day", "by": "service,tag:env", "tenant": "acme",
                        "since": (T0 + timedelta(hours=6)).isoformat(),
                        "until": (T0 + timedelta(days=2)).isoformat()}),
    "keys": ("spend", {"by": "api_key,team,tag:feature"}),
    "movers": ("top-movers", {"by": "service,model", "since": (T0 + timedelta(days=1)).isoformat(),
                              "until": (T0 + timedelta(days=2)).isoformat(), "limit": "3"}),
    "decisions": ("decisions", {"every": "hour"}),
    "decisions_acme": ("decisions", {"tenant": "acme"}),
    "savings": ("routing-savings", {}),
    "anomalies": ("anomalies", {"tenant": "acme", "limit": "1"}),
    "anomalies_all": ("anomalies", {}),
    "utilisation": ("budget-utilisation", {}),
    "utilisation_daily": ("budget-utilisation", {"every": "day", "tenant": "acme"}),
    "accuracy": ("forecast-accuracy", {}),
    # asked 15 s before day 1 ends, after its last snapshot: no period has closed yet
    "accuracy_before_end": ("forecast-accuracy", {},
                            (T0 + timedelta(hours=23, minutes=59, seconds=45)).isoformat()),
    "hostile": ("spend", {"by": "tag:env'] FROM system.tables --", "tenant": "acme' OR '1'='1"}),
    "hostile_tag": ("spend", {"by": "tag:env'] AS x FROM system.tables --"}),
}


@pytest.fixture(scope="module")
def answers(tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("reports")
    out = run_py(f"""
        import orjson
        from datetime import UTC, datetime
        from prsm_events.accounting.catalog import Catalog
        from prsm_events.accounting.pricing import price_usage
        from prsm_events.events.decision import encode_decision
        from prsm_events.reports import run_report
        from prsm_events.store.accepted_rows import accepted_records
        from prsm_events.store.alert_rows import alert_row
        from prsm_events.store.clickhouse import ClickHouseStore
        from prsm_events.store.decision_rows import decision_row
        from tests.unit.reports.report_data import alerts, decisions, usage_events
        from tests.unit.reports.test_reports_on_clickhouse import ASKED
        store = ClickHouseStore("chdb://{path}/ch")
        events = [((0, i), [price_usage(e, Catalog.shipped())])
                  for i, e in enumerate(usage_events())]
        now = datetime.now(UTC)
        for record in accepted_records(events, now) + accepted_records(events[:1], now):
            store.insert_json("usage", record)
        ds = decisions()
        rows = b"".join(decision_row(encode_decision(d), 1, i) for i, d in enumerate(ds))
        store.insert_json("decisions", rows + decision_row(encode_decision(ds[1]), 1, 1))
        store.insert_json("alerts", b"".join(alert_row(a.model_dump_json().encode())
                                             for a in alerts()))
        import msgspec
        from tests.unit.reports.report_data import snapshots
        lines = b"".join(msgspec.json.encode(r) + b"\\n" for r in snapshots())
        store.insert_json("budget_snapshots", lines + lines[: lines.index(b"\\n") + 1])
        print(orjson.dumps({{key: run_report(name, given,
                                             datetime.fromisoformat(at[0]) if at else now,
                                             store.query).as_json()
                            for key, (name, given, *at) in ASKED.items()}}).decode())
    """)
    return orjson.loads(out)


def exact(x: float) -> Decimal:
    return Decimal(repr(x))


def test_spend_by_tenant_counts_each_event_once_with_exact_money(answers):
    doc = answers["by_tenant"]
    assert doc["columns"] == ["tenant", "cost_usd", "events", "input_tokens", "output_tokens",
                              "share"]
    events = usage_events()
    want = {t: [e for e in events if e.tenant == t] for t in ("acme", "beta", "acmex")}
    got = {r["tenant"]: r for r in doc["rows"]}
    for tenant, mine in want.items():
        assert exact(got[tenant]["cost_usd"]) == money(mine)  # the event written twice: once
        assert got[tenant]["events"] == len(mine)
        assert got[tenant]["input_tokens"] == sum(e.input_tokens for e in mine)
    costs = [r["cost_usd"] for r in doc["rows"]]
    assert costs == sorted(costs, reverse=True)
    assert sum(r["share"] for r in doc["rows"]) == pytest.approx(1.0)


def test_spend_per_day_by_service_and_a_tag_for_one_tenant_in_a_range(answers):
    doc = answers["daily"]
    assert doc["columns"][:3] == ["period", "service", "tag:env"]
    assert doc["options"]["tenant"] == "acme"
    lo, hi = T0 + timedelta(hours=6), T0 + timedelta(days=2)
    want: dict[tuple, list] = defaultdict(list)
    for e in usage_events():
        if e.tenant == "acme" and lo <= e.ts < hi:
            day = e.ts.replace(hour=0, minute=0).isoformat()
            want[(day, e.service, e.tags["env"])].append(e)
    got = {(r["period"], r["service"], r["tag:env"]): r for r in doc["rows"]}
    assert set(got) == set(want)
    for key, mine in want.items():
        assert (exact(got[key]["cost_usd"]), got[key]["events"]) == (money(mine), len(mine))
    for day in {k[0] for k in got}:  # shares are of each day's cost
        assert sum(r["share"] for k, r in got.items() if k[0] == day) == pytest.approx(1.0)


def test_spend_by_api_key_team_and_a_tag_that_not_every_event_has(answers):
    got = {(r["api_key"], r["team"], r["tag:feature"]): r["events"]
           for r in answers["keys"]["rows"]}
    want: dict[tuple, int] = defaultdict(int)
    for e in usage_events():
        want[(e.api_key_id, e.team, e.tags.get("feature", ""))] += 1
    assert got == want


def test_top_movers_compare_a_day_with_the_day_before(answers):
    doc = answers["movers"]
    assert doc["columns"] == ["service", "model", "cost_usd", "previous_usd", "change_usd",
                              "change_pct"]
    split, until = T0 + timedelta(days=1), T0 + timedelta(days=2)
    groups: dict[tuple, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for e in usage_events():
        if e.ts < until:
            groups[(e.service, e.model)][0 if e.ts >= split else 1] += exact(e.cost_usd)
    ranked = sorted(groups, key=lambda k: (-(groups[k][0] - groups[k][1]), k))[:3]
    assert [(r["service"], r["model"]) for r in doc["rows"]] == ranked
    for r in doc["rows"]:
        now, before = groups[(r["service"], r["model"])]
        assert (exact(r["cost_usd"]), exact(r["previous_usd"])) == (now, before)
        assert r["change_pct"] == pytest.approx(float(100 * (now - before) / before))


def test_decisions_per_hour_by_action_and_reason_with_high_and_critical(answers):
    got = {(r["period"], r["action"], r["reason_code"]): r for r in answers["decisions"]["rows"]}
    want: dict[tuple, list] = defaultdict(list)
    for d in decisions():  # the one read twice is one row
        want[(d.ts.replace(minute=0).isoformat(), d.action.value, d.reason.code)].append(d)
    assert set(got) == set(want)
    for key, mine in want.items():
        r = got[key]
        assert r["decisions"] == len(mine)
        assert r["high_or_critical"] == sum(d.priority in ("high", "critical") for d in mine)
        assert exact(r["est_cost_usd"]) == sum(exact(d.est_cost_usd) for d in mine)
    acme = answers["decisions_acme"]["rows"]
    assert sum(r["decisions"] for r in acme) == sum(d.tenant == "acme" for d in decisions())


def test_routing_savings_leave_out_a_route_answered_again(answers):
    [row] = answers["savings"]["rows"]
    routed = [d for d in decisions() if d.reason.code == "routed_cheaper_model"]
    assert len(routed) < sum(d.action.value == "route" for d in decisions())
    assert (row["requested_model"], row["model"], row["routed"]) == (
        "gpt-4o", "gpt-4o-mini", len(routed))
    assert exact(row["saved_usd"]) == len(routed) * (Decimal("0.0075") - Decimal("0.0012"))
    assert (row["mean_quality_given_up"], row["max_quality_given_up"]) == (0.08, 0.08)


def test_anomalies_of_a_tenant_are_its_scopes_only_newest_first(answers):
    everything = answers["anomalies_all"]["rows"]
    assert [r["message"] for r in everything] == [f"spend {i}" for i in range(7, -1, -1)]
    assert all(r["driver"] for r in everything)  # the threshold alert is not an anomaly
    [newest] = answers["anomalies"]["rows"]  # limit 1
    acme = [a for a in alerts() if a.kind == "anomaly"
            and (a.scope == "tenant:acme" or a.scope.startswith("tenant:acme/"))]
    assert newest["message"] == max(acme, key=lambda a: a.ts).message
    assert newest["scope"] == "tenant:acme/service:chat"


def test_utilisation_is_each_budget_s_latest_snapshot(answers):
    got = {r["budget_key"]: r for r in answers["utilisation"]["rows"]}
    assert set(got) == {"tenant:acme|day", "tenant:beta|day", "tenant:acme|1h"}
    for key, r in got.items():
        last = max((s for s in snapshots() if s.budget_key == key), key=lambda s: s.ts)
        assert (r["at"], r["used_usd"], r["limit_usd"]) == (
            last.ts.isoformat(), last.used_usd, last.limit_usd)
        assert r["utilisation"] == pytest.approx(last.used_usd / last.limit_usd)
        assert (r["forecast_low_usd"], r["forecast_high_usd"]) == (
            last.forecast_low_usd, last.forecast_high_usd)
    shares = [r["utilisation"] for r in answers["utilisation"]["rows"]]
    assert shares == sorted(shares, reverse=True)
    daily = {(r["period"], r["budget_key"]): r for r in answers["utilisation_daily"]["rows"]}
    assert {k[1] for k in daily} == {"tenant:acme|day", "tenant:acme|1h"}  # acme's only
    assert daily[(T0.isoformat(), "tenant:acme|day")]["utilisation"] == pytest.approx(0.8)
    assert daily[(T0.isoformat(), "tenant:acme|day")]["snapshots"] == 6  # one written twice


def test_forecast_accuracy_against_what_each_closed_period_closed_at(answers):
    rows = {(r["budget_key"], r["elapsed"]): r for r in answers["accuracy"]["rows"]}
    # acme day 2 is not closed; the rolling window is never measured
    assert set(rows) == {(k, q) for k in ("tenant:acme|day", "tenant:beta|day")
                         for q in ("0-25%", "25-50%", "50-75%", "75-100%")}
    for (key, elapsed), r in rows.items():
        quarter = ["0-25%", "25-50%", "50-75%", "75-100%"].index(elapsed)
        mine = [s for s in snapshots() if s.budget_key == key and s.ts.day == T0.day
                and not s.learning]
        closed = max(mine, key=lambda s: s.ts).used_usd
        [s] = [s for s in mine if s.ts == T0 + timedelta(hours=6 * quarter)]
        assert (r["periods"], r["snapshots"]) == (1, 1)
        assert r["mean_abs_error"] == pytest.approx(abs(s.forecast_usd - closed) / closed)
        held = s.forecast_low_usd <= closed <= s.forecast_high_usd
        assert r["coverage"] == (1.0 if held else 0.0), (key, elapsed)
        assert r["mean_width"] == pytest.approx(
            (s.forecast_high_usd - s.forecast_low_usd) / closed)
    assert [rows[("tenant:acme|day", q)]["coverage"] for q in ("0-25%", "25-50%", "50-75%",
                                                                "75-100%")] == [1, 1, 0, 0]
    # a period counts once it has ended, not at a snapshot near its end
    assert answers["accuracy_before_end"]["rows"] == []


def test_hostile_values_are_only_ever_values(answers):
    # a tenant and tag keys that would be SQL if pasted in: bound parameters, so no tenant
    # has that name and no event that tag
    assert answers["hostile"]["rows"] == []
    [row] = answers["hostile_tag"]["rows"]
    assert row["tag:env'] AS x FROM system.tables --"] == ""
    assert row["events"] == len(usage_events())
