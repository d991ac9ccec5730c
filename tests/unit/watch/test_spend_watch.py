"""A scoring tick end to end, without Kafka: outlooks, overrun alerts, anomalies, pacing."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from prsm_events.accounting.budgets import Budget, BudgetBook
from prsm_events.accounting.ledger import BudgetLedger, to_nano
from prsm_events.accounting.periods import ROLLING
from prsm_events.accounting.scopes import scopes_of
from prsm_events.kafka.partitioning import owner_partition
from prsm_events.scoring import BatchScorer
from prsm_events.scoring.calendar_math import profile_weights, weekday_counts
from prsm_events.watch.meter import SpendMeter
from prsm_events.watch.outlook import BudgetOutlook, OutlookColumns, rolling_horizons
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

    def tick(self, seconds: float | None = None) -> WatchReport:
        self.now += 60.0
        interval = dataclasses.replace(self.meter.take(), seconds=seconds)  # as if it lasted
        return self.watch.tick(interval, self.book,
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


def test_overrun_alerts_come_only_from_the_worker_that_answers_for_the_budget() -> None:
    """A worker that does not answer for a budget (another worker owns its tenant, or
    partition 0 for a budget over tenants) sends no overrun alert for it, calendar or
    rolling, nor counts one as sent: answering for it later, it alerts."""
    budgets = [Budget(scope="tenant:a", period="day", limit_usd=100.0),
               Budget(scope="tenant:a", period="24h", limit_usd=100.0),
               Budget(scope="global", period="day", limit_usd=100.0)]
    def overruns(answered_from: int) -> list[tuple[int, str]]:
        rig = Rig(*budgets)
        fired = []
        for minute in range(120):
            rig.spend("a", 0.2)
            rig.now += 60.0
            ours = minute >= answered_from
            report = rig.watch.tick(
                rig.meter.take(), rig.book,
                lambda b: rig.ledger.view(b, b.tenant or "", rig.now), rig.now,
                answers=lambda some, ours=ours: [ours] * len(some))
            fired += [(minute, a.scope + "|" + a.message.split(" budget")[0])
                      for a in report.alerts if a.kind == "forecast_overrun"]
        return fired

    fired = {True: overruns(0), False: overruns(100)}  # the second given it at minute 100
    assert sorted(what for _, what in fired[True]) == [
        "global|the day", "tenant:a|the 24h", "tenant:a|the day"]
    assert all(minute < 60 for minute, _ in fired[True])
    assert [minute for minute, _ in fired[False]] == [100, 100, 100]
    assert sorted(w for _, w in fired[False]) == sorted(w for _, w in fired[True])


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


def test_an_anomaly_over_tenants_is_told_by_the_worker_that_answers_for_it() -> None:
    """A spike spread over 30 tenants, too small in each to page anyone: the global scope
    finds it. Among several workers each finds it in its share of the global scope; only
    the one that answers for partition 0 (for scopes over tenants) sends the alert."""
    def spread_spike(answers: Any) -> list[WatchReport]:
        rig = Rig()
        reports = []
        for minute in range(150):
            for i in range(30):
                rig.spend(f"t{i}", 0.01 + 0.001 * ((minute + i) % 3)
                          + (0.009 if minute >= 140 else 0.0))
            rig.now += 60.0
            reports.append(rig.watch.tick(rig.meter.take(), [], lambda b: None, rig.now,
                                          answers))
        return reports

    alone = spread_spike(None)
    ours = spread_spike(lambda tenants: np.ones(len(tenants), dtype=bool))
    theirs = spread_spike(lambda tenants: np.array([t is not None for t in tenants]))
    [alert] = [a for a in alone[140].alerts if a.kind == "anomaly"]
    assert alert.scope == "global" and not any(a.kind == "anomaly" for r in alone[:140]
                                               for a in r.alerts)
    assert [a.alert_id for a in ours[140].alerts] == [alert.alert_id]
    assert theirs[140].alerts == [] and [f.scope for f in theirs[140].findings] == ["global"]


def test_an_interval_that_lasted_longer_is_learned_scored_and_paced_at_its_rate() -> None:
    """The timer's intervals last longer than ``interval_s`` by each tick's run: spend and
    demand of an interval that lasted 120 or 180 s count at their rate per 60 s (the same
    scores, forecasts and pacing as 60 s of that rate), and an anomaly alert reports what
    was spent in the seconds the interval lasted."""
    budgets = (Budget(scope="tenant:a", period="day", limit_usd=50.0, pacing=True),)
    nominal, stretched = Rig(*budgets), Rig(*budgets)
    scopes = scopes_of("a", service="chat", api_key_id="k1")
    anomalies = []
    for minute in range(150):
        lasted = 60.0 * (1 + minute % 3)
        usd = (0.10 + 0.01 * (minute % 2)) * (20 if minute == 140 else 1)
        for rig, factor in ((nominal, 1.0), (stretched, lasted / 60)):
            rig.meter.add_spend(scopes, usd * factor)  # (the ledger stays empty in both)
            rig.meter.add_demand(["tenant:a"], 2 * usd * factor, high=minute % 4 == 0)
        a, b = nominal.tick(), stretched.tick(seconds=lasted)
        assert a.scores.scopes == b.scores.scopes
        for name in ("observed", "score", "sigma", "expected"):
            assert getattr(b.scores, name) == pytest.approx(getattr(a.scores, name), rel=1e-9)
        assert b.pacing["tenant:a|day"].pressure == pytest.approx(
            a.pacing["tenant:a|day"].pressure, rel=1e-9, abs=1e-12)
        assert b.outlooks["tenant:a|day"].period_end_spend_usd == pytest.approx(
            a.outlooks["tenant:a|day"].period_end_spend_usd, rel=1e-9)
        assert [x.alert_id for x in b.alerts] == [x.alert_id for x in a.alerts]
        anomalies += [minute for x in b.alerts if x.kind == "anomaly"]
        if minute == 140:
            [x] = [x for x in a.alerts if x.kind == "anomaly"]
            [y] = [y for y in b.alerts if y.kind == "anomaly"]
            assert y.observed == pytest.approx(3 * x.observed) and y.observed >= 6.0
            assert y.expected == pytest.approx(3 * x.expected)
            assert "in the last 180 s is $" in y.message and "in the last 60 s" in x.message
            assert y.details["driver_observed"] == pytest.approx(
                3 * x.details["driver_observed"])
    assert anomalies == [140]


def test_a_steady_rate_through_intervals_of_uneven_length_is_no_anomaly() -> None:
    """A key that spends $0.10 a minute, through intervals of 60 s and now and then 150 s
    (a tick that ran long on a loaded machine): measured, they are no anomaly; counted as
    60 s each, the long ones would be."""
    def run(measured: bool) -> list[str]:
        rig = Rig(Budget(scope="tenant:a", period="month", limit_usd=1e6))
        found = []
        for minute in range(200):
            lasted = 150.0 if minute > 100 and minute % 37 == 0 else 60.0
            rig.spend("a", (0.10 + 0.01 * (minute % 2)) * lasted / 60, api_key="k1")
            found += [a.scope for a in rig.tick(lasted if measured else None).alerts
                      if a.kind == "anomaly"]
        return found
    assert run(measured=True) == []
    assert run(measured=False)  # the case this guards against


def test_a_sent_overrun_alert_builds_no_outlook_at_later_ticks(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Once a budget's overrun alert is sent (a calendar period's for the period, a rolling
    window's until its forecast falls back), later ticks build no outlook object for it (with
    10^5 budgets forecast to overrun that was over a second a tick)."""
    built: list[str] = []
    outlook = OutlookColumns.outlook

    def counted(columns: OutlookColumns, i: int) -> BudgetOutlook:
        built.append(columns.budgets[i].key)
        return outlook(columns, i)
    monkeypatch.setattr(OutlookColumns, "outlook", counted)
    rig = Rig(Budget(scope="tenant:a", period="day", limit_usd=5.0),
              Budget(scope="tenant:a", period="24h", limit_usd=5.0))
    alerted: dict[str, int] = {}
    for minute in range(40):
        built.clear()
        rig.spend("a", 0.2)
        for a in rig.tick().alerts:
            alerted.setdefault(a.alert_id.split("|forecast_overrun")[0], minute)
        if len(alerted) == 2 and minute > max(alerted.values()):
            assert built == [], minute
    assert set(alerted) == {"tenant:a|day", "tenant:a|24h"} and max(alerted.values()) < 30


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
            assert report.directives == []  # (anomaly directives only)
            [directive] = report.paced
            assert directive.origin == "pacing:day" and directive.key == "tenant:b|pacing:day"
            assert report.paced.values() == [directive.model_dump_json().encode()]
            assert directive.priorities == ("low", "normal")
            assert directive.allow_fraction == pytest.approx(1 - action.throttle_share, abs=1e-4)
            assert action.reserve > 0  # kept for the high/critical fifth of the demand
        if report.lifts:
            assert report.lifts == ["tenant:b|pacing:day"] and minute > 120
            lifted = minute
    # the demand forecast forgets the burst in a few hours (level weight 0.02 per interval)
    assert max(pressures[:120]) > 0.75 and pressures[-1] == 0.0
    assert 120 < lifted < 720


