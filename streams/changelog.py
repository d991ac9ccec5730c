"""Persist changed table rows to their changelog topics, in order.

Agents and timers change rows synchronously in memory and mark them here; ``flush`` sends
each marked row's value *as it is at flush time* (a tombstone for a deleted row). Flushes
never interleave, so the last record of a key in its changelog is always its latest value,
whichever agent changed it last. The lock covers handing the records to the producer, which
keeps them in order per partition; the wait for the broker is outside it, so that one flush
(a decision batch's) never waits for another's round trip.

A row whose record the producer could not deliver is marked again, so the next flush sends
it: a batch retried after a failed write finds its rows already changed in memory (and
changes nothing more), yet their records still reach the changelog.

Records are handed only while no rebalance is under way (``streams.fencing``): a flush
during one raises ``Fenced`` and keeps the rows marked; the next flush, in a steady group,
drops the marks of partitions this worker no longer owns (their new owner restored them
from the changelog and writes them now) and sends the rest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import Any

import faust
from faust.types import TableT

from streams.faust_compat import TableRows, changelog_send, steady, table_store

__all__ = ["ChangelogWriter"]

_Marked = dict[tuple[str, str], tuple[TableT[str, Any], int]]


class ChangelogWriter:
    def __init__(self, app: faust.App,
                 owned: Callable[[], frozenset[int]] | None = None) -> None:
        self.app = app
        self.owned = owned
        """The partitions this worker owns now (None: every one, a process alone)."""
        self.pending: _Marked = {}
        self.lock = asyncio.Lock()
        self.in_flight: set[asyncio.Future[Any]] = set()
        """Deliveries handed to the producer and not yet done (``delivered``)."""

    def mark(self, table: TableT[str, Any], keys: dict[str, int]) -> None:
        """Mark ``keys`` (key -> changelog partition) of ``table`` as changed."""
        name = table.name
        for key, partition in keys.items():
            self.pending[(name, key)] = (table, partition)

    async def flush(self, wait: bool = True) -> list[Any]:
        """Send the marked rows; with ``wait``, return once the broker has them all.

        Returns the delivery futures (already done when ``wait``).
        """
        async with self.lock:
            if self.owned is not None and self.pending and steady(self.app):
                owned = self.owned()  # another's now: its owner restored and writes them
                self.pending = {k: m for k, m in self.pending.items() if m[1] in owned}
            pending, self.pending = self.pending, {}
            by_table: dict[str, tuple[TableT[str, Any], TableRows]] = {}
            for (name, key), (table, partition) in pending.items():
                rows = by_table.setdefault(name, (table, {}))[1]
                rows[key] = (partition, table_store(table).get(key))  # its value now
            try:
                futures = await changelog_send(self.app, list(by_table.values()))
            except BaseException:
                for name_key, marked in pending.items():
                    self._mark_again(name_key, marked)
                raise
            # changelog_send returns one future per row, in the order of by_table's rows;
            # the rows of one record batch share its future: one callback per batch
            sent = [(name, key) for name, (_, rows) in by_table.items() for key in rows]
            batches: dict[int, tuple[Any, list[tuple[str, str]]]] = {}
            for future, name_key in zip(futures, sent, strict=True):
                batches.setdefault(id(future), (future, []))[1].append(name_key)
            for future, name_keys in batches.values():
                future.add_done_callback(partial(self._undelivered, name_keys, pending))
                self.in_flight.add(future)
                future.add_done_callback(self.in_flight.discard)
        # the records are queued in order: another flush need not wait for these to arrive
        if futures and wait:
            await asyncio.gather(*futures)
        return futures

    async def delivered(self) -> None:
        """Return once every record handed so far is with the broker; raise if one was
        not. A row marked by one caller may be sent by another's flush (whichever takes
        the lock first): this waits for those too."""
        if self.in_flight:
            await asyncio.gather(*list(self.in_flight))

    def _mark_again(self, name_key: tuple[str, str], marked: tuple[TableT[str, Any], int]
                    ) -> None:
        self.pending.setdefault(name_key, marked)  # unless marked again meanwhile

    def _undelivered(self, name_keys: list[tuple[str, str]], pending: _Marked,
                     future: asyncio.Future[Any]) -> None:
        if future.cancelled() or future.exception() is not None:
            for name_key in name_keys:
                self._mark_again(name_key, pending[name_key])
