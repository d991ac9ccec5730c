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

import dataclasses
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from prsm_events.accounting.budget_figures import BudgetFigures
from prsm_events.accounting.budgets import Budget
from prsm_events.accounting.ledger_view import BudgetView
from prsm_events.accounting.periods import ROLLING
from prsm_events.accounting.scopes import Scope, tenant_of
from prsm_events.anomaly.findings import AnomalyFinding, AnomalyRule, find_anomalies
from prsm_events.decisions.pacing import PacingActions
from prsm_events.events.alerts import Alert
from prsm_events.events.directives import ThrottleDirective
from prsm_events.scoring.batch import GIL_SLICE, BatchScorer, Rest, ScopeScores, lookup
from prsm_events.scoring.calendar_math import (
    profile_weights_ahead,
    weekday_counts,
    weekday_of,
)
from prsm_events.scoring.pacing_step import PacingInputs
from prsm_events.scoring.scope_states import ScopeState
from prsm_events.watch.meter import MeterInterval
from prsm_events.watch.outlook import (
    MIN_HISTORY,
    OutlookColumns,
    Outlooks,
    overrun_alert,
    rolling_horizons,
    still_learning,
)
from prsm_events.watch.pacing_directives import PacingDirectives, pacing_key

__all__ = ["ADOPT_BELOW", "CHUNK", "OVERRUN_HISTORY", "REARM_BELOW", "Answers", "SpendWatch",
           "WatchReport"]

Answers = Callable[[list[str | None]], np.ndarray]
"""Tenants -> a bool per tenant (None: a budget or scope over tenants): True where this
worker speaks for it among several."""

Clock = tuple[int, float, float]
"""For young scopes' forecasts: the outlook bucket just learned, intervals per bucket,
intervals of it passed (``BatchScorer.rest``'s ``now``)."""

OVERRUN_HISTORY = MIN_HISTORY
"""Intervals a scope's forecaster must have learned before its forecast can raise
``forecast_overrun`` (its outlook is shown from the first, marked ``learning`` while it
rests on less history than it looks ahead: ``watch.outlook.still_learning``)."""


CHUNK = 32_768
"""Forecasts computed at once: their arrays stay in the CPU's caches (on NumPy, the forecasts
of 10^6 budgets take about a quarter of the time they take in one piece)."""

REARM_BELOW = 0.9
"""A rolling window's overrun alert is armed again once its forecast falls below this share
of the limit."""


@dataclass
class WatchReport:
    scores: ScopeScores
    outlooks: Outlooks = field(default_factory=Outlooks)
    pacing: PacingActions = field(default_factory=PacingActions)
    alerts: list[Alert] = field(default_factory=list)
    directives: list[ThrottleDirective] = field(default_factory=list)
    """Anomaly throttle directives (the pacing ones are ``paced``)."""
    paced: PacingDirectives = field(default_factory=PacingDirectives)
    lifts: list[str] = field(default_factory=list)
    """Keys of pacing directives lifted (their budgets no longer throttle)."""
    findings: list[AnomalyFinding] = field(default_factory=list)
    parked: list[str] = field(default_factory=list)
    """Scopes parked at this tick: their tenants' partitions went to another worker."""
    adopted: list[str] = field(default_factory=list)
    """Scopes whose state, handed over by another worker, this tick took (``arrivals``)."""