MINUTES = 500  # (the pressure falls back below throttling after about 470)


def paced_while_owned(away: list[range]) -> tuple[list[tuple[bool, int, list[str], bool]],
                                                   SpendWatch]:
    """A paced budget throttled for hours, then relaxed, on a worker that does not answer
    for it in the minutes ``away``: per minute (ours, directives, lifts, throttles)."""
    rig = Rig(Budget(scope="tenant:b", period="day", limit_usd=10.0, pacing=True))
    ours = True

    def answers(tenants: list[str | None]) -> np.ndarray:
        assert set(tenants) == {"b"}  # the budget's, or a finding's scope's
        return np.full(len(tenants), ours)
    seen: list[tuple[bool, int, list[str], bool]] = []
    for minute in range(MINUTES):
        asked = 0.05 if minute < 120 else 0.0001
        rig.meter.add_demand(["tenant:b"], asked, high=minute % 5 == 0)
        rig.spend("b", asked * 0.5)
        ours = not any(minute in r for r in away)
        rig.now += 60.0
        report = rig.watch.tick(rig.meter.take(), rig.book,
                                lambda b: rig.ledger.view(b, b.tenant or "", rig.now), rig.now,
                                answers)
        seen.append((ours, len(report.paced), report.lifts,
                     report.pacing["tenant:b|day"].throttle_share > 0))
    return seen, rig.watch


