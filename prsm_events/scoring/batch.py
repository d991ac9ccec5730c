"""The batch scorer: per-scope state in arrays, every active scope scored in one call.

Each tick (the worker's scoring timer) hands over the last interval's spend per scope (and,
for paced budgets, the demand). A scope with neither for ``forget_after`` ticks is dropped
(API keys rotate, services come and go: the arrays, each tick's work and the checkpoint stay
the size of the live scopes); if it comes back it starts fresh. One ``step`` updates, for
all scopes at once, the anomaly detector and three forecasters: two with a step per
hour-of-day bucket (``season``), of spend (the one the detector compares with) and of demand
(what pacing expects), and the spend forecaster the outlooks read (``outlook_season`` buckets,
48 half hours by default, read and learned as a line through their middles; it also checks
its own interval every 6 hours and scales it by what it learns: ``check_step``). The finer
profile forecasts the hours ahead better; the detector ranks anomalies best and pacing
serves most against the coarser one (docs/decisions/2026-11-28-forecasters.md). ``rest``
sums forecasts to the period ends asked for; ``pace`` runs the pacing controller for the
paced budgets. Arrays live on the chosen backend (NumPy or CuPy); results come back to the host as
NumPy arrays.

>>> scorer = BatchScorer("numpy")
>>> for minute in range(120):
...     out = scorer.step({"tenant:a": 1.0, "tenant:b": 2.0}, {}, bucket=minute // 60)
>>> out = scorer.step({"tenant:a": 1.0, "tenant:b": 40.0}, {}, bucket=2)
>>> dict(zip(out.scopes, out.score.round(2).tolist()))["tenant:b"] > 0.9
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any, TypeVar, cast

import numpy as np

from prsm_events.scoring.anomaly_step import AnomalyParams, new_anomaly_state
from prsm_events.scoring.backend import array_module, backend_name, to_host
from prsm_events.scoring.calendar_math import profile_place, profile_weights, weekday_counts
from prsm_events.scoring.checkpoint_format import ScorerState, saved_array
from prsm_events.scoring.forecast_params import ForecastParams
from prsm_events.scoring.forecast_step import forecast_step, new_forecast_state
from prsm_events.scoring.pacing_step import (
    PacingInputs,
    PacingParams,
    PacingState,
    new_pacing_state,
    pacing_step,
)
from prsm_events.scoring.parked_scopes import ParkedScopes
from prsm_events.scoring.rest_of_period import check_step, forecast_ahead, forecast_rest
from prsm_events.scoring.scope_states import ScopeState, stacked
from prsm_events.scoring.spend_step import spend_step
from prsm_events.scoring.state_arrays import StateArrays
from prsm_events.scoring.young_scopes import young_counts, young_profile

__all__ = ["OUTLOOK_SEASON", "BatchScorer", "Rest", "ScopeScores", "ScorerState", "lookup"]

Host = np.ndarray[Any, Any]


@dataclass(frozen=True)
class ScopeScores:
    """One tick's results, aligned with ``scopes`` (host arrays)."""

    scopes: list[str]
    observed: Host
    score: Host
    sigma: Host
    expected: Host


@dataclass(frozen=True)
class Rest:
    """Forecast totals over the rest of each asked period (host arrays)."""

    mean: Host
    low: Host
    high: Host
    learned: Host
    """Intervals each forecaster has learned."""


GIL_SLICE = 50_000
"""Items one call into C handles at most while a tick runs beside the event loop: such a call
holds the interpreter, and the loop waits for it (50,000 dictionary lookups: about 20 ms)."""


def lookup(mapping: Mapping[str, float], keys: Sequence[str], default: float,
           dtype: type = np.float64) -> Host:
    """``mapping``'s value of each key (``default`` if absent), as an array, ``GIL_SLICE``
    keys at a time.

    >>> lookup({"a": 1, "b": 2}, ["b", "c", "a"], -1, np.int64).tolist()
    [2, -1, 1]
    """
    out: Host = np.empty(len(keys), dtype=dtype)
    for lo in range(0, len(keys), GIL_SLICE):
        some = keys[lo:lo + GIL_SLICE]
        out[lo:lo + len(some)] = np.fromiter(map(mapping.get, some, repeat(default)),
                                             dtype=dtype, count=len(some))
    return out


