"""Where a budget's spend is heading: period-end spend with an interval, exhaustion time, and
the ``forecast_overrun`` alert (before the money is spent).

The forecast for the rest of the period comes from the batch scorer (seasonal forecaster);
this module only adds it to what is already spent and reserved.

A rolling window (``1h``, ``24h``, ``7d``) has no period end: its spend at a future instant is
what it holds now, less what will have left it by then, plus what is forecast to come.
``BudgetOutlook.rolling`` takes the forecast at several horizons up to one window ahead and
reports the window's peak (``period_end`` is when it peaks) and the first instant it reaches
the limit.

>>> from prsm_events.accounting.budgets import Budget
>>> from prsm_events.accounting.ledger_view import BudgetView, NANO
>>> b = Budget(scope="tenant:acme", period="day", limit_usd=10)
>>> v = BudgetView(b, now=43200.0, spent=6 * NANO, reserved=0, start=0.0, end=86400.0)
>>> o = BudgetOutlook.of(v, rest=(6.0, 5.0, 7.0))
>>> o.period_end_spend_usd, o.exhaustion_ts
(12.0, '1970-01-01T20:00:00+00:00')
>>> overrun_alert(o).severity
'high'
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from prsm_events.accounting.budget_figures import BudgetFigures
from prsm_events.accounting.budgets import Budget
from prsm_events.accounting.ledger_view import NANO, BudgetView
from prsm_events.accounting.periods import ROLLING
from prsm_events.events.alerts import Alert
from prsm_events.scoring.forecast_params import CHECK_HORIZON_S
from prsm_events.scoring.rows_by_key import RowsByKey

__all__ = ["LEARN_AT_MOST_S", "MIN_HISTORY", "BudgetOutlook", "OutlookColumns", "Outlooks",
           "overrun_alert", "rolling_horizons", "still_learning"]


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


@dataclass(frozen=True, slots=True)
class BudgetOutlook:
    budget_key: str
    scope: str
    period: str
    now: float
    period_start: float
    period_end: float
    limit_usd: float
    spent_usd: float
    period_end_spend_usd: float
    low_usd: float
    high_usd: float
    exhaustion_ts: str | None
    learning: bool = False
    """Too little history for the horizon (``still_learning``): no interval is shown."""

    @classmethod
    def of(cls, view: BudgetView, rest: tuple[float, float, float]) -> BudgetOutlook:
        """``rest``: (mean, low, high) USD forecast for the rest of the period."""
        used = (view.spent + view.reserved) / NANO
        mean, low, high = (max(0.0, float(x)) for x in rest)
        left_s = max(view.end - view.now, 0.0)
        exhaustion = None
        limit = view.budget.limit_usd
        if used >= limit:
            exhaustion = _iso(view.now)
        elif used + mean > limit and mean > 0 and left_s > 0:
            exhaustion = _iso(view.now + (limit - used) / (mean / left_s))
        return cls(view.budget.key, view.budget.scope, view.budget.period, view.now,
                   view.start, view.end, limit, round(used, 9), round(used + mean, 6),
                   round(used + low, 6), round(used + high, 6), exhaustion)

    @classmethod
    def rolling(cls, view: BudgetView, horizons: Sequence[float],
                ahead: Sequence[tuple[float, float, float]]) -> BudgetOutlook:
        """A rolling window's outlook: ``ahead[k]`` is the (mean, low, high) USD forecast of the
        spend between now and ``horizons[k]`` seconds from now (increasing horizons)."""
        used = (view.spent + view.reserved) / NANO
        limit = view.budget.limit_usd
        points = [(0.0, used, used, used)]
        released, k = 0, 0  # releases are sorted by time: one walk for all horizons
        for h, (mean, low, high) in zip(horizons, ahead, strict=True):
            while k < len(view.releases) and view.releases[k][0] <= view.now + h:
                released += view.releases[k][1]
                k += 1
            left = used - released / NANO
            points.append((h, left + max(0.0, float(mean)), left + max(0.0, float(low)),
                           left + max(0.0, float(high))))
        peak = max(points, key=lambda p: p[1])
        exhaustion = None
        first = next((k for k, p in enumerate(points) if p[1] >= limit), None)
        if first == 0:
            exhaustion = _iso(view.now)
        elif first is not None:  # crossed between two horizons: linear in between
            (h0, m0, _, _), (h1, m1, _, _) = points[first - 1], points[first]
            exhaustion = _iso(view.now + h0 + (h1 - h0) * (limit - m0) / (m1 - m0))
        return cls(view.budget.key, view.budget.scope, view.budget.period, view.now,
                   view.start, view.now + peak[0], limit, round(used, 9), round(peak[1], 6),
                   round(peak[2], 6), round(peak[3], 6), exhaustion)

    @property
    def overruns(self) -> bool:
        return self.period_end_spend_usd > self.limit_usd

    def figures(self) -> dict[str, Any]:
        """What decisions, ``/budgets`` and ``prsm budget outlook`` show (rolling windows:
        ``window_peak: true``, the peak and when it comes in the ``period_end_*`` fields;
        while ``learning``, no interval: its bounds are None)."""
        out = {"method": "seasonal", "period_end_spend_usd": self.period_end_spend_usd,
               "period_end_spend_low_usd": None if self.learning else self.low_usd,
               "period_end_spend_high_usd": None if self.learning else self.high_usd,
               "exhaustion_ts": self.exhaustion_ts, "period_end": _iso(self.period_end),
               "learning": self.learning}
        if self.period in ROLLING:
            out["window_peak"] = True
        return out


@dataclass(frozen=True)
class OutlookColumns:
    """Many budgets' outlooks as columns (what ``BudgetOutlook.of`` and ``.rolling`` compute,
    before rounding); ``outlook(i)`` is the ``BudgetOutlook`` of row ``i``, equal to theirs.

    ``calendar`` and ``rolling`` compute them from ``BudgetFigures`` and the forecasts, for
    a whole column of budgets at once.

    >>> b = Budget(scope="tenant:acme", period="day", limit_usd=10)
    >>> v = BudgetView(b, now=43200.0, spent=6 * NANO, reserved=0, start=0.0, end=86400.0)
    >>> f = BudgetFigures.of_views([v], now=43200.0)
    >>> cols = OutlookColumns.calendar([b], f, *(np.array([x]) for x in (6.0, 5.0, 7.0)))
    >>> cols.outlook(0) == BudgetOutlook.of(v, rest=(6.0, 5.0, 7.0))
    True
    """

    budgets: Sequence[Budget]
    now: float
    start: np.ndarray
    end: np.ndarray
    limit: np.ndarray
    used: np.ndarray
    period_end_spend: np.ndarray
    low: np.ndarray
    high: np.ndarray
    exhaustion: np.ndarray
    """Epoch seconds; NaN: not forecast to be exhausted."""
    learning: np.ndarray
    """Per row, True while the forecast rests on too little history (``still_learning``)."""

    def __len__(self) -> int:
        return len(self.budgets)

    @classmethod
    def calendar(cls, budgets: Sequence[Budget], figures: BudgetFigures, mean: np.ndarray,
                 low: np.ndarray, high: np.ndarray,
                 learning: np.ndarray | None = None) -> OutlookColumns:
        """``BudgetOutlook.of`` for every row: ``mean``/``low``/``high`` forecast the rest of
        each budget's period (``learning``: per row, still learning; none by default)."""
        now, used = figures.now, figures.used
        mean, low, high = (np.maximum(np.asarray(x, dtype=np.float64), 0.0)
                           for x in (mean, low, high))
        limit = np.array([b.limit_usd for b in budgets], dtype=np.float64)
        left_s = np.maximum(figures.end - now, 0.0)
        crossing = (used + mean > limit) & (mean > 0) & (left_s > 0)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            at = now + (limit - used) / (mean / left_s)
        exhaustion = np.where(used >= limit, now, np.where(crossing, at, np.nan))
        return cls(budgets, now, figures.start, figures.end, limit, used, used + mean,
                   used + low, used + high, exhaustion, _learning(learning, len(budgets)))

    @classmethod
    def rolling(cls, budgets: Sequence[Budget], figures: BudgetFigures,
                horizons: Sequence[float], mean: np.ndarray, low: np.ndarray,
                high: np.ndarray, learning: np.ndarray | None = None) -> OutlookColumns:
        """``BudgetOutlook.rolling`` for every row: ``mean[i, k]`` (and ``low``, ``high``)
        forecast row ``i``'s spend between now and ``horizons[k]`` seconds ahead."""
        now, used = figures.now, figures.used
        n = len(budgets)
        left = used[:, None] - figures.released(horizons)
        points = [np.concatenate([used[:, None], left + np.maximum(x, 0.0)], axis=1)
                  for x in (mean, low, high)]
        limit = np.array([b.limit_usd for b in budgets], dtype=np.float64)
        at_h = np.concatenate([[0.0], np.asarray(horizons, dtype=np.float64)])
        rows = np.arange(n)
        peak = np.argmax(points[0], axis=1)  # the first of equal peaks, as max() takes
        reached = points[0] >= limit[:, None]
        first = np.argmax(reached, axis=1)
        before = np.maximum(first - 1, 0)
        m0, m1 = points[0][rows, before], points[0][rows, first]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            cross = now + at_h[before] + (at_h[first] - at_h[before]) * (limit - m0) / (m1 - m0)
        exhaustion = np.where(~reached.any(axis=1), np.nan, np.where(first == 0, now, cross))
        return cls(budgets, now, figures.start, now + at_h[peak], limit, used,
                   points[0][rows, peak], points[1][rows, peak], points[2][rows, peak],
                   exhaustion, _learning(learning, n))

    def may_overrun(self) -> np.ndarray:
        """Rows whose outlook may overrun (a superset of ``outlook(i).overruns``: that
        compares the rounded figure)."""
        return np.flatnonzero(self.period_end_spend > self.limit - 1e-6)

    def outlook(self, i: int) -> BudgetOutlook:
        b = self.budgets[i]
        at = float(self.exhaustion[i])
        return BudgetOutlook(
            b.key, b.scope, b.period, self.now, float(self.start[i]), float(self.end[i]),
            b.limit_usd, round(float(self.used[i]), 9),
            round(float(self.period_end_spend[i]), 6), round(float(self.low[i]), 6),
            round(float(self.high[i]), 6), None if at != at else _iso(at),
            bool(self.learning[i]))


