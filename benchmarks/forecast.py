"""Forecast accuracy (MASE) of our forecaster vs seasonal-naive and river's models.

    python benchmarks/forecast.py --data ../shared/data

Series groups (all real): the Azure LLM trace priced with the catalog (gpt-4o) as cost per
10 s, period = the trace's hour; NAB ``nyc_taxi`` (30 min, period = day, season = day);
NAB's AWS CloudWatch series (5 min, period = day, season = day). Every model learns online,
one value at a time, and forecasts before it sees the value. ``prsm`` is our forecaster as the
worker's outlooks run it (48 half-hour buckets read and learned as a line through their
middles, the weights it sets for a scoring interval of the series' step:
``ForecastParams.every``); ``prsm-per-interval`` the same model with one profile bucket per
interval of the season as steps, for reference (the worker does not keep that).

``--aggregate K ...`` instead runs the worker's forecaster on the AWS series summed over K
intervals (a coarser scoring interval) and prints its error over the next hour and the next
12 hours, forecast at the same instants at every K.

Three horizons: ``next``, the next interval; ``hour``, the total of the next hour (series
whose budget period is an hour or less have none: their ``rest`` is it); ``rest``, the total
of the rest of the budget period. ``hour`` and ``rest`` are forecast at every
``--stride``-th interval, their error divided by the number of intervals they cover. All are
scaled by the in-sample MAE of the one-step seasonal-naive forecast (MASE; lower is
better). A group's figure is the median over its series, a series where a model diverged
(non-finite or above 1e6) counting as the worst (infinite); they are counted in the last
column.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.harness import machine_line  # noqa: E402
from prsm_events.accounting.catalog import Catalog  # noqa: E402
from prsm_events.cli.replay import read_trace  # noqa: E402
from prsm_events.scoring.batch import OUTLOOK_SEASON  # noqa: E402
from prsm_events.scoring.calendar_math import following, profile_place, profile_weights, weekday_of  # noqa: E402
from prsm_events.scoring.forecast_params import ForecastParams  # noqa: E402
from prsm_events.scoring.forecast_state import new_forecast_state  # noqa: E402
from prsm_events.scoring.forecast_step import forecast_step  # noqa: E402
from prsm_events.scoring.rest_of_period import check_step, forecast_rest  # noqa: E402
from prsm_events.watch.outlook import still_learning  # noqa: E402


@dataclass
class SeriesSpec:
    name: str
    values: list[float]
    season: int  # intervals per season
    period: int  # intervals per budget period (the "rest" horizon ends at its boundary)
    step_s: float = 0.0  # seconds per interval (0: unknown, no weekday offsets)
    start: float = 0.0  # epoch time of the first interval

    def weekday(self, t: int) -> int | None:
        """Weekday (Monday = 0) of interval ``t``."""
        if not self.step_s:
            return None
        return weekday_of(self.start + t * self.step_s)


class Model:
    """Forecasts of the total of the next ``k`` intervals for several ``k``, then learn.
    A model with intervals leaves the 90% interval of each forecast in ``bands``."""

    bands: list[tuple[float, float]] | None = None

    def predict(self, ks: list[int]) -> list[float]:
        raise NotImplementedError

    def learn(self, y: float) -> None:
        raise NotImplementedError


class SeasonalNaive(Model):
    def __init__(self, season: int) -> None:
        self.m = season
        self.hist: list[float] = []

    def _at(self, j: int) -> float:  # forecast j steps ahead (j >= 1)
        h = self.hist
        if not h:
            return 0.0
        back = self.m - ((j - 1) % self.m)
        return h[-back] if len(h) >= back else h[-1]

    def predict(self, ks: list[int]) -> list[float]:
        return [sum(self._at(j) for j in range(1, k + 1)) for k in ks]

    def learn(self, y: float) -> None:
        self.hist.append(y)
        if len(self.hist) > self.m:
            self.hist.pop(0)


class RiverModel(Model):
    """A river forecaster fed ``(y + offset) / scale``; ``scale`` is the mean |y| of the
    first ``warm`` values (river's SGD-based models diverge on raw values in the thousands),
    which are buffered and learned once it is known."""

    def __init__(self, model: object, warm: int, offset: float = 0.0) -> None:
        self.model = model
        self.offset = offset  # river's HoltWinters divides by its first level: keep it off 0
        self.warm = warm
        self.buffer: list[float] = []
        self.scale = 0.0
        self.fallback = SeasonalNaive(1)

    def predict(self, ks: list[int]) -> list[float]:
        if not self.scale:
            return self.fallback.predict(ks)
        f = self.model.forecast(horizon=max(ks))  # type: ignore[attr-defined]
        vals = [v * self.scale - self.offset if math.isfinite(v) else 0.0 for v in f]
        return [sum(vals[:k]) for k in ks]

    def learn(self, y: float) -> None:
        self.fallback.learn(y)
        if self.scale:
            self.model.learn_one((y + self.offset) / self.scale)  # type: ignore[attr-defined]
            return
        self.buffer.append(y)
        if len(self.buffer) >= self.warm:
            self.scale = float(np.mean(np.abs(np.asarray(self.buffer) + self.offset))) or 1.0
            for v in self.buffer:
                self.model.learn_one((v + self.offset) / self.scale)  # type: ignore[attr-defined]


class Ours(Model):
    """Our forecaster as the worker's outlooks run it: the outlook profile's half-hour
    buckets (``OUTLOOK_SEASON``) read and learned as a line through their middles, placed by
    the interval's timestamp, and the weights the worker sets for a scoring interval of the
    series' step (``ForecastParams.every``). ``per_interval``: one bucket per interval of the
    season instead, as steps (for reference)."""

    def __init__(self, spec: SeriesSpec, per_interval: bool = False) -> None:
        self.timed = bool(spec.step_s) and not per_interval
        self.m = OUTLOOK_SEASON if self.timed else spec.season
        self.width = 86400.0 / self.m
        self.state = new_forecast_state(np, 1, self.m, check=True)
        self.spec = spec
        self.params = (ForecastParams.every(spec.step_s) if spec.step_s
                       else ForecastParams(intervals_per_day=1.0))
        self.t = 0

    def _at(self, t: int) -> float:
        return self.spec.start + t * self.spec.step_s

    def _place(self, t: int) -> tuple[int, float]:
        """Interval ``t``'s bucket and how far past its middle (``profile_place``)."""
        if not self.timed:
            return t % self.m, 0.0
        return profile_place(self._at(t) + self.spec.step_s / 2, self.width, self.m)

    def _buckets(self, k: int) -> list[float]:
        if self.timed:
            return profile_weights(self._at(self.t), self._at(self.t + k), self.spec.step_s,
                                   self.width, self.m)
        return [float(c) for c in following((self.t - 1) % self.m, k, self.m)]

    def _days(self, k: int) -> list[int] | None:
        if not self.spec.step_s:
            return None
        days = [0] * 7
        for j in range(k):
            days[self.spec.weekday(self.t + j) or 0] += 1
        return days

    def predict(self, ks: list[int]) -> list[float]:
        if self.t == 0:
            return [0.0] * len(ks)
        rests = [forecast_rest(np, self.state, self._buckets(k), self._days(k), self.params)
                 for k in ks]
        self.bands = [(float(r.low[0]), float(r.high[0])) for r in rests]
        return [float(r.mean[0]) for r in rests]

    def learn(self, y: float) -> None:
        bucket, past = self._place(self.t)
        forecast_step(np, self.state, np.array([y]), bucket, self.params,
                      self.spec.weekday(self.t), past)
        self.t += 1
        if self.timed:  # the worker checks the outlook forecaster's interval
            ahead = round(self.params.check_intervals)
            check_step(np, self.state, np.array([y]),
                       lambda: (self._buckets(ahead), self._days(ahead)), self.params)


def models(spec: SeriesSpec) -> dict[str, Callable[[], Model]]:
    season = spec.season

    from river import linear_model, optim, preprocessing, time_series

    def snarimax(p: int, d: int, q: int) -> Callable[[], Model]:
        def make() -> Model:
            reg = preprocessing.StandardScaler() | linear_model.LinearRegression(
                intercept_init=0.0, optimizer=optim.SGD(0.001), intercept_lr=0.1)
            return RiverModel(time_series.SNARIMAX(p=p, d=d, q=q, m=season, sp=1, sq=0,
                                                   regressor=reg), warm=2 * season)
        return make

    def holt_winters() -> Model:
        return RiverModel(time_series.HoltWinters(alpha=0.1, beta=0.01, gamma=0.2,
                                                  seasonality=season), warm=2 * season,
                          offset=1.0)

    # SNARIMAX: the two most accurate of five (p, d, q) tried on nyc_taxi (docs/benchmarks.md)
    return {"seasonal-naive": lambda: SeasonalNaive(season),
            "snarimax(2,0,1)": snarimax(2, 0, 1), "snarimax(3,1,0)": snarimax(3, 1, 0),
            "holt-winters": holt_winters, "prsm": lambda: Ours(spec),
            "prsm-per-interval": lambda: Ours(spec, per_interval=True)}


HORIZONS = ("next", "hour", "rest")


def evaluate(spec: SeriesSpec, make: Callable[[], Model], stride: int) -> dict[str, Any]:
    """MASE per horizon (``HORIZONS``; ``hour`` is NaN where the period is an hour or less),
    after the first two seasons; for a model with intervals also the share of outcomes inside
    them (``cover <horizon>``), the shares shown without one (``learning <horizon>``), and
    for the rest of the period the (inside, shown) counts per period (``rest periods``) and
    the mean interval width over the mean outcome (``width rest``)."""
    y = spec.values
    m = spec.season
    scale = float(np.mean(np.abs(np.diff(np.asarray(y), n=1) if m == 1 else
                                 np.asarray(y[m:]) - np.asarray(y[:-m]))))
    scale = scale or 1.0
    hour = round(3600 / spec.step_s) if spec.step_s else 0
    has_hour = 0 < hour < spec.period
    model = make()
    start = 2 * m
    errors: dict[str, list[float]] = {h: [] for h in HORIZONS}
    inside: dict[str, list[bool]] = {h: [] for h in HORIZONS}
    learning: dict[str, list[bool]] = {h: [] for h in HORIZONS}
    by_period: dict[int, list[bool]] = {}  # rest-of-period outcomes inside, per period
    widths: list[float] = []
    actuals: list[float] = []
    for t, value in enumerate(y):
        if t >= start:
            left = spec.period - (t % spec.period)  # intervals t .. end of period
            strided = t % stride == 0
            ks = {"next": 1}
            if strided:
                ks["rest"] = left
                if has_hour and t + hour <= len(y):
                    ks["hour"] = hour
            totals = model.predict(list(ks.values()))
            for i, (name, k) in enumerate(ks.items()):
                actual = sum(y[t:t + k])
                errors[name].append(abs(actual - totals[i]) / k)
                if model.bands is None:
                    continue
                # as the worker shows it: no interval while its history is shorter than the
                # horizon (``still_learning``); coverage counts the intervals shown
                young = bool(spec.step_s) and bool(still_learning(
                    np.array([t]), np.array([k * spec.step_s]), spec.step_s)[0])
                learning[name].append(young)
                if not young:
                    low, high = model.bands[i]
                    inside[name].append(low <= actual <= high)
                    if name == "rest":
                        by_period.setdefault(t // spec.period, []).append(low <= actual <= high)
                        widths.append(high - low)
                        actuals.append(actual)
        model.learn(value)
    out = {h: float(np.mean(e)) / scale if e else math.nan for h, e in errors.items()}
    out.update({f"cover {h}": float(np.mean(c)) for h, c in inside.items() if c})
    out.update({f"learning {h}": float(np.mean(c)) for h, c in learning.items() if c})
    if by_period:
        out["rest periods"] = [(sum(v), len(v)) for v in by_period.values()]
        out["width rest"] = float(np.mean(widths)) / (float(np.mean(actuals)) or 1.0)
    return out


def coverage_bounds(series: list[list[tuple[int, int]]], draws: int = 4000,
                    seed: int = 0) -> tuple[float, float]:
    """95% bounds of the mean over series of the rest-of-period coverage, given each series'
    (inside, shown) counts per budget period. The forecasts within one period share most of
    their outcome, so the period is the unit resampled (a cluster bootstrap, with a fixed
    seed): with a dozen periods a series' coverage is known to within about +-10 points."""
    rng = np.random.default_rng(seed)
    arrays = [np.asarray(periods, dtype=np.float64) for periods in series]
    means = np.zeros(draws)
    for a in arrays:
        picks = rng.integers(0, len(a), size=(draws, len(a)))
        means += a[picks, 0].sum(axis=1) / a[picks, 1].sum(axis=1)
    low, high = np.quantile(means / len(arrays), [0.025, 0.975])
    return float(low), float(high)


def _nab(path: Path, season: int) -> SeriesSpec:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    times = [datetime.fromisoformat(r["timestamp"]).replace(tzinfo=UTC).timestamp()
             for r in rows[:2]]
    return SeriesSpec(path.stem, [float(r["value"]) for r in rows], season, season,
                      step_s=times[1] - times[0], start=times[0])


def series_groups(data: Path) -> dict[str, list[SeriesSpec]]:
    groups: dict[str, list[SeriesSpec]] = {}
    trace = data / "azure-llm-2023" / "AzureLLMInferenceTrace_code.csv"
    if trace.exists():
        price = Catalog.shipped().lookup("gpt-4o")
        assert price is not None
        rows = read_trace(trace)
        bins = [0.0] * (int(max(r.offset_s for r in rows) // 10) + 1)
        for r in rows:
            bins[int(r.offset_s // 10)] += price.cost(input_tokens=r.input_tokens,
                                                      output_tokens=r.output_tokens)
        groups["azure-trace cost/10s"] = [SeriesSpec("azure", bins, season=6,
                                                     period=len(bins), step_s=10.0)]
    nab = data / "nab" / "data"
    taxi = nab / "realKnownCause" / "nyc_taxi.csv"
    if taxi.exists():
        groups["nab nyc_taxi (30 min)"] = [_nab(taxi, 48)]
    aws = sorted((nab / "realAWSCloudwatch").glob("*.csv"))
    if aws:
        groups["nab AWS CloudWatch (5 min)"] = [_nab(p, 288) for p in aws]
    return groups


def _diverged(v: float) -> bool:
    return not math.isnan(v) and not (math.isfinite(v) and v < 1e6)


def _median(values: list[float]) -> float:
    """Median of the series' figures, diverged ones as infinite (NaN: no such horizon)."""
    kept = [math.inf if _diverged(v) else v for v in values if not math.isnan(v)]
    return float(np.median(kept)) if kept else math.nan


def aggregated(spec: SeriesSpec, k: int) -> SeriesSpec:
    """The series summed over ``k`` consecutive intervals (a coarser scoring interval)."""
    v = np.asarray(spec.values[: len(spec.values) // k * k]).reshape(-1, k).sum(axis=1)
    per_day = round(86400 / (spec.step_s * k))
    return SeriesSpec(spec.name, [float(x) for x in v], per_day, per_day,
                      step_s=spec.step_s * k, start=spec.start)


def ahead_errors(spec: SeriesSpec, hours: tuple[int, ...] = (1, 12)) -> list[float]:
    """The worker's forecaster's mean |error| of the total of the next ``hours``, forecast
    every hour counted from the series' start (the same instants and totals at every
    aggregation), after two days, as a share of the series' mean daily total."""
    values = np.asarray(spec.values)
    model = Ours(spec)
    per_hour = round(3600 / spec.step_s)
    daily = float(values.mean()) * 24 * per_hour or 1.0
    errors: list[list[float]] = [[] for _ in hours]
    ks = [h * per_hour for h in hours]
    for t, y in enumerate(values):
        if t >= 48 * per_hour and t % per_hour == 0 and t + max(ks) <= len(values):
            predicted = model.predict(ks)
            for i, k in enumerate(ks):
                errors[i].append(abs(predicted[i] - float(values[t:t + k].sum())) / daily)
        model.learn(float(y))
    return [float(np.mean(e)) if e else math.nan for e in errors]


def by_interval(specs: list[SeriesSpec], factors: list[int]) -> None:
    """The same series and targets scored at coarser intervals (``--aggregate``)."""
    print(f"{'interval':>10s}{'next hour':>12s}{'next 12 hours':>15s}"
          "   (median over series of mean |error| / daily total)")
    for k in factors:
        errors = np.array([ahead_errors(aggregated(s, k)) for s in specs])
        hour, half_day = np.nanmedian(errors, axis=0)
        print(f"{specs[0].step_s * k / 60:8.0f} m{hour:12.4f}{half_day:15.4f}", flush=True)


def main(argv: Iterable[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--stride", type=int, default=12, help="forecast 'rest' every N intervals")
    ap.add_argument("--aggregate", type=int, nargs="+", metavar="K",
                    help="instead: the worker's forecaster on the AWS series summed over K "
                    "intervals each (5 min x K), same instants and targets")
    args = ap.parse_args(list(argv) if argv is not None else None)
    groups = series_groups(args.data)
    if not groups:
        sys.exit(f"no series found under {args.data}")
    print(machine_line())
    if args.aggregate:
        aws = groups.get("nab AWS CloudWatch (5 min)")
        if not aws:
            sys.exit(f"no AWS CloudWatch series under {args.data}")
        by_interval(aws, args.aggregate)
        return
    print(f"{'group':30s}{'model':>16s}" + "".join(f"{'MASE ' + h:>11s}" for h in HORIZONS)
          + f"{'s':>7s}{'diverged':>10s}")
    per_series: dict[str, list[tuple[SeriesSpec, dict[str, float]]]] = {}
    for group, specs in groups.items():
        for name in models(specs[0]):
            started = time.perf_counter()
            scores = [evaluate(s, models(s)[name], args.stride) for s in specs]
            medians = [_median([sc[h] for sc in scores]) for h in HORIZONS]
            bad = sum(any(_diverged(v) for v in sc.values() if isinstance(v, float))
                      for sc in scores)
            print(f"{group:30s}{name:>16s}" + "".join(
                f"{'-':>11s}" if math.isnan(v) else f"{v:11.3f}" for v in medians)
                + f"{time.perf_counter() - started:7.1f}{bad:6d}/{len(specs)}", flush=True)
            cover = {h: [sc[f"cover {h}"] for sc in scores if f"cover {h}" in sc]
                     for h in HORIZONS}
            if any(cover.values()):
                periods = [sc["rest periods"] for sc in scores if "rest periods" in sc]
                low, high = coverage_bounds(periods) if periods else (math.nan, math.nan)
                bounds = f"   (rest: 95% bounds {low:.1%}-{high:.1%})" if periods else ""
                print(f"{'':30s}{'90% covers':>16s}" + "".join(
                    f"{float(np.mean(c)):11.1%}" if c else f"{'-':>11s}"
                    for c in cover.values()) + bounds, flush=True)
            if name == "prsm":
                per_series[group] = list(zip(specs, scores, strict=True))
    print("\nprsm, per series: coverage of the 90% intervals shown (next / hour / rest), the "
          "rest's 95% bounds (periods resampled) and\nthe periods they rest on, its mean width "
          "over the mean outcome, and the share of rest-of-period forecasts shown without "
          "an interval (still learning)")
    for group, rows in per_series.items():
        for spec, sc in rows:
            if "rest periods" in sc:
                low, high = coverage_bounds([sc["rest periods"]])
                extra = (f"  {low:6.1%}-{high:6.1%}{len(sc['rest periods']):4d}"
                         f"{sc['width rest']:7.2f}")
            else:
                extra = f"  {'-':>13s}{'-':>4s}{'-':>7s}"
            print(f"{group:30s}{spec.name:>36s}" + "".join(
                f"{sc[f'cover {h}']:9.1%}" if f"cover {h}" in sc else f"{'-':>9s}"
                for h in HORIZONS) + extra + f"{sc.get('learning rest', math.nan):9.1%}",
                flush=True)
    print(f"at {datetime.now():%Y-%m-%d %H:%M}")


if __name__ == "__main__":
    main()