OUTLOOK_SEASON = 48
"""Buckets of the outlook forecaster's daily profile: half hours
(docs/decisions/2026-11-28-forecasters.md)."""
_PARTS = ("anomaly", "spend_fc", "outlook_fc", "demand_fc")
S = TypeVar("S", bound=StateArrays)


def _grow(xp: Any, state: S, size: int) -> S:
    """A copy with room for ``size`` scopes (scopes are the last axis)."""
    def bigger(arr: Any) -> Any:
        out = xp.zeros((*arr.shape[:-1], size), dtype=arr.dtype)
        out[..., : arr.shape[-1]] = arr
        return out

    return state.map(bigger)


@dataclass(frozen=True)
class ScorerParams:
    """The constants of the scorer's three models."""

    anomaly: AnomalyParams
    forecast: ForecastParams
    pacing: PacingParams


class BatchScorer:
    """Arrays of per-scope state; see the module doc."""

    def __init__(
        self, backend: str = "auto", season: int = 24,
        anomaly: AnomalyParams | None = None, forecast: ForecastParams | None = None,
        pacing: PacingParams | None = None, capacity: int = 1024,
        forget_after: int | None = None, outlook_season: int = OUTLOOK_SEASON,
    ) -> None:
        self.xp = array_module(backend)
        self.backend = backend_name(self.xp)
        self.season = season
        self.outlook_season = outlook_season
        self.params = ScorerParams(anomaly or AnomalyParams(), forecast or ForecastParams(),
                                   pacing or PacingParams())
        self.rows: dict[str, int] = {}
        self.budget_rows: dict[str, int] = {}
        self.capacity = capacity
        self.anomaly = new_anomaly_state(self.xp, capacity, season)
        self.spend_fc = new_forecast_state(self.xp, capacity, season)
        self.outlook_fc = new_forecast_state(self.xp, capacity, outlook_season, check=True)
        self.demand_fc = new_forecast_state(self.xp, capacity, season)
        self.pacing = new_pacing_state(self.xp, capacity)
        self.ticks = 0
        self.forget_after = forget_after
        self.active = np.zeros(capacity, dtype=np.int64)
        """Per row, the last tick its scope spent or asked for anything (host)."""
        self._interval: dict[bool, Host] = {False: np.zeros(0), True: np.zeros(0)}
        """The last step's spend (False) and demand (True) per row, as learned (host)."""
        self.paced_at = np.full(capacity, -1, dtype=np.int64)
        """Per budget row, the tick it was last paced at (-1: never; host)."""
        self.parked = ParkedScopes()
        """Scopes set aside (``park``): not stepped; one that comes back resumes."""
        self.adopted: dict[str, tuple[int, float]] = {}
        """Each scope adopted lately (``adopt``): the tick it was adopted at and when the
        state it took was written; a state written later replaces it, the same or an
        older one does not."""

    def __len__(self) -> int:
        return len(self.rows)

    def rows_of(self, scopes: Sequence[str]) -> np.ndarray:
        """The scopes' rows (new scopes are added): ``ahead`` takes them in place of the
        names, so that a list read in parts is looked up once. They hold until the next
        ``step`` (which may forget idle scopes and move the others)."""
        n = len(scopes)
        found = lookup(self.rows, scopes, -1, np.int64)
        if n and found.min() < 0:
            self._ensure(scopes)
            return self.rows_of(scopes)
        return found

    def _ensure(self, scopes: Sequence[str]) -> None:
        rows = self.rows
        known = rows.__contains__
        if all(all(map(known, scopes[lo:lo + GIL_SLICE]))  # (checked in C, a slice at a
               for lo in range(0, len(scopes), GIL_SLICE)):  # time: beside the event loop)
            return
        first_new = len(rows)
        for scope in [s for s in scopes if s not in rows]:
            if scope not in rows:  # a new scope named twice in ``scopes`` gets one row
                rows[scope] = len(rows)
        if len(rows) == first_new:
            return
        if len(self.rows) > self.capacity:
            size = max(len(self.rows), 2 * self.capacity)
            for part in _PARTS:
                setattr(self, part, _grow(self.xp, getattr(self, part), size))
            self.active = np.concatenate([self.active, np.zeros(size - self.capacity,
                                                                dtype=np.int64)])
            self.capacity = size
        for part in _PARTS:
            for arr in getattr(self, part).arrays().values():  # spare rows stepped on 0
                arr[..., first_new:len(self.rows)] = 0
        self.active[first_new:len(self.rows)] = self.ticks
        if len(self.parked):
            self._resume(list(self.rows)[first_new:])

    def _resume(self, scopes: list[str]) -> None:
        """Give the parked ones of ``scopes`` (rows just added) the state they had."""
        names, arrays, _ = self.parked.take(scopes)
        if names:
            self._write_rows(names, arrays)

    def _read_rows(self, rows: Host) -> dict[str, Host]:
        """The state of the scopes at ``rows``, by ``"<part>.<name>"`` (host copies, the
        scopes on the last axis)."""
        idx = self.xp.asarray(rows)
        return {f"{part}.{name}": to_host(arr[..., idx]).copy()
                for part in _PARTS for name, arr in getattr(self, part).arrays().items()}

    def states(self, scopes: Sequence[str]) -> tuple[list[str], dict[str, Host]]:
        """What this scorer has learned of the known ones of ``scopes`` (parked ones are
        not in use here): those scopes, and their arrays by ``"<part>.<name>"`` (host
        copies, the scopes on the last axis, as ``scope_states.encode_scope_states`` takes
        them)."""
        rows = lookup(self.rows, scopes, -1, np.int64)
        at = np.flatnonzero(rows >= 0)
        return [scopes[i] for i in at.tolist()], self._read_rows(rows[at])

    def _write_rows(self, scopes: Sequence[str], arrays: Mapping[str, Host]) -> None:
        """Set the state of ``scopes`` (known) to ``arrays`` (as ``_read_rows`` gives)."""
        idx = self.xp.asarray(lookup(self.rows, scopes, -1, np.int64))
        for part in _PARTS:
            for name, arr in getattr(self, part).arrays().items():
                arr[..., idx] = self.xp.asarray(arrays[f"{part}.{name}"])

    def forget_idle(self) -> list[str]:
        """Drop the scopes that have neither spent nor asked for anything for more than
        ``forget_after`` ticks (the others keep their state, in their order), parked ones
        too; returns them."""
        if self.forget_after is None:
            return []
        gone = self.parked.expire(idle_before=self.ticks - self.forget_after)
        if not self.rows:
            return gone
        n = len(self.rows)
        idle = self.ticks - self.active[:n] > self.forget_after
        if not idle.any():
            return gone
        names = list(self.rows)
        self._keep_rows(np.flatnonzero(~idle))
        return gone + [names[i] for i in np.flatnonzero(idle).tolist()]

    def park(self, scopes: Sequence[str]) -> int:
        """Set ``scopes`` aside (``parked_scopes``: another worker answers for them now):
        their state leaves the arrays as it is, so that no step learns or scores their
        silence here; one that spends or is asked for here again resumes from it. Rows move
        (as after ``forget_idle``). Returns how many were parked (unknown ones are not)."""
        rows = lookup(self.rows, scopes, -1, np.int64)
        rows = np.unique(rows[rows >= 0])
        if not len(rows):
            return 0
        names = list(self.rows)
        self.parked.add([names[i] for i in rows.tolist()], self._read_rows(rows),
                        self.active[rows])
        keep = np.ones(len(names), dtype=bool)
        keep[rows] = False
        self._keep_rows(np.flatnonzero(keep))
        return len(rows)

    def adopt(self, states: Mapping[str, ScopeState], younger_than: int) -> list[str]:
        """Take each scope's handed-over state (``scope_states``: what another worker learned
        of it) for a scope this scorer does not know, or knows from fewer than
        ``younger_than`` learned intervals; for one it adopted fewer than ``younger_than``
        ticks ago, only a state written later than the one it took; not for a parked one.
        States of one layout are read as one array; states that are not this scorer's
        arrays (another layout, torn values) are skipped. Returns the scopes adopted."""
        by_layout: dict[Any, list[str]] = {}
        for scope, state in states.items():
            by_layout.setdefault(state.layout(), []).append(scope)
        adopted: list[str] = []
        for scopes in by_layout.values():
            try:
                columns = stacked([states[s] for s in scopes])
            except ValueError:
                continue
            adopted += self._adopt_columns(scopes, columns, younger_than,
                                           [states[s].at for s in scopes])
        return adopted

    def keeps(self, younger_than: int) -> set[str]:
        """The scopes whose state ``adopt`` keeps whatever it is handed now: parked ones, and
        those learned here for ``younger_than`` intervals or more that it did not adopt in the
        last ``younger_than`` ticks (a reader of handed-over states can skip theirs)."""
        scopes = list(self.rows)
        return {s for s, kept in zip(scopes, self._kept(scopes, younger_than), strict=True)
                if kept} | set(self.parked.names)

    def _kept(self, scopes: Sequence[str], younger_than: int) -> list[bool]:
        """For each of ``scopes``, whether ``adopt`` keeps it as it is whatever it is handed
        (``keeps``; ``adopted`` is pruned to the last ``younger_than`` ticks)."""
        ticks = self.ticks
        lately = self.adopted = {s: taken for s, taken in self.adopted.items()
                                 if ticks - taken[0] < younger_than}
        rows = lookup(self.rows, scopes, -1, np.int64).tolist()
        learned = to_host(self.outlook_fc.n)
        return [s in self.parked or (row >= 0 and learned[row] >= younger_than
                                     and s not in lately)
                for s, row in zip(scopes, rows, strict=True)]

    def _adopt_columns(self, scopes: Sequence[str], columns: Mapping[str, Host],
                       younger_than: int, written: Sequence[float]) -> list[str]:
        """``adopt`` of ``scopes`` whose states are ``columns`` (the scopes on their first
        axis): none when they are not this scorer's arrays."""
        shapes = self._state_shapes()
        if set(columns) != set(shapes) or any(
                np.shape(columns[k]) != (len(scopes), *shape) for k, shape in shapes.items()):
            return []
        kept = self._kept(scopes, younger_than)
        lately = self.adopted
        at = [i for i, scope in enumerate(scopes) if not kept[i] and (
            scope not in self.rows or scope not in lately or written[i] > lately[scope][1])]
        if not at:
            return []
        taken = [scopes[i] for i in at]
        self._ensure(taken)
        pick = np.array(at, dtype=np.int64)
        self._write_rows(taken, {k: np.moveaxis(np.asarray(v, dtype=np.float64)[pick], 0, -1)
                                 for k, v in columns.items()})
        lately.update({scopes[i]: (self.ticks, written[i]) for i in at})
        return taken

    def _state_shapes(self) -> dict[str, tuple[int, ...]]:
        """Each scope part's array shape without the scopes' axis, by ``"<part>.<name>"``."""
        return {f"{part}.{name}": arr.shape[:-1]
                for part in _PARTS for name, arr in getattr(self, part).arrays().items()}

    def restart_detection(self, scopes: Sequence[str]) -> int:
        """Start the anomaly detector of ``scopes`` again (it warms up anew, then judges them
        on what it learns from now on; their forecasters go on): a scope whose spend here
        changed for a reason that is not news (a share of spend over tenants, when this
        worker's partitions changed). Returns how many known scopes it restarted."""
        rows = lookup(self.rows, scopes, -1, np.int64)
        rows = rows[rows >= 0]
        if len(rows):
            idx = self.xp.asarray(rows)
            for arr in self.anomaly.arrays().values():
                arr[..., idx] = 0
        return len(rows)

    def _keep_rows(self, keep: Host) -> None:
        """Keep only the scopes at rows ``keep`` (ascending), in their order, from row 0."""
        n = len(self.rows)
        names = list(self.rows)
        index = self.xp.asarray(keep, dtype=self.xp.int64)
        for part in _PARTS:
            for arr in getattr(self, part).arrays().values():
                arr[..., : len(keep)] = arr[..., index]
                arr[..., len(keep):n] = 0
        self.active[: len(keep)] = self.active[keep]
        for demand, host in self._interval.items():  # (the last step's, row by row)
            if len(host) >= n:
                moved = np.zeros_like(host)
                moved[: len(keep)] = host[keep]
                self._interval[demand] = moved
        self.rows = {names[i]: row for row, i in enumerate(keep.tolist())}

    def _column(self, values: Mapping[str, float], scale: float = 1.0) -> Host:
        """The values (times ``scale``) as one host array over the rows; a scope with a
        nonzero value is active."""
        host = np.zeros(self.capacity)
        scopes, amounts = list(values), list(values.values())
        for lo in range(0, len(scopes), GIL_SLICE):  # (a tick runs beside the event loop)
            rows = np.fromiter(map(self.rows.__getitem__, scopes[lo:lo + GIL_SLICE]),
                               dtype=np.int64)
            got = np.array(amounts[lo:lo + GIL_SLICE], dtype=np.float64)
            host[rows] = got if scale == 1.0 else got * scale
            self.active[rows[got != 0]] = self.ticks
        return host

    def step(self, spend: Mapping[str, float], demand: Mapping[str, float],
             bucket: int, day: int | None = None,
             day_share: float | None = None, scale: float = 1.0) -> ScopeScores:
        """Learn one interval (in ``bucket`` on weekday ``day``) for every known scope
        (silent ones spent 0) and score it. ``day_share``: the share of the cycle gone at the
        interval's middle (0.5 at noon; the middle of ``bucket`` if not given), which places
        it in the outlook forecaster's profile. ``scale``: what spend and demand are
        multiplied by first (an interval longer than the scorer's counts at its rate)."""
        if self.forget_after is not None and self.ticks % max(1, self.forget_after // 10) == 0:
            self.forget_idle()
        self._ensure(list(spend))
        self._ensure(list(demand))
        columns = self._interval
        columns[False] = self._column(spend, scale)
        x = self.xp.asarray(columns[False])
        anomaly, forecast = self.params.anomaly, self.params.forecast
        out = spend_step(self.xp, self.spend_fc, self.anomaly, x, bucket, forecast, anomaly,
                         day)
        if day_share is None:
            day_share = ((bucket % self.season) + 0.5) / self.season
        width = 86400.0 / self.outlook_season
        at, past = profile_place(day_share * 86400.0, width, self.outlook_season)
        forecast_step(self.xp, self.outlook_fc, x, at, forecast, day, past)
        self._check_outlooks(x, day, day_share, forecast)
        columns[True] = self._column(demand, scale)
        forecast_step(self.xp, self.demand_fc, self.xp.asarray(columns[True]), bucket, forecast,
                      day)
        self.ticks += 1
        n = len(self.rows)
        return ScopeScores(list(self.rows), to_host(x)[:n], to_host(out.score)[:n],
                           to_host(out.sigma)[:n], to_host(out.expected)[:n])

    def last_interval(self, rows: np.ndarray, demand: bool = False) -> Host:
        """The spend (or demand) of the scopes at ``rows`` that the last ``step`` learned
        (times its ``scale``; 0 for a scope added since or before any step)."""
        host = self._interval[demand]
        out = np.zeros(len(rows))
        known = rows < len(host)
        out[known] = host[rows[known]]
        return out

    def _check_outlooks(self, x: Any, day: int | None, day_share: float,
                        params: ForecastParams) -> None:
        """The outlook forecaster's self-check (``check_step``) over the intervals that
        follow this one (an epoch time on the right weekday stands in for the clock)."""
        interval = 86400.0 / params.intervals_per_day
        start = (((day - 3) % 7) if day is not None else 0) * 86400.0 + day_share * 86400.0
        start += interval / 2  # this interval's middle + half: where the next one begins
        end = start + round(params.check_intervals) * interval

        def ahead() -> tuple[list[float], list[int] | None]:
            return (profile_weights(start, end, interval, 86400.0 / self.outlook_season,
                                    self.outlook_season),
                    weekday_counts(start, end, interval) if day is not None else None)

        check_step(self.xp, self.outlook_fc, x, ahead, params)

    def export(self) -> ScorerState:
        """A copy of the learned state (host arrays, only the rows in use)."""
        n, m = len(self.rows), len(self.budget_rows)
        arrays = {f"{part}.{name}": to_host(arr[..., :n]).copy()
                  for part in _PARTS for name, arr in getattr(self, part).arrays().items()}
        arrays |= {f"pacing.{name}": to_host(arr[:m]).copy()
                   for name, arr in self.pacing.arrays().items()}
        parked = self.parked
        return ScorerState(list(self.rows), list(self.budget_rows), self.season, self.ticks,
                           arrays, self.active[:n].copy(), self.paced_at[:m].copy(),
                           ScorerState(list(parked.names), [], self.season, self.ticks,
                                       {k: v.copy() for k, v in parked.arrays.items()},
                                       parked.active.copy()) if len(parked) else None)

    def load(self, state: ScorerState) -> None:
        """Go on from ``state`` (replacing everything learned so far); ``ValueError`` if it
        does not fit this scorer (another season, missing or misshapen arrays; see
        ``checkpoint.saved_array`` for what a checkpoint from an earlier version may lack)."""
        if state.season != self.season:
            raise ValueError(f"saved with {state.season} buckets per day, not {self.season}")
        n, m = len(state.scopes), len(state.budgets)
        if len(set(state.scopes)) != n or len(set(state.budgets)) != m:
            raise ValueError("repeated scope or budget names")
        active = (np.full(n, state.ticks, dtype=np.int64) if state.active is None
                  else np.asarray(state.active, dtype=np.int64))
        if active.shape != (n,):
            raise ValueError(f"activity is shaped {active.shape}, expected {(n,)}")
        paced = (np.full(m, state.ticks, dtype=np.int64) if state.paced is None
                 else np.asarray(state.paced, dtype=np.int64))
        if paced.shape != (m,):
            raise ValueError(f"pacing ticks are shaped {paced.shape}, expected {(m,)}")
        size, pacing_size = max(n, self.capacity), max(m, self.pacing.pressure.shape[0])
        fresh: dict[str, StateArrays] = {part: _grow(self.xp, getattr(self, part), size)
                                         for part in _PARTS}
        parked = self._parked_of(state, fresh)
        fresh["pacing"] = _grow(self.xp, self.pacing, pacing_size)
        for part, arrays in fresh.items():
            rows = m if part == "pacing" else n
            for name, arr in arrays.arrays().items():
                saved = saved_array(state, part, name, (*arr.shape[:-1], rows))
                arr[...] = 0
                if saved is not None:
                    arr[..., :rows] = self.xp.asarray(saved, dtype=self.xp.float64)
        for part in _PARTS:
            setattr(self, part, fresh[part])
        self.pacing = cast(PacingState, fresh["pacing"])
        self.capacity = size
        self.active = np.zeros(size, dtype=np.int64)
        self.active[:n] = active
        self.rows = {scope: i for i, scope in enumerate(state.scopes)}
        self.budget_rows = {key: i for i, key in enumerate(state.budgets)}
        self.paced_at = np.full(pacing_size, -1, dtype=np.int64)
        self.paced_at[:m] = paced
        self.ticks = state.ticks
        self._interval = {False: np.zeros(0), True: np.zeros(0)}
        self.parked = parked

    def _parked_of(self, state: ScorerState, like: Mapping[str, StateArrays]) -> ParkedScopes:
        """The parked scopes of ``state``, their arrays shaped as those of ``like`` but for
        the scopes (``ValueError`` otherwise)."""
        parked = ParkedScopes()
        kept = state.parked
        if kept is None or not kept.scopes:
            return parked
        k = len(kept.scopes)
        if len(set(kept.scopes)) != k or set(kept.scopes) & set(state.scopes):
            raise ValueError("a parked scope named twice, or also in use")
        active = (np.full(k, kept.ticks, dtype=np.int64) if kept.active is None
                  else np.asarray(kept.active, dtype=np.int64))
        if active.shape != (k,):
            raise ValueError(f"parked activity is shaped {active.shape}, expected {(k,)}")
        arrays = {}
        for part in _PARTS:
            for name, arr in like[part].arrays().items():
                want = (*arr.shape[:-1], k)
                saved = saved_array(kept, part, name, want)
                arrays[f"{part}.{name}"] = (np.zeros(want) if saved is None
                                            else np.asarray(saved, dtype=np.float64))
        parked.add(kept.scopes, arrays, active)
        return parked

    def rest(self, scopes: Sequence[str], counts: Sequence[Sequence[float]] | Host,
             demand: bool = False, days: Sequence[Sequence[int]] | Host | None = None,
             now: tuple[int, float, float] | None = None) -> Rest:
        """Forecast of spend (or demand) per scope over its remaining intervals per bucket
        (and per weekday): what each bucket weighs in them (``profile_weights``), of the
        outlook profile (``outlook_season`` buckets) for spend, of the hourly one
        (``season``) for demand. ``now``: (the bucket just learned, intervals per bucket,
        intervals of it passed, in the same profile); with it a scope younger than a day
        forecasts the buckets it has not seen at its rate now (``young_counts``)."""
        self._check_width(counts, demand)
        xp = self.xp
        distinct = list(dict.fromkeys(scopes))  # a scope asked for several horizons: once
        rows = None
        if len(distinct) != len(scopes):
            place = {s: i for i, s in enumerate(distinct)}
            rows = xp.asarray([place[s] for s in scopes], dtype=xp.int64)
        idx = xp.asarray(self.rows_of(distinct), dtype=xp.int64)
        state = self.demand_fc if demand else self.outlook_fc
        part = state.map(lambda v: v[..., idx])
        learned = to_host(part.n if rows is None else part.n[rows])
        if now is not None:
            counts = young_counts(counts, learned, *now)
        out = forecast_rest(xp, part, xp.asarray(counts, dtype=xp.float64),
                            None if days is None else xp.asarray(days, dtype=xp.float64),
                            self.params.forecast, rows)
        return Rest(to_host(out.mean), to_host(out.low), to_host(out.high), learned)

    def _check_width(self, counts: Sequence[Sequence[float]] | Host, demand: bool) -> None:
        buckets = self.season if demand else self.outlook_season
        width = np.shape(counts)[-1] if len(counts) else buckets
        if width != buckets:
            raise ValueError(f"counts for {width} buckets; the {'demand' if demand else 'spend'}"
                             f" forecaster's profile has {buckets}")

    def ahead(self, scopes: Sequence[str] | Host, counts: Sequence[Sequence[float]] | Host,
              demand: bool = False, days: Sequence[Sequence[int]] | Host | None = None,
              now: tuple[int, float, float] | None = None) -> Rest:
        """``rest`` of every scope at each of several horizons, the same for all: row ``h``
        of ``counts`` (and ``days``) is horizon ``h``; ``mean``, ``low`` and ``high`` are
        shaped (scopes, horizons). Equal to ``rest`` with each scope asked once per horizon
        (to rounding: the profile is weighed by one matrix product). ``scopes``: names, or
        their rows (``rows_of``)."""
        self._check_width(counts, demand)
        xp = self.xp
        rows = scopes if isinstance(scopes, np.ndarray) else self.rows_of(scopes)
        idx = xp.asarray(rows, dtype=xp.int64)
        part = (self.demand_fc if demand else self.outlook_fc).map(lambda v: v[..., idx])
        learned = to_host(part.n)
        profile = None if now is None else young_profile(xp, part.season, learned, *now)
        out = forecast_ahead(xp, part, xp.asarray(counts, dtype=xp.float64),
                             None if days is None else xp.asarray(days, dtype=xp.float64),
                             self.params.forecast, profile)
        return Rest(to_host(out.mean), to_host(out.low), to_host(out.high), learned)

    def pace(self, budgets: Sequence[str], inputs: PacingInputs) -> tuple[Host, Host]:
        """Pacing pressure and reserve for each budget (keys are stable across ticks);
        ``inputs`` aligned with ``budgets``, once per tick (after ``step``).

        A budget paced before but not at the tick before this one (another worker answered
        for it meanwhile, or it was not paced) starts again as a new one: what its state
        held is that long out of date, and a pressure kept from then would hold back its
        traffic for nothing."""
        for key in budgets:
            if key not in self.budget_rows:
                self.budget_rows[key] = len(self.budget_rows)
        m = len(self.budget_rows)
        if m > self.pacing.pressure.shape[0]:
            self.pacing = _grow(self.xp, self.pacing, 2 * m)
            self.paced_at = np.concatenate([self.paced_at,
                                            np.full(2 * m - len(self.paced_at), -1)])
        rows = lookup(self.budget_rows, budgets, -1, np.int64)
        last = self.paced_at[rows]
        away = rows[(last >= 0) & (last < self.ticks - 1)]
        self.paced_at[rows] = self.ticks
        idx = self.xp.asarray(rows)
        if len(away):
            gone = self.xp.asarray(away)
            for arr in self.pacing.arrays().values():
                arr[gone] = 0
        part = self.pacing.map(lambda v: v[idx])
        out = pacing_step(self.xp, part, **inputs.as_arrays(self.xp), params=self.params.pacing)
        for k, v in part.arrays().items():
            getattr(self.pacing, k)[idx] = v
        return to_host(out.pressure).copy(), to_host(out.reserve).copy()
