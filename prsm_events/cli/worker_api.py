"""The running worker's HTTP API, as the CLI reads it (bearer token included)."""

from __future__ import annotations

import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from prsm_events.errors import PrsmError
from prsm_events.operations.group_views import why_not_whole
from prsm_events.reports import ReportOptions, ReportResult, report_named, run_report
from prsm_events.settings import Settings

__all__ = ["fetch_report", "get_json", "group_get"]


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


def group_get(s: Settings, path: str, *, why: str, wait_s: float = 30.0,
              pause_s: float = 0.5) -> list[dict[str, Any]]:
    """``path`` (an endpoint that names its partitions and consumer generation: ``/budgets``,
    ``/spend``) asked of every worker of the group: the workers the configured one lists in
    its answer, each at the URL its HTTP API advertises. Asked again, for up to ``wait_s``,
    until the answers are one view of the group (``operations.group_views``); PrsmError
    saying why when they never are, or naming a worker's other answer."""
    deadline = time.monotonic() + wait_s
    while True:
        problem = None
        first = _get_answer(s, path, None, why=why)
        if "workers" not in first:
            problem = str(first.get("error") or first)
        else:
            answers = [_get_answer(s, path, str(w["url"]), why=why) for w in first["workers"]]
            problem = why_not_whole(answers, s.partitions)
            if problem is None:
                return answers
        if time.monotonic() > deadline:
            raise PrsmError(f"no whole answer from the workers of the group in {wait_s:g} s: "
                            f"{problem}")
        time.sleep(pause_s)


def _get_answer(s: Settings, path: str, base: str | None, *, why: str) -> dict[str, Any]:
    """GET ``path`` on the worker (at ``base``: another of the group); a 503 (rebalancing)
    returns its body."""
    where = base or s.web_url
    try:
        with urllib.request.urlopen(s.web_request(path, base), timeout=30) as resp:
            body: dict[str, Any] = orjson.loads(resp.read())
            return body
    except urllib.error.HTTPError as exc:
        text = exc.read()
        if exc.code == 503:
            try:
                answer: dict[str, Any] = orjson.loads(text)
            except orjson.JSONDecodeError:
                return {"error": f"worker at {where} answered 503: "
                                 f"{text.decode(errors='replace')}"}
            return answer
        raise PrsmError(f"worker at {where} answered {exc.code}: "
                        f"{text.decode(errors='replace')}") from None
    except OSError as exc:
        if base is None:
            raise PrsmError(f"no worker at {where} ({exc}); {why}") from None
        return {"error": f"the worker of the group at {where} does not answer ({exc})"}


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
