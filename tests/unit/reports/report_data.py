"""A small, fixed set of usage events, decisions and alerts over three days, and the figures
each report must give for it, computed here in Python (money as exact decimals)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from prsm_events.events.alerts import Alert
from prsm_events.events.decision import Action, DecisionRecord, ReasonRecord
from prsm_events.events.usage import UsageEvent
from prsm_events.store.snapshot_rows import SnapshotRow

T0 = datetime(2026, 11, 2, tzinfo=UTC)
TENANTS = ("acme", "beta", "acmex")  # acmex: a tenant whose name starts with another's


def usage_events() -> list[UsageEvent]:
    """240 events, one every 15 minutes from T0 (60 hours), costs of up to 9 decimals."""
    out = []
    for i in range(240):
        out.append(UsageEvent(
            event_id=f"e{i}", ts=T0 + timedelta(minutes=15 * i), tenant=TENANTS[i % 3],
            service=("chat", "search")[(i // 3) % 2], team=("red", "blue")[(i // 2) % 2],
            api_key_id=f"k{i % 5}", model=("gpt-4o-mini", "claude-sonnet-4")[i % 2],
            input_tokens=100 + i, output_tokens=10 + i % 7,
            cost_usd=round((i % 7 + 1) * 0.001 + i * 1e-9, 9),
            tags={"env": ("dev", "prod")[i % 2]} | ({"feature": "search"} if i % 5 == 0 else {})))
    return out


def money(events: list[UsageEvent]) -> Decimal:
    return sum((Decimal(repr(e.cost_usd)) for e in events), Decimal(0))


def decisions() -> list[DecisionRecord]:
    """36 decisions, one every 5 minutes from T0 (3 hours)."""
    out = []
    for i in range(36):
        action = (Action.ALLOW, Action.ROUTE, Action.REJECT, Action.THROTTLE)[i % 4]
        routed = action is Action.ROUTE
        again = routed and i % 8 == 5  # a route answered again
        out.append(DecisionRecord(
            request_id=f"r{i}", ts=T0 + timedelta(minutes=5 * i), tenant=TENANTS[i % 2],
            action=action, model="gpt-4o-mini" if routed else "gpt-4o", provider="openai",
            requested_model="gpt-4o", priority=("normal", "high", "critical")[i % 3],
            est_cost_usd=0.0012 if routed else 0.0075,
            requested_est_cost_usd=0.0075 if routed and not again else None,
            quality_given_up=0.08 if routed and not again else None,
            reason=ReasonRecord({Action.ALLOW: "within_budget",
                                 Action.ROUTE: "already_decided" if again
                                 else "routed_cheaper_model",
                                 Action.REJECT: "over_budget",
                                 Action.THROTTLE: "budget_exhausted"}[action], "m"),
            budget={"scope": "tenant:acme", "period": "day", "limit_usd": 1.0,
                    "spent_usd": 0.01 * i, "reserved_usd": 0.0, "remaining_usd": 1 - 0.01 * i,
                    "period_end": "2026-11-03T00:00:00+00:00", "hard": True}))
    return out


def alerts() -> list[Alert]:
    scopes = ["tenant:acme", "tenant:acme/service:chat", "tenant:acmex", "tenant:beta"]
    out = [Alert(alert_id=f"a{i}", ts=T0 + timedelta(hours=i), kind="anomaly",
                 scope=scopes[i % 4], severity="high", observed=10.0 + i, expected=2.0,
                 score=5.0 + i, message=f"spend {i}", driver=f"service:s{i}")
           for i in range(8)]
    out.append(Alert(alert_id="t1", ts=T0, kind="budget_threshold", scope="tenant:acme",
                     severity="warning", observed=0.8, expected=1.0, score=0.8, message="80%"))
    return out


def snapshots() -> list[SnapshotRow]:
    """Budget `tenant:acme|day` ($10) over two days and `tenant:beta|day` ($4) over one: a
    snapshot every 6 hours forecasting the period's end (and one at 3:00 while still
    learning), and each period's closing snapshot at 23:59:30 (what the period closed at).
    Day 2 of acme is not closed (no closing snapshot): it is left out of forecast accuracy. A
    rolling budget is never in it."""
    rows = []
    plan = {("tenant:acme|day", 0): (8.0, [(2.0, 5.0, 11.0), (4.0, 7.0, 9.0), (6.0, 8.5, 8.6),
                                           (7.5, 8.2, 8.4)]),
            ("tenant:beta|day", 0): (3.0, [(0.5, 1.0, 2.0), (1.0, 2.0, 3.5), (2.0, 2.9, 3.2),
                                           (2.8, 2.9, 3.1)]),
            ("tenant:acme|day", 1): (0.0, [(1.0, 6.0, 12.0)])}
    for (key, day), (closed, steps) in plan.items():
        start = T0 + timedelta(days=day)
        limit = 10.0 if key.startswith("tenant:acme") else 4.0
        for i, (used, low, high) in enumerate(steps):
            rows.append(SnapshotRow(
                start + timedelta(hours=6 * i), key, key.split("|")[0], "day", start,
                start + timedelta(days=1), limit, used, round((low + high) / 2, 6), low, high,
                None, False))
        if closed:
            rows.append(SnapshotRow(
                start + timedelta(hours=23, minutes=59, seconds=30), key, key.split("|")[0],
                "day", start, start + timedelta(days=1), limit, closed, closed, closed, closed,
                None, False))
    rows.append(SnapshotRow(T0, "tenant:acme|1h", "tenant:acme", "1h", T0 - timedelta(hours=1),
                            T0 + timedelta(minutes=30), 1.0, 0.5, 0.9, 0.5, 1.5, None, False))
    # a forecast made while still learning (wildly off): forecast accuracy leaves it out
    rows.append(SnapshotRow(T0 + timedelta(hours=3), "tenant:acme|day", "tenant:acme", "day",
                            T0, T0 + timedelta(days=1), 10.0, 3.0, 90.0, 0.1, 900.0, None, True))
    return rows