def test_pacing_directives_are_issued_and_lifted_only_for_the_budgets_the_worker_answers_for(
) -> None:
    """After a rebalance the former owner of a budget stops renewing its directive (left to
    lapse) and never lifts the one the new owner issues; given back, it issues it again."""
    key = "tenant:b|pacing:day"
    seen, watch = paced_while_owned([range(80, 100), range(200, 260)])
    throttled = [m for m, (*_, throttles) in enumerate(seen) if throttles]
    assert throttled[0] < 80 and 260 < throttled[-1] < MINUTES - 20  # away while it throttles
    assert all(n == (1 if ours and throttles else 0) for ours, n, _, throttles in seen)
    assert seen[79][1] == seen[100][1] == seen[260][1] == 1  # before it went, once back
    # the one lift, once the pressure falls (the budget ours then)
    lifted = [m for m, (_, _, lifts, _) in enumerate(seen) if lifts]
    assert lifted == [throttled[-1] + 1] and seen[lifted[0]][2] == [key]
    assert key not in watch.pacing_directives
    # away when the pressure falls: no lift then, nor after (its directive lapses)
    seen, watch = paced_while_owned([range(throttled[-1] - 10, throttled[-1] + 10)])
    assert [n for _, n, _, _ in seen] == [1 if m in throttled and m < throttled[-1] - 10
                                          else 0 for m in range(MINUTES)]
    assert not any(lifts for _, _, lifts, _ in seen) and key not in watch.pacing_directives


