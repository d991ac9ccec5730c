"""A scoring tick end to end, without Kafka: outlooks, overrun alerts, anomalies, pacing."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import pytest

from prsm_events.accounting.budgets import Budget, BudgetBook
from prsm_events.accounting.ledger import BudgetLedger, to_nano
from prsm_events.accounting.scopes import scopes_of
from prsm_events.kafka.partitioning import owner_partition
from prsm_events.scoring import BatchScorer
from prsm_events.watch.meter import SpendMeter
from prsm_events.watch.spend_watch import OVERRUN_HISTORY, SpendWatch, WatchReport

DAY0 = datetime(2026, 3, 10, tzinfo=UTC).timestamp()


class Rig:
    def __init__(self, *budgets: Budget) -> None:
        self.book = BudgetBook(budgets)
        self.ledger = BudgetLedger({}, {}, partitions=1, partition_of=owner_partition)
        self.meter = SpendMeter()
        self.watch = SpendWatch(BatchScorer("numpy"), interval_s=60.0)
        self.offsets = itertools.count()
        self.now = DAY0

    def spend(self, tenant: str, usd: float, api_key: str | None = None) -> None:
        scopes = scopes_of(tenant, service="chat", api_key_id=api_key)  # one service for all
        budgets = self.book.applicable(scopes)
        self.ledger.settle(tenant, None, to_nano(usd), self.now + 30, 0, next(self.offsets),
                           budgets)
        self.meter.add_spend(scopes, usd)

    def tick(self) -> WatchReport:
        self.now += 60.0
        return self.watch.tick(self.meter.take(), self.book,
                               lambda b: self.ledger.view(b, b.tenant or "", self.now), self.now)


def test_forecast_overrun_fires_once_per_period_before_the_money_is_spent() -> None:
    rig = Rig(Budget(scope="tenant:a", period="day", limit_usd=100.0))
    fired = []
    for minute in range(180):
        rig.spend("a", 0.2)
        report = rig.tick()
        fired += [(minute, a) for a in report.alerts if a.kind == "forecast_overrun"]
    [(minute, alert)] = fired
    outlook = report.outlooks["tenant:a|day"]
    assert outlook.spent_usd == pytest.approx(36.0)
    # 0.2 per minute for the 1260 minutes left: about $288 at the period end
    assert outlook.period_end_spend_usd == pytest.approx(36 + 0.2 * 1260, rel=0.1)
    assert outlook.low_usd <= outlook.period_end_spend_usd <= outlook.high_usd
    exhaustion = datetime.fromisoformat(str(outlook.exhaustion_ts)).timestamp()
    assert exhaustion == pytest.approx(rig.now + (100 - 36) / 0.2 * 60, rel=0.05)
    assert alert.observed > 100 and alert.expected == 100.0 and minute < 60
    assert alert.alert_id.endswith("2026-03-10T00:00:00+00:00")


def test_a_young_scope_forecasts_its_unseen_hours_at_its_rate_now() -> None:
    # a new scope's first minute carries $5, then it spends $0.01 a minute: the hours it has
    # not lived through yet are forecast at its rate now (before: at a level still holding
    # the burst, $267 for the day after four hours; the truth is about $19)
    rig = Rig(Budget(scope="tenant:a", period="day", limit_usd=100.0))
    alerts = []
    for minute in range(240):
        rig.spend("a", 5.0 if minute == 0 else 0.01)
        report = rig.tick()
        alerts += [minute for a in report.alerts if a.kind == "forecast_overrun"]
    outlook = report.outlooks["tenant:a|day"]
    assert 15 < outlook.period_end_spend_usd < 40
    assert outlook.low_usd <= 5 + 0.01 * 1439 <= outlook.high_usd
    # no alert from a forecast of a few intervals (at minute 0 it was $7,200, "high")
    assert all(m >= OVERRUN_HISTORY - 1 for m in alerts)


def test_the_next_period_can_alert_again() -> None:
    rig = Rig(Budget(scope="tenant:a", period="day", limit_usd=50.0))
    ids = set()
    for _ in range(2 * 1440 - 1):
        rig.spend("a", 0.05)
        ids |= {a.alert_id for a in rig.tick().alerts if a.kind == "forecast_overrun"}
    assert len(ids) == 2


def runaway_key(throttle: bool) -> list[WatchReport]:
    rig = Rig(Budget(scope="tenant:a", period="month", limit_usd=1e6, anomaly_throttle=throttle))
    reports = []
    for minute in range(150):
        rig.spend("a", 0.10 + 0.01 * (minute % 3), api_key="k1")
        leaked = 4.0 if minute >= 140 else 0.10 + 0.01 * (minute % 2)
        rig.spend("a", leaked, api_key="k2")
        reports.append(rig.tick())
    return reports


def test_a_runaway_key_raises_an_anomaly_naming_it_and_is_throttled_once() -> None:
    reports = runaway_key(throttle=True)
    assert not any(a.kind == "anomaly" for r in reports[:140] for a in r.alerts)
    onset = reports[140]
    [alert] = [a for a in onset.alerts if a.kind == "anomaly"]
    assert alert.scope == "tenant:a" and alert.driver == "tenant:a/api_key:k2"
    assert alert.severity == "high" and alert.observed > 4 > alert.expected
    [directive] = onset.directives
    assert (directive.scope, directive.origin, directive.action) == (
        "tenant:a/api_key:k2", "anomaly", "throttle")
    assert not any(d.origin == "anomaly" for r in reports[141:] for d in r.directives)


def test_anomaly_throttle_off_alerts_without_a_directive() -> None:
    reports = runaway_key(throttle=False)
    assert any(a.kind == "anomaly" for a in reports[140].alerts)
    assert not any(r.directives for r in reports)


def test_pacing_presses_when_demand_outruns_the_budget_and_lifts_after() -> None:
    rig = Rig(Budget(scope="tenant:b", period="day", limit_usd=10.0, pacing=True))
    pressures = []
    for minute in range(720):
        asked = 0.05 if minute < 120 else 0.0001  # $72/day of demand, then almost none
        rig.meter.add_demand(["tenant:b"], asked, high=minute % 5 == 0)
        rig.spend("b", asked * 0.5)  # what the policy let through
        report = rig.tick()
        action = report.pacing["tenant:b|day"]
        pressures.append(action.pressure)
        if minute == 119:
            assert action.throttle_share > 0
            [directive] = [d for d in report.directives if d.origin == "pacing:day"]
            assert directive.priorities == ("low", "normal")
            assert directive.allow_fraction == pytest.approx(1 - action.throttle_share, abs=1e-4)
            assert action.reserve > 0  # kept for the high/critical fifth of the demand
        if report.lifts:
            assert report.lifts == ["tenant:b|pacing:day"] and minute > 120
            lifted = minute
    # the demand forecast forgets the burst in a few hours (level weight 0.02 per interval)
    assert max(pressures[:120]) > 0.75 and pressures[-1] == 0.0
    assert 120 < lifted < 720


def test_a_watch_restored_from_its_checkpoint_goes_on_as_if_never_stopped(tmp_path) -> None:
    from prsm_events.scoring.checkpoint import read_checkpoint, write_checkpoint

    budgets = (Budget(scope="tenant:a", period="day", limit_usd=50.0),
               Budget(scope="tenant:b", period="day", limit_usd=10.0, pacing=True))
    kept, restarted = Rig(*budgets), Rig(*budgets)

    def minute_of(rig: Rig, minute: int) -> WatchReport:
        rig.spend("a", 0.05)
        asked = 0.05 if minute < 150 else 0.0001
        rig.meter.add_demand(["tenant:b"], asked, high=minute % 5 == 0)
        rig.spend("b", asked * 0.5)
        return rig.tick()

    def seen(report: WatchReport) -> tuple[Any, ...]:
        return (sorted(a.alert_id for a in report.alerts),
                sorted(d.key for d in report.directives), report.lifts,
                {k: round(v.pressure, 12) for k, v in report.pacing.items()})

    end = 720
    reference = [seen(minute_of(kept, minute)) for minute in range(end)]
    lifted = next(m for m, (_, _, lifts, _) in enumerate(reference) if lifts)
    overrun = next(m for m, (alerts, *_) in enumerate(reference) if alerts)
    assert overrun < lifted  # restart between the two: the alert is sent, the lift is due
    for minute in range(lifted):
        minute_of(restarted, minute)
    path = tmp_path / "scorer.npz"
    write_checkpoint(path, restarted.watch.scorer.export(), 60.0, restarted.watch.memory())
    restarted.watch = SpendWatch(BatchScorer("numpy"), interval_s=60.0)  # a new process
    state, memory = read_checkpoint(path, 60.0)
    restarted.watch.scorer.load(state)
    restarted.watch.recall(memory)
    later = [seen(minute_of(restarted, minute)) for minute in range(lifted, end)]
    assert later == reference[lifted:]  # the overrun alert is not repeated, the lift is sent


def test_a_rolling_window_alerts_when_forecast_to_fill_and_again_after_it_drained() -> None:
    rig = Rig(Budget(scope="tenant:a", period="24h", limit_usd=50.0))
    alerts: list[tuple[int, Any]] = []
    for minute in range(4 * 1440):
        fills = minute < 180 or minute >= 3 * 1440  # $3/h: $72 a window if it went on
        if fills:
            rig.spend("a", 0.05)
        report = rig.tick()
        alerts += [(minute, a) for a in report.alerts if a.kind == "forecast_overrun"]
        if minute == 179:
            outlook = report.outlooks["tenant:a|24h"]
            # $9 in the window; $3/h more reaches $50 about 13.7 h later
            assert outlook.spent_usd == pytest.approx(9.0, abs=0.06)
            exhaustion = datetime.fromisoformat(str(outlook.exhaustion_ts)).timestamp()
            assert exhaustion == pytest.approx(rig.now + 41 / 3 * 3600, rel=0.1)
            # its peak: a full window of $3/h (the $9 leave as the new spend comes)
            assert outlook.period_end_spend_usd == pytest.approx(72, rel=0.1)
        if minute == 2 * 1440:  # a day of nothing: the window is empty and forecast so
            assert report.outlooks["tenant:a|24h"].period_end_spend_usd < 5
    [(first, a1), (second, a2)] = alerts
    # the second time the forecaster first re-learns that spend is back (a few hours)
    assert first < 60 and 3 * 1440 <= second < 3 * 1440 + 360
    assert a1.alert_id != a2.alert_id and "trailing 24h window" in a2.message
