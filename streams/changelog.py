"""Persist changed table rows to their changelog topics, in order.

Agents and timers change rows synchronously in memory and mark them here; ``flush`` sends
each marked row's value *as it is at flush time* (a tombstone for a deleted row). Flushes
never interleave, so the last record of a key in its changelog is always its latest value,
whichever agent changed it last.
"""

from __future__ import annotations

import asyncio
from typing import Any

import faust
from faust.types import TableT

from streams.faust_compat import TableRows, changelog_send, table_store

__all__ = ["ChangelogWriter"]


class ChangelogWriter:
    def __init__(self, app: faust.App) -> None:
        self.app = app
        self.pending: dict[tuple[str, str], tuple[TableT[str, Any], int]] = {}
        self.lock = asyncio.Lock()

    def mark(self, table: TableT[str, Any], keys: dict[str, int]) -> None:
        """Mark ``keys`` (key -> changelog partition) of ``table`` as changed."""
        for key, partition in keys.items():
            self.pending[(table.name, key)] = (table, partition)

    async def flush(self, wait: bool = True) -> list[Any]:
        """Send the marked rows; with ``wait``, return once the broker has them all.

        Returns the delivery futures (already done when ``wait``).
        """
        async with self.lock:
            pending, self.pending = self.pending, {}
            by_table: dict[str, tuple[TableT[str, Any], TableRows]] = {}
            for (name, key), (table, partition) in pending.items():
                rows = by_table.setdefault(name, (table, {}))[1]
                rows[key] = (partition, table_store(table).get(key))  # its value now
            futures = await changelog_send(self.app, list(by_table.values()))
            if futures and wait:
                await asyncio.gather(*futures)
            return futures
