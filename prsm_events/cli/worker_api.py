"""The running worker's HTTP API, as the CLI reads it (bearer token included)."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from prsm_events.errors import PrsmError
from prsm_events.reports import ReportOptions, ReportResult, report_named, run_report
from prsm_events.settings import Settings

__all__ = ["fetch_report", "get_json"]


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


def fetch_report(s: Settings, name: str, options: Mapping[str, str | None]) -> ReportResult:
    """Report ``name`` (``prsm_events.reports``) for ``options`` (strings, as on the command
    line): through the worker's API when the store is embedded (the worker that runs the sink
    owns it), else straight from the ClickHouse server."""
    given = {k: v for k, v in options.items() if v not in (None, "")}
    if s.embedded_clickhouse:
        ReportOptions.parse(given, report_named(name).takes)  # refused here, as by the worker
        body = get_json(s, f"/reports/{name}?{urllib.parse.urlencode(given)}", why=(
            "the embedded ClickHouse store is owned by the worker: start `prsm worker`, or set "
            "PRSM_CLICKHOUSE_DSN to a server"))
        return ReportResult.of_json(body)
    from prsm_events.store.clickhouse import ClickHouseStore

    store = ClickHouseStore(s.clickhouse_dsn.get_secret_value(), s.clickhouse_database)
    try:
        return run_report(name, given, datetime.now(UTC), store.query)
    finally:
        store.close()