def _learning(learning: np.ndarray | None, n: int) -> np.ndarray:
    return np.zeros(n, dtype=bool) if learning is None else np.asarray(learning, dtype=bool)


class Outlooks(RowsByKey[BudgetOutlook]):
    """A tick's outlooks by budget key, kept as columns; an outlook is built when asked for
    (a tick over a million budgets builds none it does not need).

    >>> b = Budget(scope="tenant:acme", period="day", limit_usd=10)
    >>> v = BudgetView(b, now=43200.0, spent=6 * NANO, reserved=0, start=0.0, end=86400.0)
    >>> f = BudgetFigures.of_views([v], now=43200.0)
    >>> outlooks = Outlooks()
    >>> outlooks.add(OutlookColumns.calendar([b], f, *(np.array([x]) for x in (6.0, 5, 7))))
    >>> outlooks["tenant:acme|day"].period_end_spend_usd, len(outlooks)
    (12.0, 1)
    >>> outlooks.figures()["tenant:acme|day"]["period_end_spend_high_usd"]
    13.0
    """

    def __init__(self) -> None:
        super().__init__(self._outlook)
        self._parts: list[OutlookColumns] = []
        self._offsets: list[int] = []

    def add(self, columns: OutlookColumns) -> None:
        offset = len(self)
        self._parts.append(columns)
        self._offsets.append(offset)
        self.index([b.key for b in columns.budgets], offset)

    def parts(self) -> list[OutlookColumns]:
        """The columns added, in order."""
        return list(self._parts)

    def _outlook(self, row: int) -> BudgetOutlook:
        part = bisect.bisect_right(self._offsets, row) - 1
        return self._parts[part].outlook(row - self._offsets[part])

    def figures(self) -> Mapping[str, dict[str, Any]]:
        """``BudgetOutlook.figures`` by budget key, built when asked for (what decisions
        carry)."""
        return self.map(BudgetOutlook.figures)


