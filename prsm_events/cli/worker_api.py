"""The running worker's HTTP API, as the CLI reads it (bearer token included)."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson

from prsm_events.errors import PrsmError
from prsm_events.settings import Settings
from prsm_events.store.reports import (
    DecisionsReport,
    SpendReport,
    decisions_query,
    spend_query,
)

__all__ = ["fetch_decisions_report", "fetch_spend_report", "get_json"]


def get_json(s: Settings, path: str, *, why: str) -> Any:
    """GET ``path`` on the worker; PrsmError naming the worker's answer, or saying that no
    worker answers and ``why`` one is needed."""
    try:
        with urllib.request.urlopen(s.web_request(path), timeout=30) as resp:
            return orjson.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise PrsmError(f"worker answered {exc.code}: {exc.read().decode(errors='replace')}"
                        ) from None
    except OSError as exc:
        raise PrsmError(f"no worker at {s.web_url} ({exc}); {why}") from None


def fetch_spend_report(s: Settings, by: str, since: datetime | None) -> SpendReport:
    """Rows of the spend report: via the worker's API (embedded store) or the server."""
    query = {"by": by} | ({"since": since.isoformat()} if since else {})
    rows = _report_rows(s, "spend", query, lambda: spend_query(by, since))
    return SpendReport(by, rows)


def fetch_decisions_report(s: Settings, since: datetime | None) -> DecisionsReport:
    """Rows of the decisions report: via the worker's API (embedded store) or the server."""
    query = {"since": since.isoformat()} if since else {}
    return DecisionsReport(_report_rows(s, "decisions", query, lambda: decisions_query(since)))


def _report_rows(s: Settings, name: str, query: dict[str, str],
                 sql: Callable[[], tuple[str, dict[str, Any]]]) -> list[tuple[Any, ...]]:
    if s.embedded_clickhouse:
        body = get_json(s, f"/reports/{name}?{urllib.parse.urlencode(query)}", why=(
            "the embedded ClickHouse store is owned by the worker: start `prsm worker`, or set "
            "PRSM_CLICKHOUSE_DSN to a server"))
        keys = [k for k in body["rows"][0] if k != "share"] if body["rows"] else []
        return [tuple(r[k] for k in keys) for r in body["rows"]]
    from prsm_events.store.clickhouse import ClickHouseStore

    store = ClickHouseStore(s.clickhouse_dsn.get_secret_value(), s.clickhouse_database)
    text, params = sql()
    return store.query(text, params)
