"""A read-only mapping by key over the rows of columns: a key's value is built from its row
when it is asked for (a tick over a million budgets builds only the few it needs).

>>> squares = RowsByKey(lambda row: row * row)
>>> squares.index(["a", "b", "c"])
>>> squares["c"], list(squares), "d" in squares, squares.row("b")
(4, ['a', 'b', 'c'], False, 1)
>>> squares.map(str)["b"]
'1'
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Generic, TypeVar

from prsm_events.scoring.batch import GIL_SLICE

__all__ = ["RowsByKey"]

V = TypeVar("V")
W = TypeVar("W")


class RowsByKey(Mapping[str, V], Generic[V]):
    def __init__(self, build: Callable[[int], V],
                 rows: dict[str, int] | None = None) -> None:
        self._build = build
        self._rows: dict[str, int] = {} if rows is None else rows

    def index(self, keys: Sequence[str], first: int = 0) -> None:
        """Rows ``first``, ``first + 1``, ... are ``keys``' (indexed ``GIL_SLICE`` at a time:
        built beside the event loop, which runs in between)."""
        for lo in range(0, len(keys), GIL_SLICE):
            self._rows.update(zip(keys[lo:lo + GIL_SLICE], range(first + lo, first + len(keys)),
                                  strict=False))

    def row(self, key: str) -> int | None:
        return self._rows.get(key)

    def map(self, fn: Callable[[V], W]) -> RowsByKey[W]:
        """The same keys, each value ``fn`` of this one's (built when asked for too)."""
        return RowsByKey(lambda row: fn(self._build(row)), self._rows)

    def __getitem__(self, key: str) -> V:
        return self._build(self._rows[key])

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, key: object) -> bool:
        return key in self._rows
