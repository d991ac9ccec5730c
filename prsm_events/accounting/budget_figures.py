"""Many budgets' ledger figures at one instant, as columns: what a scoring tick reads.

A ``BudgetView`` per budget is what a decision needs; a tick over a million budgets needs
their figures as arrays (row ``i`` for the ``i``-th budget it was read for), so that its
forecasts, outlooks and pacing run on whole columns. ``BudgetLedger.figures`` reads them in
one pass; ``BudgetFigures.of_views`` builds them from views (any source of views).

>>> from prsm_events.accounting.budgets import Budget
>>> from prsm_events.accounting.ledger_view import NANO, BudgetView
>>> b = Budget(scope="tenant:acme", period="1h", limit_usd=10)
>>> v = BudgetView(b, now=3600.0, spent=6 * NANO, reserved=NANO, start=0.0, end=3600.0,
...                releases=((3660.0, 2 * NANO), (3720.0, 4 * NANO)))
>>> f = BudgetFigures.of_views([v, v], now=3600.0)
>>> f.used.tolist(), f.remaining.tolist(), len(f)
([7.0, 7.0], [3.0, 3.0], 2)
>>> both = BudgetFigures.concat([f, f.take([1])])
>>> both.release_row.tolist(), both.released([60.0, 120.0]).tolist()
([0, 0, 1, 1, 2, 2], [[2.0, 6.0], [2.0, 6.0], [2.0, 6.0]])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from prsm_events.accounting.ledger_view import NANO, BudgetView

__all__ = ["BudgetFigures"]


@dataclass(frozen=True)
class BudgetFigures:
    """Per budget (row): spent + reserved and what is left to admit against, in USD (each
    computed exactly in nano-USD, then divided once), and the period's bounds. A rolling
    window's spend leaves it bucket by bucket: ``release_row``, ``release_at`` and
    ``release_nano`` list, for every bucket held, its row, when it leaves, and its
    nano-USD (``BudgetView.releases``, flat)."""

    now: float
    used: np.ndarray
    """(spent + reserved) / NANO."""
    remaining: np.ndarray
    """(limit - spent - reserved) / NANO (a global budget: over every partition as known)."""
    start: np.ndarray
    end: np.ndarray
    release_row: np.ndarray
    release_at: np.ndarray
    release_nano: np.ndarray
    share: np.ndarray | None = None
    """Per row, ``BudgetView.share`` (None: 1 for every row)."""

    def __len__(self) -> int:
        return len(self.used)

    @classmethod
    def of_views(cls, views: Sequence[BudgetView], now: float) -> BudgetFigures:
        rows: list[int] = []
        at: list[float] = []
        nano: list[int] = []
        for row, view in enumerate(views):
            for when, amount in view.releases:
                rows.append(row)
                at.append(when)
                nano.append(amount)
        shares = [v.share for v in views]
        return cls.of_lists(now, [(v.spent + v.reserved) / NANO for v in views],
                            [v.remaining / NANO for v in views], [v.start for v in views],
                            [v.end for v in views], rows, at, nano,
                            None if all(x == 1.0 for x in shares) else shares)

    @classmethod
    def of_lists(cls, now: float, used: Sequence[float] | np.ndarray,
                 remaining: Sequence[float] | np.ndarray, start: Sequence[float] | np.ndarray,
                 end: Sequence[float] | np.ndarray,
                 release_row: Sequence[int] | np.ndarray,
                 release_at: Sequence[float] | np.ndarray,
                 release_nano: Sequence[int] | np.ndarray,
                 share: Sequence[float] | np.ndarray | None = None) -> BudgetFigures:
        rows = np.asarray(release_row, dtype=np.int64)
        order = np.argsort(rows, kind="stable")  # kept by row (``take`` relies on it)
        return cls(now, np.array(used, dtype=np.float64),
                   np.array(remaining, dtype=np.float64), np.array(start, dtype=np.float64),
                   np.array(end, dtype=np.float64), rows[order],
                   np.asarray(release_at, dtype=np.float64)[order],
                   np.asarray(release_nano, dtype=np.int64)[order],
                   None if share is None else np.array(share, dtype=np.float64))

    def shares(self) -> np.ndarray:
        """``share`` of every row."""
        return np.ones(len(self)) if self.share is None else self.share

    def with_views(self, placed: Sequence[tuple[int, BudgetView]]) -> BudgetFigures:
        """These figures with row ``i`` read from ``view`` for each ``(i, view)`` placed (the
        budgets read through ``BudgetLedger.view``)."""
        rows = np.array([row for row, _ in placed], dtype=np.int64)
        part = BudgetFigures.of_views([view for _, view in placed], self.now)
        columns = {}
        for name in ("used", "remaining", "start", "end"):
            columns[name] = getattr(self, name).copy()
            columns[name][rows] = getattr(part, name)
        share = None
        if self.share is not None or part.share is not None:
            share = self.shares().copy()
            share[rows] = part.shares()
        return BudgetFigures.of_lists(
            self.now, **columns,
            release_row=np.concatenate([self.release_row, rows[part.release_row]]),
            release_at=np.concatenate([self.release_at, part.release_at]),
            release_nano=np.concatenate([self.release_nano, part.release_nano]), share=share)

    def take(self, rows: Sequence[int] | np.ndarray) -> BudgetFigures:
        """The figures of ``rows`` (distinct, in that order), renumbered from 0."""
        idx = np.asarray(rows, dtype=np.int64)
        first = np.searchsorted(self.release_row, idx, side="left")
        count = np.searchsorted(self.release_row, idx, side="right") - first
        new_row = np.repeat(np.arange(len(idx)), count)
        picks = np.repeat(first - np.cumsum(count) + count, count) + np.arange(int(count.sum()))
        return BudgetFigures(self.now, self.used[idx], self.remaining[idx], self.start[idx],
                             self.end[idx], new_row, self.release_at[picks],
                             self.release_nano[picks],
                             None if self.share is None else self.share[idx])

    @classmethod
    def concat(cls, parts: Sequence[BudgetFigures]) -> BudgetFigures:
        """``parts`` one after the other (read at the same ``now``: the first's is kept)."""
        if not parts:
            return cls.of_lists(0.0, [], [], [], [], [], [], [])
        offsets = np.cumsum([0] + [len(p) for p in parts[:-1]])
        def joined(name: str) -> np.ndarray:
            out: np.ndarray = np.concatenate([getattr(p, name) for p in parts])
            return out

        return BudgetFigures(
            parts[0].now, joined("used"), joined("remaining"), joined("start"), joined("end"),
            np.concatenate([p.release_row + o for p, o in zip(parts, offsets, strict=True)]),
            joined("release_at"), joined("release_nano"),
            None if all(p.share is None for p in parts)
            else np.concatenate([p.shares() for p in parts]))

    def released(self, ahead: Sequence[float]) -> np.ndarray:
        """USD that leaves each row's window within each of ``ahead`` seconds (increasing):
        shaped (rows, len(ahead)); summed exactly in nano-USD."""
        until = self.now + np.asarray(ahead, dtype=np.float64)
        nano = np.zeros((len(self), len(until) + 1), dtype=np.int64)
        first = np.searchsorted(until, self.release_at, side="left")
        np.add.at(nano, (self.release_row, first), self.release_nano)
        out: np.ndarray = np.cumsum(nano, axis=1)[:, :-1] / NANO
        return out