def test_a_budget_another_worker_paced_meanwhile_comes_back_as_a_new_one() -> None:
    """A worker ticks only the budgets it answers for: one taken away while throttling is
    not looked at, its directive forgotten (left to lapse); given back once its demand has
    fallen, it is paced as a new budget: no pressure kept from before, no lift of a
    directive the other worker may have issued meanwhile."""
    budget = Budget(scope="tenant:b", period="day", limit_usd=10.0, pacing=True)
    rig = Rig(budget)
    key = "tenant:b|pacing:day"
    seen = []
    for minute in range(240):
        here = not 100 <= minute < 200  # away for 100 minutes
        asked = 0.05 if minute < 150 else 0.0001
        if here:  # (while away its events go to the other worker)
            rig.meter.add_demand(["tenant:b"], asked, high=False)
            rig.spend("b", asked * 0.5)
        rig.now += 60.0
        report = rig.watch.tick(rig.meter.take(), [budget] if here else [],
                                lambda b: rig.ledger.view(b, b.tenant or "", rig.now), rig.now)
        seen.append((report.paced.keys(), report.lifts,
                     report.pacing[budget.key].pressure if here else None))
        if minute == 99:
            assert seen[-1][0] == [key] and key in rig.watch.pacing_directives  # throttling
        if minute == 100:
            assert key not in rig.watch.pacing_directives  # forgotten
    back = seen[200:]
    assert all(keys == [] and lifts == [] for keys, lifts, _ in back)
    assert back[0][2] < 0.1  # as a new budget, not the pressure it had when it left


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
                sorted([d.key for d in report.directives] + report.paced.keys()),
                report.paced.values(), report.lifts,
                {k: round(v.pressure, 12) for k, v in report.pacing.items()})

    end = 720
    reference = [seen(minute_of(kept, minute)) for minute in range(end)]
    lifted = next(m for m, (_, _, _, lifts, _) in enumerate(reference) if lifts)
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


