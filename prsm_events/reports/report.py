"""What every report is: a name, the options it takes, its SQL, and what it adds to the rows.

A report's rows come from ClickHouse as tuples in ``ReportQuery.columns`` order; ``records``
turns them into dicts of plain values (money as float: a ``Decimal(38, 9)`` of less than
10^7 USD reads back as the same float), and ``finish`` adds what the SQL does not compute
(shares, changes in percent).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from prsm_events.reports.options import ReportOptions
from prsm_events.reports.query import ReportQuery

__all__ = ["Report", "records_of"]


@dataclass(frozen=True)
class Report:
    name: str
    summary: str
    takes: frozenset[str]
    """The options it takes (``reports.options.OPTION_NAMES``)."""
    build: Callable[[ReportOptions, datetime], ReportQuery]
    """Its query for the options, at a time ``now`` (for default ranges)."""
    finish: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None
    extra_columns: tuple[str, ...] = ()
    """Columns ``finish`` adds."""
    measure: str | None = None
    """The column a picture plots over time (None: no picture)."""
    series: Callable[[ReportOptions], tuple[str, ...]] | None = None
    """The columns naming one line of the picture."""

    def columns(self, query: ReportQuery) -> tuple[str, ...]:
        return query.columns + self.extra_columns


def records_of(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    """Rows as dicts of JSON-ready values (Decimal -> float, times -> ISO 8601 in UTC).

    >>> records_of(["period", "cost_usd"], [(datetime(2026, 1, 1, tzinfo=UTC), Decimal("0.3"))])
    [{'period': '2026-01-01T00:00:00+00:00', 'cost_usd': 0.3}]
    """
    return [{c: _plain(v) for c, v in zip(columns, row, strict=True)} for row in rows]


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):  # the tables' times are UTC; the driver may drop the zone
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value
