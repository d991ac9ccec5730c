"""NDJSON rows packed into Kafka records of at most a given size (the sink inserts a record's
rows as they are, ClickHouse's ``JSONEachRow``).

>>> pack_lines([b'{"a":1}\\n', b'{"a":2}\\n', b'{"a":3}\\n'], max_bytes=16)
[b'{"a":1}\\n{"a":2}\\n', b'{"a":3}\\n']
>>> pack_lines([b'{"a":"a long row"}\\n'], max_bytes=4)   # a row alone is never cut
[b'{"a":"a long row"}\\n']
>>> row_count(b'{"a":1}\\n{"a":2}\\n'), row_count(b'{"a":1}'), row_count(b"")
(2, 1, 0)
>>> row_count(b'["a"]\\n[1]\\n[2]\\n')   # a line of names first (JSONCompactEachRowWithNames)
2
>>> names_line(b'["a"]\\n[1]\\n'), names_line(b'{"a":1}\\n')
(b'["a"]', None)
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["names_line", "pack_lines", "row_count"]


def pack_lines(lines: Iterable[bytes], max_bytes: int) -> list[bytes]:
    """Records of whole ``lines`` (each ending in a newline), in order, each under
    ``max_bytes`` unless one line alone is larger (then it is a record of its own)."""
    records: list[bytes] = []
    held: list[bytes] = []
    size = 0
    for line in lines:
        if held and size + len(line) > max_bytes:
            records.append(b"".join(held))
            held, size = [], 0
        held.append(line)
        size += len(line)
    if held:
        records.append(b"".join(held))
    return records


def row_count(record: bytes) -> int:
    """How many rows a record holds (its lines, less a first line of column names: a record
    of JSON arrays, whose rows are objects otherwise)."""
    if not record:
        return 0
    lines = record.count(b"\n") + (not record.endswith(b"\n"))
    return lines - 1 if names_line(record) is not None else lines


def names_line(record: bytes) -> bytes | None:
    """The first line of a record of JSON arrays, which names their columns
    (``JSONCompactEachRowWithNames``); None for a record of JSON objects."""
    return record.partition(b"\n")[0] if record[:1] == b"[" else None