def test_a_tick_over_columns_is_the_same_in_any_slices_and_from_views(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker reads the ledger's figures as columns and forecasts ``CHUNK`` budgets at a
    time: with slices of 3, and with views read one by one, every outlook, pacing action,
    alert and directive is the same."""
    budgets = [Budget(scope=f"tenant:t{i}", period=period, limit_usd=limit, pacing=paced)
               for i in range(5)
               for period, limit, paced in (("day", 3.0, i % 2 == 0), ("1h", 0.4, False),
                                            ("week", 9.0, False))]
    budgets += [Budget(scope="global", period="day", limit_usd=6.0, pacing=True),
                Budget(scope="global", period="24h", limit_usd=6.0),
                Budget(scope="tenant:t1/service:chat", period="7d", limit_usd=1.0)]
    whole, sliced = Rig(*budgets), Rig(*budgets)
    reports: dict[str, list[WatchReport]] = {"whole": [], "sliced": []}
    for minute in range(150):
        for rig in (whole, sliced):
            for i in range(5):
                rig.spend(f"t{i}", 0.002 * (1 + i) * (6 if 60 <= minute < 90 and i == 3 else 1))
                rig.meter.add_demand(scopes_of(f"t{i}", service="chat"), 0.004 * (1 + i),
                                     high=False)
        reports["whole"].append(whole.tick())  # views, one by one
        with monkeypatch.context() as patch:
            patch.setattr("prsm_events.watch.spend_watch.CHUNK", 3)
            sliced.now += 60.0
            reports["sliced"].append(sliced.watch.tick(
                sliced.meter.take(), sliced.book,
                sliced.ledger.figures(list(sliced.book), sliced.now), sliced.now))
    kinds: set[str] = set()
    for a, b in zip(reports["whole"], reports["sliced"], strict=True):
        assert list(a.outlooks) == list(b.outlooks)
        assert set(a.outlooks) == {x.key for x in budgets}
        for key, o in a.outlooks.items():
            assert b.outlooks[key].period_end_spend_usd == pytest.approx(
                o.period_end_spend_usd, rel=1e-9, abs=1e-6)
            assert b.outlooks[key].high_usd == pytest.approx(o.high_usd, rel=1e-9, abs=1e-6)
        assert {k: round(v.pressure, 9) for k, v in a.pacing.items()} == {
            k: round(v.pressure, 9) for k, v in b.pacing.items()}
        assert [x.alert_id for x in a.alerts] == [x.alert_id for x in b.alerts]
        assert [x.key for x in a.directives] == [x.key for x in b.directives]
        assert a.paced.values() == b.paced.values()
        assert a.lifts == b.lifts
        kinds |= {x.kind for x in a.alerts}
    assert kinds == {"forecast_overrun", "anomaly"}  # the comparison covered both
    assert any(r.directives for r in reports["whole"])
    # and each outlook is the one forecast for its budget alone, row by row
    watch, now, last = whole.watch, whole.now, reports["whole"][-1]
    mid = now - 30.0
    clock = (int(mid // 1800) % 48, 30.0, (mid % 1800) // 60 + 1)
    for b in budgets:
        view = whole.ledger.view(b, b.tenant or "", now)
        if b.period in ROLLING:
            horizons = rolling_horizons(ROLLING[b.period], 60.0)
            ends = [now + h for h in horizons]
        else:
            ends = [view.end]
        rest = watch.scorer.rest(
            [b.scope] * len(ends),
            [profile_weights(now, end, 60.0, 1800.0, 48) for end in ends],
            days=[weekday_counts(now, end, 60.0) for end in ends], now=clock)
        ahead = list(zip(rest.mean, rest.low, rest.high, strict=True))
        want = (BudgetOutlook.rolling(view, horizons, ahead) if b.period in ROLLING
                else BudgetOutlook.of(view, ahead[0]))
        got = last.outlooks[b.key]
        assert (got.period_end_spend_usd, got.low_usd, got.high_usd) == pytest.approx(
            (want.period_end_spend_usd, want.low_usd, want.high_usd), rel=1e-9, abs=1e-6)


def test_a_forecast_says_it_is_learning_until_its_history_covers_its_horizon() -> None:
    # a day budget from midnight at $0.2 a minute: at minute m the forecast looks 1440 - m
    # minutes ahead on m minutes of history, so it is learning until noon; a 1h window until
    # its interval could be checked once (6 h)
    rig = Rig(Budget(scope="tenant:a", period="day", limit_usd=1000.0),
              Budget(scope="tenant:a", period="1h", limit_usd=1000.0))
    seen: dict[str, list[bool]] = {"tenant:a|day": [], "tenant:a|1h": []}
    for _ in range(800):
        rig.spend("a", 0.2)
        report = rig.tick()
        for key, flags in seen.items():
            flags.append(report.outlooks[key].learning)
    day, hour = seen["tenant:a|day"], seen["tenant:a|1h"]
    first_day = day.index(False)
    assert 715 <= first_day <= 725 and not any(day[first_day:])  # about noon, for good
    assert 355 <= hour.index(False) <= 365 and not any(hour[hour.index(False):])
    shown = dataclasses.replace(report.outlooks["tenant:a|day"], learning=True).figures()
    assert shown["learning"] is True
    assert (shown["period_end_spend_low_usd"], shown["period_end_spend_high_usd"]) == (None,
                                                                                      None)


def moved_away_and_back(partitions: bool) -> tuple[list[WatchReport], list[WatchReport], Rig]:
    """Tenant b (a budget that throttles on anomalies) on this worker for 12 h, on another
    worker's partition for 6 h, then back; tenant a stays. Each tick looks at the budgets
    the worker answers for (as ``SpendControl.watched`` gives them)."""
    rig = Rig(Budget(scope="tenant:b", period="month", limit_usd=1e6, anomaly_throttle=True))
    rng = np.random.default_rng(7)
    owned = {"a", "b"}

    def answers(tenants: list[str | None]) -> np.ndarray:
        return np.array([t in owned for t in tenants], dtype=bool)

    away, back = [], []
    for minute in range(720 + 360 + 30):
        gone = 720 <= minute < 1080
        owned = {"a"} if gone else {"a", "b"}
        rig.spend("a", 0.10 + 0.02 * rng.random())
        if not gone:
            rig.spend("b", 0.20 + 0.04 * rng.random())
        rig.now += 60.0
        report = rig.watch.tick(
            rig.meter.take(), [b for b in rig.book if b.tenant in owned],
            lambda b: rig.ledger.view(b, b.tenant or "", rig.now), rig.now, answers,
            frozenset({0, 1} if "b" in owned else {0}) if partitions else None)
        (away if gone else back if minute >= 1080 else []).append(report)
    return away, back, rig


def test_a_tenant_whose_partition_comes_back_is_no_anomaly() -> None:
    """While another worker owns its partition, a tenant's scopes are parked here (not
    learned as silent), and the detector of the global scope, this worker's share, starts
    again: back, its ordinary spend is no spike. Learned as silence, it would page and
    throttle legitimate traffic."""
    away, back, rig = moved_away_and_back(partitions=True)
    assert all(not any(s.startswith("tenant:b") for s in r.scores.scopes) for r in away)
    assert not any(r.findings or r.alerts or r.directives for r in away + back)
    assert len(rig.watch.scorer.parked) == 0 and "tenant:b" in rig.watch.scorer.rows
    assert rig.watch.partitions == frozenset({0, 1})
    _, unparked, _ = moved_away_and_back(partitions=False)
    [alert] = unparked[0].alerts
    assert (alert.kind, alert.scope, alert.severity) == ("anomaly", "tenant:b", "high")
    assert [d.scope for d in unparked[0].directives] == ["tenant:b/service:chat"]  # driver


@pytest.mark.parametrize("period", ["day", "24h"])
def test_a_budget_over_tenants_is_forecast_whole_from_a_workers_share(period) -> None:
    """A worker owning some of the partitions learns its share of the global scope; the
    budget's figures are the whole budget's, and say which share of it is the worker's
    (``BudgetView.share``): the rest of the period is forecast as the whole's, its share's
    forecast scaled, not as the worker's share alone."""
    import msgspec

    def outlook(share: float) -> BudgetOutlook:
        rig = Rig(Budget(scope="global", period=period, limit_usd=1e6))
        for minute in range(240):
            rig.spend(f"t{minute % 3}", 0.10 + 0.01 * (minute % 4))
            report = rig.watch.tick(rig.meter.take(), rig.book, lambda b: msgspec.structs.replace(
                rig.ledger.view(b, "", rig.now + 60.0), share=share), rig.now + 60.0)
            rig.now += 60.0
        [o] = report.outlooks.values()
        return o

    whole, half = outlook(1.0), outlook(0.5)
    assert whole.spent_usd == half.spent_usd > 0
    if period == "day":  # the rest of the period: twice the share's
        assert whole.period_end_spend_usd - whole.spent_usd > 1.0
        for field in ("period_end_spend_usd", "low_usd", "high_usd"):
            assert getattr(half, field) - half.spent_usd == pytest.approx(
                2 * (getattr(whole, field) - whole.spent_usd), abs=1e-5), field
    else:  # a window ahead: more of it to come
        assert half.period_end_spend_usd > whole.period_end_spend_usd + 1.0


