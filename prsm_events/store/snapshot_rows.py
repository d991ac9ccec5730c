"""Budget snapshots as records of the ``prsm.snapshots`` topic, which the sink writes into the
ClickHouse ``budget_snapshots`` table.

At a snapshot tick (``SnapshotClock``) the scoring timer turns the tick's outlooks
(``watch.outlook``) of the budgets this worker answers for into NDJSON rows, one record per
``max_bytes`` (as ``store.accepted_rows``: the sink inserts the records as they are). At
every other tick it writes the calendar budgets whose period ends before the next tick: each
period's closing figures, the actual that forecasts are measured against.

>>> import numpy as np
>>> from prsm_events.accounting.budget_figures import BudgetFigures
>>> from prsm_events.accounting.budgets import Budget
>>> from prsm_events.accounting.ledger_view import NANO, BudgetView
>>> from prsm_events.watch.outlook import OutlookColumns, Outlooks
>>> b = Budget(scope="tenant:acme", period="day", limit_usd=10)
>>> v = BudgetView(b, now=43200.0, spent=6 * NANO, reserved=0, start=0.0, end=86400.0)
>>> outlooks = Outlooks()
>>> outlooks.add(OutlookColumns.calendar([b], BudgetFigures.of_views([v], 43200.0),
...                                      *(np.array([x]) for x in (6.0, 5.0, 7.0))))
>>> [record] = snapshot_records(outlooks, lambda budget: True)
>>> row = msgspec.json.decode(record)
>>> row["budget_key"], row["used_usd"], row["forecast_usd"], row["exhaustion_ts"]
('tenant:acme|day', 6.0, 12.0, '1970-01-01T20:00:00Z')
>>> row["ts"], row["period_end"]
('1970-01-01T12:00:00Z', '1970-01-02T00:00:00Z')
>>> snapshot_records(outlooks, lambda budget: True, every=False, closing_within_s=60.0)
[]
>>> len(snapshot_records(outlooks, lambda budget: True, every=False, closing_within_s=43200))
1
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import msgspec

from prsm_events.accounting.budgets import Budget
from prsm_events.accounting.periods import ROLLING
from prsm_events.store.ndjson_records import pack_lines
from prsm_events.watch.outlook import Outlooks

__all__ = ["SNAPSHOT_COLUMNS", "SnapshotClock", "SnapshotRow", "snapshot_records"]


class SnapshotRow(msgspec.Struct):
    """One ``budget_snapshots`` row: its columns in insert order."""

    ts: datetime
    budget_key: str
    scope: str
    period: str
    period_start: datetime
    period_end: datetime
    limit_usd: float
    used_usd: float
    forecast_usd: float
    forecast_low_usd: float
    forecast_high_usd: float
    exhaustion_ts: datetime | None
    learning: bool


SNAPSHOT_COLUMNS: tuple[str, ...] = SnapshotRow.__struct_fields__

_encode = msgspec.json.Encoder().encode


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def snapshot_records(outlooks: Outlooks, keep: Callable[[Budget], bool], *, every: bool = True,
                     closing_within_s: float = 0.0, max_bytes: int = 1_000_000) -> list[bytes]:
    """Records (NDJSON of ``budget_snapshots`` rows, each under ``max_bytes`` unless one row
    alone is larger) of the outlooks of the budgets ``keep`` says yes to: of all of them
    (``every``, a snapshot tick), else only of calendar budgets whose period ends within
    ``closing_within_s`` (the period's closing figures, which forecast accuracy is measured
    against)."""
    return pack_lines(_lines(outlooks, keep, every, closing_within_s), max_bytes)


def _lines(outlooks: Outlooks, keep: Callable[[Budget], bool], every: bool,
           closing_within_s: float) -> Iterator[bytes]:
    for part in outlooks.parts():
        at = _utc(part.now)
        closing = (part.end - part.now <= closing_within_s) & (part.end >= part.now)
        for i, budget in enumerate(part.budgets):
            if not (every or (closing[i] and budget.period not in ROLLING)) or not keep(budget):
                continue
            exhaustion = float(part.exhaustion[i])
            yield _encode(SnapshotRow(
                at, budget.key, budget.scope, budget.period, _utc(float(part.start[i])),
                _utc(float(part.end[i])), budget.limit_usd, round(float(part.used[i]), 9),
                round(float(part.period_end_spend[i]), 9), round(float(part.low[i]), 9),
                round(float(part.high[i]), 9),
                None if exhaustion != exhaustion else _utc(exhaustion),
                bool(part.learning[i]))) + b"\n"


class SnapshotClock:
    """Says when a snapshot is due: at the first tick in each ``interval_s`` of wall time
    (aligned to the epoch, so hourly snapshots come on the hour); 0 or less: never.

    >>> clock = SnapshotClock(3600.0)
    >>> [clock.due(t) for t in (7100.0, 7199.0, 7200.0, 7260.0, 10800.5)]
    [True, False, True, False, True]
    """

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._last: int | None = None

    def due(self, now: float) -> bool:
        if self.interval_s <= 0:
            return False
        slot = int(now // self.interval_s)
        if slot == self._last:
            return False
        self._last = slot
        return True
