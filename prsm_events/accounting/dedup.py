"""Which event_ids the worker accepted, where and when: the memory behind de-duplication.

The table behind it holds one row per (partition, batch) of newly accepted events, not one
per event: a batch of 2,000 messages writes one changelog record instead of 2,000. Rows are
cut to stay under a record size. :class:`SeenIndex` keeps the by-event_id view in memory,
updated as batches are accepted and rebuilt from the table's rows after a table recovery.

A row's key is ``"seen P:O:I"``, the place of its first event (partition, offset, index in a
batch envelope); an event_id has no space, so it can never be such a key. Its value is
``[P, [[event_id, offset, ts(, index)], ...]]``. Rows of one event each (key: the event_id,
value ``[P, O, ts(, index)]``), as written before, are read too and expire the same way.

>>> index = SeenIndex(max_row_bytes=64 * 1024)
>>> rows = index.accept({"a": SeenEvent(0, 5, 100.0), "b": SeenEvent(0, 6, 160.0, 2)})
>>> rows
{'seen 0:5:0': (0, (0, [('a', 5, 100.0), ('b', 6, 160.0, 2)]))}
>>> index.get("b")
SeenEvent(partition=0, offset=6, ts=160.0, index=2)
>>> index.expire(rows_of(rows), horizon=150.0)  # the row's newest event is still remembered
[]
>>> index.expire(rows_of(rows), horizon=200.0), index.get("a")
([('seen 0:5:0', 0)], None)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import msgspec

__all__ = ["SeenEvent", "SeenIndex", "rows_of"]

ROW_PREFIX = "seen "
ENTRY_OVERHEAD_BYTES = 48
"""The JSON around one entry beside its event_id: brackets, quotes, offset, ts, index."""


class SeenEvent(msgspec.Struct, frozen=True, gc=False):
    """Where an event_id was first accepted (message, and place in it when the message is a
    batch), and when (epoch seconds of its ts). Not tracked by Python's collector (it holds
    numbers only): an index of millions of ids would otherwise make every full collection
    walk them."""

    partition: int
    offset: int
    ts: float
    index: int = 0

    def to_list(self) -> list[float | int]:
        if self.index:
            return [self.partition, self.offset, self.ts, self.index]
        return [self.partition, self.offset, self.ts]

    @classmethod
    def from_list(cls, raw: list[float | int]) -> SeenEvent:
        return cls(int(raw[0]), int(raw[1]), float(raw[2]), int(raw[3]) if len(raw) > 3 else 0)

    def is_same_event(self, partition: int, offset: int, index: int) -> bool:
        """True when this is where the event was first accepted (a re-delivery of it)."""
        return self.partition == partition and self.offset == offset and self.index == index


def _events(key: str, value: Any) -> Iterable[tuple[str, SeenEvent]]:
    """The (event_id, SeenEvent) pairs of a table row of either form."""
    if key.startswith(ROW_PREFIX):
        partition = int(value[0])
        for entry in value[1]:
            yield str(entry[0]), SeenEvent(partition, int(entry[1]), float(entry[2]),
                                           int(entry[3]) if len(entry) > 3 else 0)
    else:
        yield key, SeenEvent.from_list(value)


def rows_of(rows: Mapping[str, tuple[int, Any]]) -> list[tuple[str, Any]]:
    """Table rows as a store holds them (key, value), from ``accept``'s (partition, value)."""
    return [(key, value) for key, (_, value) in rows.items()]


class SeenIndex:
    """The accepted event_ids by id, and the table rows that remember them."""

    def __init__(self, max_row_bytes: int) -> None:
        self.max_row_bytes = max_row_bytes
        self.events: dict[str, SeenEvent] = {}
        self.get: Callable[[str], SeenEvent | None] = self.events.get
        """Where an event_id was first accepted, or None: the dict's own lookup, since the
        ingest step asks once an event."""

    def __len__(self) -> int:
        return len(self.events)

    def rebuild(self, rows: Iterable[tuple[str, Any]]) -> None:
        """Read the index again from the table's rows (after a recovery restored them)."""
        events: dict[str, SeenEvent] = {}
        for key, value in rows:
            if value is None:
                continue
            for event_id, seen in _events(key, value):
                first = events.get(event_id)
                if first is None or (seen.ts, seen.partition, seen.offset) < (
                        first.ts, first.partition, first.offset):
                    events[event_id] = seen
        self.events.clear()  # (the same dict: ``get`` is its lookup)
        self.events.update(events)

    def accept(self, new: Mapping[str, SeenEvent]) -> dict[str, tuple[int, Any]]:
        """Remember newly accepted events; return the table rows that store them (key ->
        (partition, value)), one per partition unless a row would pass ``max_row_bytes``."""
        by_partition: dict[int, list[tuple[str, SeenEvent]]] = {}
        unordered: set[int] = set()  # partitions whose events came out of (offset, index) order
        last: dict[int, tuple[int, int]] = {}
        self.events.update(new)
        for event_id, seen in new.items():
            partition, place = seen.partition, (seen.offset, seen.index)
            pairs = by_partition.get(partition)
            if pairs is None:
                pairs = by_partition[partition] = []
            elif place < last[partition]:
                unordered.add(partition)
            last[partition] = place
            pairs.append((event_id, seen))
        rows: dict[str, tuple[int, Any]] = {}
        for partition, pairs in by_partition.items():
            if partition in unordered:
                pairs.sort(key=lambda pair: (pair[1].offset, pair[1].index))
            entries: list[tuple[Any, ...]] = []
            size = 0
            for event_id, seen in pairs:
                grow = len(event_id) + ENTRY_OVERHEAD_BYTES
                if entries and size + grow > self.max_row_bytes:
                    rows[self._key(partition, entries[0])] = (partition, (partition, entries))
                    entries, size = [], 0
                entries.append((event_id, seen.offset, seen.ts, seen.index) if seen.index
                               else (event_id, seen.offset, seen.ts))
                size += grow
            if entries:
                rows[self._key(partition, entries[0])] = (partition, (partition, entries))
        return rows

    @staticmethod
    def _key(partition: int, first: tuple[Any, ...]) -> str:
        index = first[3] if len(first) > 3 else 0
        return f"{ROW_PREFIX}{partition}:{first[1]}:{index}"

    def expire(self, rows: Iterable[tuple[str, Any]], horizon: float
               ) -> list[tuple[str, int]]:
        """The rows (key, partition) whose every event is older than ``horizon`` (epoch s);
        their events leave the index (an event_id seen again since keeps its newer entry)."""
        doomed: list[tuple[str, int]] = []
        for key, value in rows:
            if value is None:
                continue
            events = list(_events(key, value))
            if events and max(seen.ts for _, seen in events) >= horizon:
                continue
            doomed.append((key, events[0][1].partition if events else int(value[0])))
            for event_id, seen in events:
                if self.events.get(event_id) == seen:
                    del self.events[event_id]
        return doomed