def test_a_tick_adopts_the_handed_over_scopes_of_the_tenants_it_answers_for() -> None:
    """States handed over by other workers wait in ``arrivals``; a tick adopts those of the
    tenants this worker answers for (and parks, and reports, what it gives away)."""
    away, _, _ = moved_away_and_back(partitions=True)
    parked = away[0].parked
    assert sorted(parked) == ["tenant:b", "tenant:b/service:chat"]
    other = Rig()
    donor = BatchScorer("numpy")
    donor.step({s: 1.0 for s in parked} | {"tenant:c": 1.0}, {}, bucket=0)
    donor.park([*parked, "tenant:c"])
    from prsm_events.scoring.scope_states import (
        ScopeState,
        decode_scope_state,
        encode_scope_state,
    )

    records = {s: decode_scope_state(encode_scope_state(donor.parked.state_of(s), 60.0))
               for s in [*parked, "tenant:c"]}  # as the topic brings them
    torn = ScopeState(2, 60.0, ["anomaly.n"], [[3]], b"")
    other.watch.arrivals.update(records | {"tenant:b/model:m": torn})
    other.now += 60.0
    report = other.watch.tick(other.meter.take(), [], lambda b: None, other.now,
                              lambda tenants: np.array([t == "b" for t in tenants]))
    assert sorted(report.adopted) == sorted(parked) and other.watch.arrivals == {}
    assert sorted(other.watch.scorer.rows) == sorted(parked)
