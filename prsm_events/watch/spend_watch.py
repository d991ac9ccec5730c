"""Each scoring tick, end to end and without I/O: forecasts, pacing and anomalies.

``SpendWatch.tick`` takes one interval of metered spend and demand, runs the batch scorer
once for every scope, and returns what the worker must publish and use:

- an outlook per budget (period-end spend with a 90% interval, exhaustion time; for a rolling
  window its peak over the next window) and a ``forecast_overrun`` alert the first time in a
  period the forecast crosses the limit (rolling: each time it crosses it again after having
  fallen back below);
- a pacing action per paced budget (for the decision policy), and a ``pacing:<period>``
  throttle directive for gateways while the pressure throttles (lifted when it no longer
  does; it expires by itself two ticks later if the worker goes away);
- anomaly alerts, and on high severity a throttle directive on the driving dimension when a
  budget of the scope (or its tenant) has ``anomaly_throttle`` on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from prsm_events.accounting.budgets import Budget
from prsm_events.accounting.ledger_view import NANO, BudgetView
from prsm_events.accounting.periods import ROLLING
from prsm_events.anomaly.findings import AnomalyFinding, AnomalyRule, find_anomalies
from prsm_events.decisions.pacing import PACED_PRIORITIES, PacingAction
from prsm_events.events.alerts import Alert
from prsm_events.events.directives import ThrottleDirective
from prsm_events.scoring.batch import BatchScorer, ScopeScores
from prsm_events.scoring.calendar_math import profile_weights, weekday_counts, weekday_of
from prsm_events.scoring.pacing_step import PacingInputs
from prsm_events.watch.meter import MeterInterval
from prsm_events.watch.outlook import BudgetOutlook, overrun_alert, rolling_horizons

__all__ = ["OVERRUN_HISTORY", "REARM_BELOW", "SpendWatch", "WatchReport"]

Clock = tuple[int, float, float]
"""For young scopes' forecasts: the outlook bucket just learned, intervals per bucket,
intervals of it passed (``BatchScorer.rest``'s ``now``)."""

OVERRUN_HISTORY = 10
"""Intervals a scope's forecaster must have learned before its forecast can raise
``forecast_overrun`` (its outlook is shown from the first)."""


REARM_BELOW = 0.9
"""A rolling window's overrun alert is armed again once its forecast falls below this share
of the limit."""


@dataclass(frozen=True)
class Counts:
    """Scoring intervals left until a period end: what each bucket of the spend outlook's
    half-hour profile weighs in them (read as a line through the buckets' middles:
    ``profile_weights``) and how many fall on each weekday."""

    profile: list[float]
    days: list[int]


@dataclass
class WatchReport:
    scores: ScopeScores
    outlooks: dict[str, BudgetOutlook] = field(default_factory=dict)
    pacing: dict[str, PacingAction] = field(default_factory=dict)
    alerts: list[Alert] = field(default_factory=list)
    directives: list[ThrottleDirective] = field(default_factory=list)
    lifts: list[str] = field(default_factory=list)
    findings: list[AnomalyFinding] = field(default_factory=list)


class SpendWatch:
    def __init__(
        self, scorer: BatchScorer, interval_s: float, rule: AnomalyRule | None = None,
        throttle_fraction: float = 0.5, throttle_s: float = 900.0,
    ) -> None:
        self.scorer = scorer
        self.interval_s = interval_s
        self.rule = rule or AnomalyRule()
        self.throttle_fraction = throttle_fraction
        self.throttle_s = throttle_s
        self.overrun_sent: dict[str, float] = {}
        """Budget key -> period start of the overrun alert sent (one per period)."""
        self.high_share: dict[str, float] = {}
        self.pacing_directives: set[str] = set()
        self.anomaly_until: dict[str, float] = {}

    def memory(self) -> dict[str, Any]:
        """What the watch remembers between ticks besides the scorer (JSON-able; kept with
        the scorer's checkpoint so a restart neither repeats a period's overrun alert nor
        forgets the directives it must lift)."""
        return {"overrun_sent": self.overrun_sent, "high_share": self.high_share,
                "pacing_directives": sorted(self.pacing_directives),
                "anomaly_until": self.anomaly_until}

    def recall(self, memory: dict[str, Any]) -> None:
        """Take back what ``memory`` returned (in an earlier process)."""
        self.overrun_sent = {str(k): float(v) for k, v in memory.get("overrun_sent", {}).items()}
        self.high_share = {str(k): float(v) for k, v in memory.get("high_share", {}).items()}
        self.pacing_directives = {str(k) for k in memory.get("pacing_directives", [])}
        self.anomaly_until = {str(k): float(v)
                              for k, v in memory.get("anomaly_until", {}).items()}

    def tick(self, interval: MeterInterval, book: Iterable[Budget],
             view: Callable[[Budget], BudgetView], now: float) -> WatchReport:
        mid = now - self.interval_s / 2  # the interval's place in the day and weekday
        clock = self._clock(mid, self._width)
        scores = self.scorer.step(interval.spend, interval.demand, int(mid // 3600) % 24,
                                  weekday_of(mid), (mid % 86400) / 86400)
        report = WatchReport(scores)
        budgets = list(book)
        calendar = [b for b in budgets if b.period not in ROLLING]
        if calendar:
            self._calendar(calendar, view, interval, now, clock, report)
        rolling = [b for b in budgets if b.period in ROLLING]
        if rolling:
            self._rolling(rolling, view, now, clock, report)
        self._anomalies(scores, budgets, now, report)
        return report

    def _calendar(self, budgets: list[Budget], view: Callable[[Budget], BudgetView],
                  interval: MeterInterval, now: float, clock: Clock,
                  report: WatchReport) -> None:
        """Calendar periods: the forecast to each period end, the overrun alert once per
        period, and pacing for the paced ones."""
        views = {b.key: view(b) for b in budgets}
        by_end: dict[float, Counts] = {}  # budgets share period ends: count once
        for b in budgets:
            end = views[b.key].end
            if end not in by_end:
                by_end[end] = self._counts(now, end)
        counts = [by_end[views[b.key].end] for b in budgets]
        rest = self.scorer.rest([b.scope for b in budgets], [c.profile for c in counts],
                                days=[c.days for c in counts], now=clock)
        for i, b in enumerate(budgets):
            o = BudgetOutlook.of(views[b.key], (rest.mean[i], rest.low[i], rest.high[i]))
            report.outlooks[b.key] = o
            if rest.learned[i] < OVERRUN_HISTORY:
                continue  # a forecast from a few intervals is not worth an alert
            if o.overruns and self.overrun_sent.get(b.key) != o.period_start:
                self.overrun_sent[b.key] = o.period_start
                report.alerts.append(overrun_alert(o))
        paced = [(b, c) for b, c in zip(budgets, counts, strict=True) if b.pacing]
        self._pace(paced, views, interval, now, report)

    @property
    def _width(self) -> float:
        """Seconds per bucket of the spend outlook's profile."""
        return 86400.0 / self.scorer.outlook_season

    def _clock(self, mid: float, width: float) -> Clock:
        """The young-scope clock for a profile of ``width``-second buckets, the interval's
        middle at epoch ``mid``."""
        buckets = round(86400.0 / width)
        return (int(mid // width) % buckets, width / self.interval_s,
                (mid % width) // self.interval_s + 1)

    def _counts(self, now: float, end: float) -> Counts:
        return Counts(profile_weights(now, end, self.interval_s, self._width,
                                      self.scorer.outlook_season),
                      weekday_counts(now, end, self.interval_s))

    def _rolling(self, budgets: list[Budget], view: Callable[[Budget], BudgetView],
                 now: float, clock: Clock, report: WatchReport) -> None:
        """Rolling windows: the forecast at horizons up to one window ahead (one scorer call
        per window length); an overrun alert when the window is forecast to reach its limit
        (again once the forecast has fallen back below ``REARM_BELOW`` of the limit: a
        forecast hovering at the limit alerts once)."""
        by_window: dict[float, list[Budget]] = {}
        for b in budgets:
            by_window.setdefault(ROLLING[b.period], []).append(b)
        for window, group in by_window.items():
            horizons = rolling_horizons(window, self.interval_s)
            counts = [self._counts(now, now + h) for h in horizons]
            profile = np.tile(np.array([c.profile for c in counts]), (len(group), 1))
            days = np.tile(np.array([c.days for c in counts]), (len(group), 1))
            rest = self.scorer.rest([b.scope for b in group for _ in horizons], profile,
                                    days=days, now=clock)
            k = len(horizons)
            for i, b in enumerate(group):
                rows = slice(i * k, (i + 1) * k)
                ahead = list(zip(rest.mean[rows], rest.low[rows], rest.high[rows], strict=True))
                o = BudgetOutlook.rolling(view(b), horizons, ahead)
                report.outlooks[b.key] = o
                if rest.learned[i * k] < OVERRUN_HISTORY:
                    continue
                if o.period_end_spend_usd < REARM_BELOW * o.limit_usd:
                    self.overrun_sent.pop(b.key, None)  # re-armed
                elif o.overruns and b.key not in self.overrun_sent:
                    self.overrun_sent[b.key] = now
                    report.alerts.append(overrun_alert(o))

    def _pace(self, with_counts: list[tuple[Budget, Counts]], views: dict[str, BudgetView],
              interval: MeterInterval, now: float, report: WatchReport) -> None:
        if not with_counts:
            return
        paced = [b for b, _ in with_counts]
        hourly: dict[float, list[float]] = {}  # the demand forecaster's hour buckets, per end
        for b in paced:
            end = views[b.key].end
            if end not in hourly:
                hourly[end] = profile_weights(now, end, self.interval_s)
        hours = [hourly[views[b.key].end] for b in paced]
        demand_rest = self.scorer.rest([b.scope for b in paced], hours, demand=True,
                                       days=[c.days for _, c in with_counts],
                                       now=self._clock(now - self.interval_s / 2, 3600.0))
        for b in paced:
            asked = interval.demand.get(b.scope, 0.0)
            if asked > 0:
                share = interval.demand_high.get(b.scope, 0.0) / asked
                prev = self.high_share.get(b.key)
                self.high_share[b.key] = share if prev is None else 0.9 * prev + 0.1 * share
        pressure, reserve = self.scorer.pace([b.key for b in paced], PacingInputs(
            remaining=[views[b.key].remaining / NANO for b in paced],
            demand_rest=demand_rest.mean,
            spend=[interval.spend.get(b.scope, 0.0) for b in paced],
            demand=[interval.demand.get(b.scope, 0.0) for b in paced],
            high_share=[self.high_share.get(b.key, 0.0) for b in paced],
            young_left=[float(sum(h)) if demand_rest.learned[i] < 86400 / self.interval_s
                        else 0.0 for i, h in enumerate(hours)],
            intervals_left=[float(sum(h)) for h in hours]))
        stamp = datetime.fromtimestamp(now, UTC)
        for i, b in enumerate(paced):
            action = PacingAction.at(b.key, float(pressure[i]), round(float(reserve[i]) * NANO),
                                     retry_after_s=self.interval_s)
            report.pacing[b.key] = action
            key = f"{b.scope}|pacing:{b.period}"
            if action.throttle_share > 0:
                self.pacing_directives.add(key)
                report.directives.append(ThrottleDirective(
                    scope=b.scope, origin=f"pacing:{b.period}", action="throttle",
                    allow_fraction=round(1 - action.throttle_share, 4),
                    until=stamp + timedelta(seconds=2 * self.interval_s),
                    reason="paced_throttle", message=f"pacing {b.key}: pressure "
                    f"{action.pressure:.2f}, {action.throttle_share:.0%} of low/normal "
                    f"requests throttled", ts=stamp, details=dict(action.figures()),
                    priorities=tuple(sorted(PACED_PRIORITIES))))
            elif key in self.pacing_directives:
                self.pacing_directives.discard(key)
                report.lifts.append(key)

    def _anomalies(self, scores: ScopeScores, book: list[Budget], now: float,
                   report: WatchReport) -> None:
        report.findings = find_anomalies(scores, self.rule, now)
        for finding in report.findings:
            report.alerts.append(finding.alert(self.interval_s))
            if finding.severity != "high" or not self._throttles(finding.scope, book):
                continue
            target = finding.driver or finding.scope
            if self.anomaly_until.get(target, 0.0) > now:
                continue  # already throttled
            directive = finding.directive(self.throttle_fraction, self.throttle_s)
            self.anomaly_until[target] = now + self.throttle_s
            report.directives.append(directive)

    @staticmethod
    def _throttles(scope: str, book: list[Budget]) -> bool:
        tenant = scope.split("/", 1)[0]
        return any(b.anomaly_throttle for b in book if b.scope in (scope, tenant))

