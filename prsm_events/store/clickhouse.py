"""ClickHouse store, only through clickhouse-connect: embedded chDB (``chdb://``) or a server.

The store connects lazily and re-tries connecting on every call after a failure, so a worker
started while ClickHouse is away keeps running and catches up once it is back. Writes are
idempotent (ReplacingMergeTree: usage on ``(tenant, event_id)``, decisions on their place in
their topic, alerts on ``alert_id``), so a retried batch is never counted twice. Only the sink
writes (``store.sink``); rows come as NDJSON objects (``decision_rows``, ``alert_rows``) or
as a line of column names and a JSON array per row (``store.accepted_rows``).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import orjson

from prsm_events.errors import StoreUnavailable
from prsm_events.store.accepted_rows import AcceptedRow
from prsm_events.store.alert_rows import ALERT_COLUMNS
from prsm_events.store.decision_rows import DECISION_COLUMNS
from prsm_events.store.migrations import MIGRATIONS_TABLE, apply_migrations
from prsm_events.store.ndjson_records import names_line
from prsm_events.store.snapshot_rows import SNAPSHOT_COLUMNS

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

__all__ = ["TABLE_COLUMNS", "USAGE_COLUMNS", "ClickHouseStore"]

USAGE_COLUMNS: tuple[str, ...] = AcceptedRow.__struct_fields__
"""The ``usage`` table's columns in insert order: an accepted row's fields."""

TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "usage": USAGE_COLUMNS, "decisions": DECISION_COLUMNS, "alerts": ALERT_COLUMNS,
    "budget_snapshots": SNAPSHOT_COLUMNS}
"""The tables the sink writes, with their columns in insert order."""


_DDL_SETTINGS = {"mutations_sync": 2}  # a column's new type is whole when the ALTER returns
_JSON_INSERT_SETTINGS = {
    "date_time_input_format": "best_effort",  # RFC 3339 times, as the events carry them
    "input_format_skip_unknown_fields": 0,  # a field the table lacks is an error, not dropped
    # an insert is written as it comes: a ReplacingMergeTree collapses re-inserted rows when
    # it merges, and reports read with FINAL, so collapsing each block on insert as well
    # (and parsing it on several threads, on a worker's two cores) only cost the sink CPU
    "optimize_on_insert": 0,
    "input_format_parallel_parsing": 0,
}


def _named_columns(table: str, line: bytes) -> tuple[str, ...]:
    """The columns a line of names (``names_line``) names, each a column of ``table`` (they
    go into the INSERT statement: anything else is refused, as ClickHouse refuses rows)."""
    try:
        names = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise StoreUnavailable(f"rows of {table}: the first line is not JSON ({exc})") from None
    known = TABLE_COLUMNS[table]
    if (not isinstance(names, list) or not names or len(set(names)) != len(names)
            or not all(isinstance(n, str) and n in known for n in names)):
        raise StoreUnavailable(f"rows of {table}: the first line must name distinct columns "
                               f"of the table, not {str(names)[:200]}")
    return tuple(names)


class ClickHouseStore:
    """The tables' inserts and report queries, behind a lock (chDB is one session per
    process)."""

    def __init__(self, dsn: str, database: str = "prsm") -> None:
        self.dsn = dsn
        parsed = urlparse(dsn)
        path_db = parsed.path.strip("/") if parsed.scheme.startswith("http") else ""
        self.database = path_db or database
        self._client: Client | None = None
        self.migrated: list[int] = []
        """The migrations this store applied when it connected (``store.migrations``)."""
        self._lock = threading.Lock()

    @property
    def embedded(self) -> bool:
        return self.dsn.startswith("chdb:")

    def _connect(self) -> Client:
        if self._client is not None:
            return self._client
        import clickhouse_connect

        try:
            if self.embedded:
                path = self.dsn.removeprefix("chdb://")
                if path:
                    Path(path).mkdir(parents=True, exist_ok=True)
            client = clickhouse_connect.get_client(dsn=self.dsn)
            db = self.database
            self.migrated = apply_migrations(
                lambda sql: client.command(sql, settings=_DDL_SETTINGS),
                lambda: {int(r[0]) for r in client.query(
                    f"SELECT version FROM {db}.{MIGRATIONS_TABLE} FINAL").result_rows}, db)
        except Exception as exc:
            raise StoreUnavailable(f"cannot open ClickHouse ({self.redacted_dsn}): {exc}") from exc
        self._client = client
        return client

    @property
    def redacted_dsn(self) -> str:
        parsed = urlparse(self.dsn)
        if parsed.password:
            return self.dsn.replace(f":{parsed.password}@", ":***@")
        return self.dsn

    def ping(self) -> bool:
        """True when the store answers."""
        try:
            self.query("SELECT 1")
        except StoreUnavailable:
            return False
        return True

    def insert_json(self, table: str, rows: bytes) -> None:
        """Insert rows of ``table`` (one of ``TABLE_COLUMNS``) given as NDJSON objects
        (``JSONEachRow``: ``decision_rows``, ``alert_rows``, accepted records written before
        2026-12-05), or as a line of column names and then a JSON array of values per row
        (``JSONCompactEachRowWithNames``: ``store.accepted_rows``); raise StoreUnavailable
        when the insert fails (ClickHouse away, or rows it refuses)."""
        if not rows.strip():
            return
        columns, fmt = TABLE_COLUMNS[table], "JSONEachRow"
        names = names_line(rows)
        if names is not None:
            columns, fmt = _named_columns(table, names), "JSONCompactEachRowWithNames"
        with self._lock:
            client = self._connect()
            try:
                client.raw_insert(f"{self.database}.{table}", columns, rows,
                                  settings=_JSON_INSERT_SETTINGS, fmt=fmt)
            except Exception as exc:
                raise StoreUnavailable(f"insert of {len(rows)} bytes of rows failed: {exc}"
                                       ) from exc

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a read query; ``{db}`` in the SQL is replaced by the database name."""
        with self._lock:
            client = self._connect()
            try:
                result = client.query(sql.replace("{db}", self.database), parameters=parameters)
            except Exception as exc:
                raise StoreUnavailable(f"query failed: {exc}") from exc
            return [tuple(row) for row in result.result_rows]

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

