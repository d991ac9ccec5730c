"""The running workers' HTTP API, as the CLI reads it (bearer token included): the configured
worker, and through it every worker of its group."""

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

__all__ = ["fetch_report", "group_get", "sink_worker"]


def group_get(s: Settings, path: str, *, why: str, wait_s: float = 30.0,
              pause_s: float = 0.5) -> list[dict[str, Any]]:
    """``path`` (an endpoint that names its partitions and consumer generation: ``/budgets``,
    ``/spend``) asked of every worker of the group (``GET /group`` of the configured one
    lists them, each at the URL its HTTP API advertises, with the partitions it owns: all
    the group's between them). Asked again, for up to ``wait_s``, until the answers are one
    view of the group (``operations.group_views``); PrsmError saying why when they never
    are, or naming a worker's other answer."""
    deadline = time.monotonic() + wait_s
    while True:
        group, problem = _group(s, why=why)
        if group is not None:
            answers = [_answer(s, path, url, why=why) for url in group]
            not_whole = why_not_whole(answers, len({p for parts in group.values()
                                                    for p in parts}))
            if not_whole is None:
                return answers
            problem = not_whole
        if time.monotonic() > deadline:
            raise PrsmError(f"no whole answer from the workers of the group in {wait_s:g} s: "
                            f"{problem}")
        time.sleep(pause_s)


def sink_worker(s: Settings, *, why: str, wait_s: float = 30.0, pause_s: float = 0.5) -> str:
    """The URL of the worker of the group that runs the ClickHouse sink (PRSM_SINK=worker),
    asked for up to ``wait_s`` (it may be restarting, or the group rebalancing)."""
    deadline = time.monotonic() + wait_s
    while True:
        group, problem = _group(s, why=why)
        for url in group or ():
            if _answer(s, "/group", url, why=why).get("sink") is True:
                return url
        if group is not None:
            problem = (f"none of the workers of the group ({', '.join(group)}) runs the "
                       f"ClickHouse sink (PRSM_SINK=worker)")
        if time.monotonic() > deadline:
            raise PrsmError(f"{problem} (asked for {wait_s:g} s)")
        time.sleep(pause_s)


def _group(s: Settings, *, why: str) -> tuple[dict[str, list[int]] | None, str]:
    """The workers of the group, each at its URL with its partitions, as the configured
    worker knows them; None and why while it cannot say (rebalancing)."""
    group = _answer(s, "/group", None, why=why)
    if "workers" not in group:
        return None, _text(group)
    return {str(w["url"]): [int(p) for p in w["partitions"]] for w in group["workers"]}, ""


def _answer(s: Settings, path: str, base: str | None, *, why: str) -> dict[str, Any]:
    """The answer to a GET of ``path`` on the worker (at ``base``: another of the group): its
    body, a 503's (rebalancing) included; PrsmError for another refusal."""
    status, body = _request(s, path, base, why=why)
    if status not in (200, 503):
        raise PrsmError(f"worker at {base or s.web_url} answered {status}: {_text(body)}")
    return body if isinstance(body, dict) else {"error": _text(body)}


def _request(s: Settings, path: str, base: str | None, *, why: str) -> tuple[int, Any]:
    """The status and body (JSON, or the text of an answer that is not) of a GET of ``path``
    on the worker (at ``base``: another of the group, whose silence is an answer: no
    worker of the group answers there)."""
    where = base or s.web_url
    try:
        with urllib.request.urlopen(s.web_request(path, base), timeout=30) as resp:
            return 200, orjson.loads(resp.read())
    except urllib.error.HTTPError as exc:
        text = exc.read()
        try:
            return exc.code, orjson.loads(text)
        except orjson.JSONDecodeError:
            return exc.code, text.decode(errors="replace")
    except OSError as exc:
        if base is None:
            raise PrsmError(f"no worker at {where} ({exc}); {why}") from None
        return 503, {"error": f"the worker of the group at {where} does not answer ({exc})"}


def _text(body: Any) -> str:
    """What an answer says: its error, or itself."""
    if isinstance(body, dict) and "error" in body:
        return str(body["error"])
    return body if isinstance(body, str) else orjson.dumps(body).decode()


def fetch_report(s: Settings, name: str, options: Mapping[str, str | None]) -> ReportResult:
    """Report ``name`` (``prsm_events.reports``) for ``options`` (strings, as on the command
    line): through the worker's API when the store is embedded (the worker that runs the sink
    owns it), else straight from the ClickHouse server."""
    given = {k: v for k, v in options.items() if v not in (None, "")}
    if s.embedded_clickhouse:
        ReportOptions.parse(given, report_named(name).takes)  # refused here, as by the worker
        path = f"/reports/{name}?{urllib.parse.urlencode(given)}"
        why = ("the embedded ClickHouse store is owned by the worker: start `prsm worker`, or "
               "set PRSM_CLICKHOUSE_DSN to a server")
        status, body = _request(s, path, None, why=why)
        if status == 409:  # PRSM_SINK=off: the worker of the group that runs the sink
            status, body = _request(s, path, sink_worker(s, why=why), why=why)
        if status != 200:
            raise PrsmError(f"worker answered {status}: {_text(body)}")
        return ReportResult.of_json(body)
    from prsm_events.store.clickhouse import ClickHouseStore

    store = ClickHouseStore(s.clickhouse_dsn.get_secret_value(), s.clickhouse_database)
    try:
        return run_report(name, given, datetime.now(UTC), store.query)
    finally:
        store.close()
