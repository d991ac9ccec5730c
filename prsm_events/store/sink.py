"""The ClickHouse sink's write: a batch of records of rows into one table (``prsm.accepted``
records into ``usage``; decisions and alerts, as rows, into theirs). A record is NDJSON: JSON
objects, or a line of column names and then a JSON array of values per row.

The sink's runner (``streams.store_sink``) owns batching, flush timing and offsets; ``write``
only inserts, and raises ``StoreUnavailable`` to signal back-pressure (the runner retries the
same batch with backoff and commits nothing meanwhile). A record that ClickHouse refuses while it
answers (not rows of the table: someone else wrote to the topic) cannot hold the batch up:
it is returned, and the runner dead-letters it with the reason. Inserts are idempotent
(ReplacingMergeTree, ``store.clickhouse``), so a batch written twice counts once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from prsm_events.errors import StoreUnavailable
from prsm_events.store.ndjson_records import names_line

__all__ = ["ClickHouseSink", "Refused", "RowStore"]


class RowStore(Protocol):
    def insert_json(self, table: str, rows: bytes) -> None: ...

    def ping(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Refused:
    index: int
    """The record's place in the batch given to ``write``."""
    reason: str


class ClickHouseSink:
    """Insert batches of records into ``table``; one insert per batch while every record is
    good.

    >>> class Store:
    ...     rows: list[bytes] = []
    ...     def insert_json(self, table: str, rows: bytes) -> None:
    ...         if b"bad" in rows:
    ...             raise StoreUnavailable("cannot parse")
    ...         self.rows.append(rows)
    ...     def ping(self) -> bool:
    ...         return True
    >>> store = Store()
    >>> ClickHouseSink(store).write([b'{"a":1}\\n', b"bad", b'{"a":2}'])
    [Refused(index=1, reason='cannot parse')]
    >>> store.rows
    [b'{"a":1}\\n', b'{"a":2}\\n']
    """

    def __init__(self, store: RowStore, table: str = "usage") -> None:
        self.store = store
        self.table = table

    def write(self, records: Sequence[bytes]) -> list[Refused]:
        """Insert every record's rows; return the records refused while ClickHouse answers.
        Records of JSON objects go in one insert; records that begin with a line of column
        names, in one insert per such line (one line of names over all their rows).

        Raises StoreUnavailable when ClickHouse does not answer: nothing is known to be
        written, and the whole batch must be written again."""
        refused: list[Refused] = []
        for block, indexes in _blocks(records):
            try:
                self.store.insert_json(self.table, block)
            except StoreUnavailable:
                if not self.store.ping():
                    raise
                refused += self._one_by_one(records, indexes)
        return refused

    def _one_by_one(self, records: Sequence[bytes], indexes: list[int]) -> list[Refused]:
        """Some record is refused: insert each alone, to find which."""
        refused = []
        for index in indexes:
            try:
                self.store.insert_json(self.table, _ended(records[index]))
            except StoreUnavailable as exc:
                if not self.store.ping():
                    raise
                refused.append(Refused(index, str(exc)))
        return refused


def _blocks(records: Sequence[bytes]) -> list[tuple[bytes, list[int]]]:
    """The records joined into blocks to insert, each with the places of its records: those
    of objects in one, those of arrays in one per line of names (each without its own)."""
    objects: list[int] = []
    named: dict[bytes, list[int]] = {}
    for index, record in enumerate(records):
        if not record.strip():
            continue
        names = names_line(record)
        if names is None:
            objects.append(index)
        else:
            named.setdefault(names, []).append(index)
    blocks = []
    if objects:
        blocks.append((b"".join(_ended(records[i]) for i in objects), objects))
    for names, indexes in named.items():
        rows = [records[i].partition(b"\n")[2] for i in indexes]
        blocks.append((names + b"\n" + b"".join(_ended(r) for r in rows if r), indexes))
    return blocks


def _ended(record: bytes) -> bytes:
    """The record with its last row ended, so that records join into one NDJSON block."""
    return record if record.endswith(b"\n") else record + b"\n"