ADOPT_BELOW = 30
"""A scope learned here for fewer intervals than this takes the state another worker hands
over (the worker that takes a partition over may have begun learning its tenants first)."""


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
        self.partitions: frozenset[int] | None = None
        """The partitions its worker owned at the last tick that named them (``tick``)."""
        self.arrivals: dict[str, ScopeState] = {}
        """Scope states handed over by other workers (``scoring.scope_states``), taken at the
        next tick for the scopes of tenants this worker answers for."""

    def memory(self) -> dict[str, Any]:
        """What the watch remembers between ticks besides the scorer (JSON-able; kept with
        the scorer's checkpoint so a restart neither repeats a period's overrun alert nor
        forgets the directives it must lift)."""
        return {"overrun_sent": self.overrun_sent, "high_share": self.high_share,
                "pacing_directives": sorted(self.pacing_directives),
                "anomaly_until": self.anomaly_until,
                "partitions": None if self.partitions is None else sorted(self.partitions)}

    def recall(self, memory: dict[str, Any]) -> None:
        """Take back what ``memory`` returned (in an earlier process)."""
        self.overrun_sent = {str(k): float(v) for k, v in memory.get("overrun_sent", {}).items()}
        self.high_share = {str(k): float(v) for k, v in memory.get("high_share", {}).items()}
        self.pacing_directives = {str(k) for k in memory.get("pacing_directives", [])}
        self.anomaly_until = {str(k): float(v)
                              for k, v in memory.get("anomaly_until", {}).items()}
        partitions = memory.get("partitions")
        self.partitions = None if partitions is None else frozenset(map(int, partitions))

    def tick(self, interval: MeterInterval, book: Iterable[Budget],
             figures: BudgetFigures | Callable[[Budget], BudgetView],
             now: float, answers: Answers | None = None,
             partitions: frozenset[int] | None = None) -> WatchReport:
        """Score ``interval`` and look at every budget of ``book``: ``figures`` are the
        budgets' ledger figures at ``now`` in ``book``'s order (``BudgetLedger.figures``), or
        a function giving each one's view.

        ``answers`` says which tenants this worker speaks for among several (default: all):
        overrun and anomaly alerts are sent, and pacing and anomaly directives issued and
        lifted, only for their budgets and scopes (``findings`` keeps what it found).
        After a rebalance the former owner of a budget neither alerts on its figures, which
        stopped when its partition left, nor renews its directive (which lapses by itself),
        nor lifts the one the new owner issues; a budget over tenants is alerted on by one
        worker, not by each from its share.

        An interval that says how long it lasted (``seconds``) is learned, scored and paced
        at its rate per ``interval_s`` (a timer sleeps ``interval_s`` between the end of one
        tick and the start of the next, so an interval also holds the tick's own run time and
        the loop's delays); alerts and directives report what was spent in the seconds it
        lasted. Without it, an interval counts as ``interval_s``.

        ``partitions``: those the worker owns now (with ``answers``). When they are not those
        of the last tick (``self.partitions``, kept in the checkpoint), the scorer's scopes
        under tenants another worker answers for now are parked first
        (``BatchScorer.park``): they learn no silence here, and resume from what they knew if
        their tenant comes back (what the interval holds of them, spent before they left, is
        not learned). And if the partitions of the last tick are known, the anomaly detector
        of each scope over tenants starts again: this worker's share of it changed, which is
        not news."""
        seconds = interval.seconds
        if seconds is not None and not seconds > 0:
            raise ValueError(f"an interval of {seconds!r} s")
        scale = 1.0 if seconds is None else self.interval_s / seconds
        parked: list[str] = []
        if answers is not None and partitions is not None and partitions != self.partitions:
            interval, parked = self._park_others(interval, answers,
                                                 restart=self.partitions is not None)
            self.partitions = partitions
        adopted = self._adopt(answers)
        mid = now - self.interval_s / 2  # the interval's place in the day and weekday
        clock = self._clock(mid, self._width)
        scores = self.scorer.step(interval.spend, interval.demand, int(mid // 3600) % 24,
                                  weekday_of(mid), (mid % 86400) / 86400, scale)
        report = WatchReport(scores, parked=parked, adopted=adopted)
        budgets = list(book)
        if not isinstance(figures, BudgetFigures):
            figures = BudgetFigures.of_views([figures(b) for b in budgets], now)
        if len(figures) != len(budgets):
            raise ValueError(f"figures of {len(figures)} budgets for {len(budgets)}")
        rows = self.scorer.rows_of([b.scope for b in budgets])  # each budget's scope's
        speaks = (np.ones(len(budgets), dtype=bool) if answers is None
                  else np.asarray(answers([b.tenant for b in budgets]), dtype=bool))
        rolling = [b.period in ROLLING for b in budgets]
        calendar_at = [i for i, r in enumerate(rolling) if not r]
        rolling_at = [i for i, r in enumerate(rolling) if r]

        def part(at: list[int]) -> tuple[list[Budget], BudgetFigures, np.ndarray, np.ndarray]:
            if len(at) == len(budgets):
                return budgets, figures, rows, speaks
            return [budgets[i] for i in at], figures.take(at), rows[at], speaks[at]
        # the directives this tick issues again stay; the rest (of budgets no longer paced
        # here, or another worker's) are forgotten and lapse by themselves
        directed, self.pacing_directives = self.pacing_directives, set()
        if calendar_at:
            self._calendar(*part(calendar_at), interval, now, clock, report, scale, directed)
        if rolling_at:
            self._rolling(*part(rolling_at), now, clock, report)
        self._anomalies(scores, budgets, now, report, scale, answers)
        return report

    def _adopt(self, answers: Answers | None) -> list[str]:
        """Take the states handed over since the last tick, of the scopes under tenants this
        worker answers for (``BatchScorer.adopt``)."""
        arrivals, self.arrivals = self.arrivals, {}
        if not arrivals:
            return []
        scopes = [s for s in arrivals if tenant_of(s) is not None]
        if answers is not None and scopes:
            ours = np.asarray(answers([tenant_of(s) for s in scopes]), dtype=bool).tolist()
            scopes = [s for s, mine in zip(scopes, ours, strict=True) if mine]
        return self.scorer.adopt({s: arrivals[s] for s in scopes}, ADOPT_BELOW)

    def _park_others(self, interval: MeterInterval, answers: Answers, restart: bool
                     ) -> tuple[MeterInterval, list[str]]:
        """Park the scorer's scopes under tenants that ``answers`` gives to another worker;
        ``interval`` without them, and the scopes parked. ``restart``: the detection of the
        scopes over tenants."""
        scopes = list(self.scorer.rows)
        tenants = [tenant_of(scope) for scope in scopes]
        if restart:
            self.scorer.restart_detection([s for s, t in zip(scopes, tenants, strict=True)
                                           if t is None])
        under = sorted({t for t in tenants if t is not None}
                       | {t for t in map(tenant_of, interval.spend) if t is not None}
                       | {t for t in map(tenant_of, interval.demand) if t is not None})
        if not under:
            return interval, []
        asked: list[str | None] = list(under)
        away = {t for t, ours in zip(under, np.asarray(answers(asked), dtype=bool).tolist(),
                                     strict=True) if not ours}
        if not away:
            return interval, []
        parked = [s for s, t in zip(scopes, tenants, strict=True) if t in away]
        self.scorer.park(parked)

        def ours(values: dict[str, float]) -> dict[str, float]:
            return {k: v for k, v in values.items() if tenant_of(k) not in away}
        return dataclasses.replace(interval, spend=ours(interval.spend),
                                   demand=ours(interval.demand),
                                   demand_high=ours(interval.demand_high)), parked

    def _rest(self, scope_rows: np.ndarray, profile: np.ndarray, days: np.ndarray,
              which: np.ndarray, now: Clock, demand: bool = False) -> Rest:
        """``scorer.rest`` for the scopes at the scorer's ``scope_rows``, the ``i``-th over
        the counts ``profile[which[i]]`` and ``days[which[i]]``: per row of the counts, the
        scopes that share it are forecast together (``scorer.ahead``), ``CHUNK`` at a time."""
        n = len(scope_rows)
        mean, low, high, learned = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
        for j in range(len(profile)):
            rows = np.flatnonzero(which == j) if len(profile) > 1 else np.arange(n)
            for lo in range(0, len(rows), CHUNK):
                part = rows[lo:lo + CHUNK]
                got = self.scorer.ahead(scope_rows[part], profile[j:j + 1], demand=demand,
                                        days=days[j:j + 1], now=now)
                mean[part], low[part], high[part] = got.mean[:, 0], got.low[:, 0], got.high[:, 0]
                learned[part] = got.learned
        return Rest(mean, low, high, learned)

    def _calendar(self, budgets: list[Budget], figures: BudgetFigures, rows: np.ndarray,
                  speaks: np.ndarray, interval: MeterInterval, now: float, clock: Clock,
                  report: WatchReport, scale: float, directed: set[str]) -> None:
        """Calendar periods: the forecast to each period end, the overrun alert once per
        period (of the budgets the worker ``speaks`` for), and pacing for the paced ones
        (``directed``: the budgets with a directive before this tick)."""
        ends, which = np.unique(figures.end, return_inverse=True)  # budgets share period
        profile, days = self._counts(now, ends.tolist())  # ends: count once
        rest = _whole(self._rest(rows, profile, days, which, clock), figures)
        columns = OutlookColumns.calendar(
            budgets, figures, rest.mean, rest.low, rest.high,
            still_learning(rest.learned, figures.end - now, self.interval_s))
        report.outlooks.add(columns)
        due = columns.may_overrun()  # a forecast from a few intervals is not worth an alert:
        due = due[(rest.learned[due] >= OVERRUN_HISTORY) & speaks[due]]
        if len(due) and self.overrun_sent:  # nor one already sent this period
            sent_for = lookup(self.overrun_sent, [budgets[i].key for i in due.tolist()],
                              math.nan)
            due = due[sent_for != columns.start[due]]
        for i in due.tolist():
            o = columns.outlook(i)
            if o.overruns and self.overrun_sent.get(o.budget_key) != o.period_start:
                self.overrun_sent[o.budget_key] = o.period_start
                report.alerts.append(overrun_alert(o))
        paced = [i for i, b in enumerate(budgets) if b.pacing]
        if paced:
            self._pace([budgets[i] for i in paced], figures.take(paced), rows[paced],
                       speaks[paced], interval, now, report, scale, directed)

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

    def _counts(self, now: float, ends: list[float], width: float | None = None,
                buckets: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Scoring intervals left until each of ``ends``, as rows: what each bucket of a
        profile of ``buckets`` of ``width`` seconds (default: the spend outlook's) weighs in
        them (read as a line through the buckets' middles: ``profile_weights``), and how
        many fall on each weekday."""
        return (profile_weights_ahead(now, ends, self.interval_s, width or self._width,
                                      buckets or self.scorer.outlook_season),
                np.array([weekday_counts(now, end, self.interval_s) for end in ends]))

    def _rolling(self, budgets: list[Budget], figures: BudgetFigures, rows: np.ndarray,
                 speaks: np.ndarray, now: float, clock: Clock, report: WatchReport) -> None:
        """Rolling windows: the forecast at horizons up to one window ahead (per window
        length, ``CHUNK`` budgets at a time); an overrun alert when the window is forecast
        to reach its limit (again once the forecast has fallen back below ``REARM_BELOW`` of
        the limit: a forecast hovering at the limit alerts once)."""
        by_window: dict[float, list[int]] = {}
        for i, b in enumerate(budgets):
            by_window.setdefault(ROLLING[b.period], []).append(i)
        sent = self.overrun_sent
        for window, at in by_window.items():
            horizons = rolling_horizons(window, self.interval_s)
            profile, days = self._counts(now, [now + h for h in horizons])
            for lo in range(0, len(at), CHUNK):
                some = at[lo:lo + CHUNK]
                group = [budgets[i] for i in some]
                part = figures.take(some)
                rest = _whole(self.scorer.ahead(rows[some], profile, days=days, now=clock),
                              part)
                columns = OutlookColumns.rolling(
                    group, part, horizons, rest.mean, rest.low, rest.high,
                    still_learning(rest.learned, np.full(len(group), window), self.interval_s))
                report.outlooks.add(columns)
                # the rows to look at: those that may overrun unless an alert was sent, and
                # those whose alert was sent if they may have fallen below the re-arm line
                # (a few intervals' forecast is not worth an alert)
                may = np.zeros(len(group), dtype=bool)
                may[columns.may_overrun()] = True
                was_sent = (~np.isnan(lookup(sent, [b.key for b in group], math.nan))
                            if sent else np.zeros(len(group), dtype=bool))
                rearm = columns.period_end_spend < REARM_BELOW * columns.limit + 1e-6
                due = np.flatnonzero((rest.learned >= OVERRUN_HISTORY) & speaks[some]
                                     & np.where(was_sent, rearm, may))
                for i in due.tolist():
                    o = columns.outlook(i)
                    if o.period_end_spend_usd < REARM_BELOW * o.limit_usd:
                        sent.pop(o.budget_key, None)  # re-armed
                    elif o.overruns and o.budget_key not in sent:
                        sent[o.budget_key] = now
                        report.alerts.append(overrun_alert(o))

    def _pace(self, budgets: list[Budget], figures: BudgetFigures, rows: np.ndarray,
              speaks: np.ndarray, interval: MeterInterval, now: float, report: WatchReport,
              scale: float, directed: set[str]) -> None:
        ends, which = np.unique(figures.end, return_inverse=True)
        hours, days = self._counts(now, ends.tolist(), 3600.0, 24)  # the demand forecaster's
        left = np.array([sum(h) for h in hours.tolist()])[which]  # hour buckets, per end
        demand_rest = self._rest(rows, hours, days, which,
                                 self._clock(now - self.interval_s / 2, 3600.0), demand=True)
        keys = [b.key for b in budgets]
        asked = self.scorer.last_interval(rows, demand=True)  # per scoring interval (its rate)
        high_share = self._high_share(keys, [b.scope for b in budgets], asked,
                                      interval.demand_high, scale)
        pressure, reserve = self.scorer.pace(keys, PacingInputs(
            remaining=figures.remaining, demand_rest=demand_rest.mean,
            spend=self.scorer.last_interval(rows), demand=asked, high_share=high_share,
            young_left=np.where(demand_rest.learned < 86400 / self.interval_s, left, 0.0),
            intervals_left=left))
        report.pacing = actions = PacingActions(keys, pressure, reserve, self.interval_s)
        # a directive for each throttling budget (again at every tick: it lapses), and a
        # lift for each budget directed before that no longer throttles: of those this
        # worker answers for (the others' directives are forgotten, left to lapse, as are
        # those of budgets not paced here now: another worker's, or no longer paced)
        throttling = actions.throttling()
        now_keys = [pacing_key(b.scope, b.period) for b in budgets]
        throttling = throttling[speaks[throttling]]
        others = {now_keys[i] for i in np.flatnonzero(~speaks).tolist()}
        throttling_keys = {now_keys[i] for i in throttling.tolist()}
        lifted = directed.intersection(now_keys) - throttling_keys - others
        if lifted:
            report.lifts = [k for k in now_keys if k in lifted]
        self.pacing_directives = throttling_keys  # what stays directed
        report.paced = PacingDirectives(
            [budgets[i].scope for i in throttling.tolist()],
            [budgets[i].period for i in throttling.tolist()],
            pressure[throttling], reserve[throttling], now, self.interval_s)

    def _high_share(self, keys: list[str], scopes: list[str], asked: np.ndarray,
                    high: dict[str, float], scale: float) -> np.ndarray:
        """Per paced budget, the share of its demand (``asked``, times ``scale``) from high
        and critical requests (``high``), averaged over the intervals it asked for anything
        (weight 0.1 to the newest)."""
        prev = lookup(self.high_share, keys, math.nan)
        at = np.flatnonzero(asked > 0).tolist()
        if not at:
            return np.nan_to_num(prev, nan=0.0)
        share = lookup(high, [scopes[i] for i in at], 0.0) * scale / asked[at]
        before = prev[at]
        prev[at] = np.where(np.isnan(before), share, 0.9 * before + 0.1 * share)
        named, values = [keys[i] for i in at], prev[at].tolist()
        for lo in range(0, len(at), GIL_SLICE):  # (beside the event loop)
            self.high_share.update(zip(named[lo:lo + GIL_SLICE], values[lo:lo + GIL_SLICE],
                                       strict=True))
        return np.nan_to_num(prev, nan=0.0)

    def _anomalies(self, scores: ScopeScores, book: list[Budget], now: float,
                   report: WatchReport, scale: float, answers: Answers | None) -> None:
        report.findings = [f.per(1.0 / scale) for f in find_anomalies(scores, self.rule, now)]
        ours = [True] * len(report.findings)  # a scope over tenants: its share's spike is
        if answers is not None and report.findings:  # the others' too, told by one of them
            ours = np.asarray(answers([Scope.parse(f.scope).tenant for f in report.findings]),
                              dtype=bool).tolist()
        throttling: set[str] | None = None  # scopes with a budget that throttles anomalies
        for finding, mine in zip(report.findings, ours, strict=True):
            if not mine:
                continue
            report.alerts.append(finding.alert(self.interval_s / scale))
            if finding.severity != "high":
                continue
            if throttling is None:
                throttling = {b.scope for b in book if b.anomaly_throttle}
            if not {finding.scope, finding.scope.split("/", 1)[0]} & throttling:
                continue
            target = finding.driver or finding.scope
            if self.anomaly_until.get(target, 0.0) > now:
                continue  # already throttled
            directive = finding.directive(self.throttle_fraction, self.throttle_s)
            self.anomaly_until[target] = now + self.throttle_s
            report.directives.append(directive)


def _whole(rest: Rest, figures: BudgetFigures) -> Rest:
    """``rest``, forecast from this worker's share of each budget's spend, as the whole
    budget's (``BudgetView.share``: a budget over tenants among several workers)."""
    if figures.share is None:
        return rest
    scale = 1.0 / np.where(figures.share > 0, figures.share, 1.0)  # none held: as it is
    if rest.mean.ndim == 2:
        scale = scale[:, None]
    return Rest(rest.mean * scale, rest.low * scale, rest.high * scale, rest.learned)