MIN_HISTORY = 10
"""Intervals a scope's forecaster must have learned before its forecast may raise an alert."""
LEARN_AT_MOST_S = 7 * 86400.0
"""History that is enough for any horizon: a week (every weekday seen once)."""


def still_learning(learned: np.ndarray, horizon_s: np.ndarray, interval_s: float
                   ) -> np.ndarray:
    """True where a forecast rests on less history than it looks ahead (up to a week), or
    than the interval's self-check needs to have checked it once (``CHECK_HORIZON_S``, 6 h),
    or on fewer than ``MIN_HISTORY`` intervals: a seasonal forecaster that has not lived
    through the hours it forecasts extrapolates its rate so far, and an interval never
    checked against what came says little.

    >>> still_learning(np.array([5, 360, 300, 720, 20_160]),
    ...                np.array([600, 3600, 3600, 43_200, 3e6]), 60.0)
    array([ True, False,  True, False, False])
    """
    seen = np.asarray(learned, dtype=np.float64) * interval_s
    need = np.minimum(np.maximum(np.asarray(horizon_s, dtype=np.float64), CHECK_HORIZON_S),
                      LEARN_AT_MOST_S)
    return (np.asarray(learned) < MIN_HISTORY) | (seen < need)


def rolling_horizons(window_s: float, interval_s: float, steps: int = 24) -> list[float]:
    """Horizons (seconds ahead) at which a rolling window's outlook is evaluated: ``steps``
    even steps up to one window, none shorter than a scoring interval.

    >>> rolling_horizons(86400.0, 60.0)[:3], rolling_horizons(3600.0, 600.0)
    ([3600.0, 7200.0, 10800.0], [600.0, 1200.0, 1800.0, 2400.0, 3000.0, 3600.0])
    """
    step = max(window_s / steps, interval_s)
    count = max(1, int(window_s // step))
    return [window_s * (k + 1) / count for k in range(count)]


def overrun_alert(o: BudgetOutlook) -> Alert:
    """The ``forecast_overrun`` alert for an outlook that crosses its limit."""
    high = o.low_usd > o.limit_usd  # even the low end of the interval overruns
    rolling = o.period in ROLLING
    when = (f"in its trailing {o.period} window around {_iso(o.period_end)}" if rolling
            else f"by {_iso(o.period_end)}")
    return Alert(
        alert_id=f"{o.budget_key}|forecast_overrun|{_iso(o.now if rolling else o.period_start)}",
        ts=datetime.fromtimestamp(o.now, UTC), kind="forecast_overrun", scope=o.scope,
        severity="high" if high else "warning", observed=o.period_end_spend_usd,
        expected=o.limit_usd, score=round(o.period_end_spend_usd / o.limit_usd, 6)
        if o.limit_usd else 1.0,
        message=f"the {o.period} budget of {o.scope} (${o.limit_usd:g}) is forecast to reach "
        f"${o.period_end_spend_usd:.4f} {when} "
        + ("(still learning: at the pace so far, no interval yet)" if o.learning else
           f"(90%: ${o.low_usd:.4f}-${o.high_usd:.4f})")
        + f"; exhausted around {o.exhaustion_ts}",
        period=o.period,
        details={"spent_usd": o.spent_usd,
                 "low_usd": None if o.learning else o.low_usd,
                 "high_usd": None if o.learning else o.high_usd,
                 "exhaustion_ts": o.exhaustion_ts, "learning": "yes" if o.learning else "no"})
