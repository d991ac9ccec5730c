"""The worker's HTTP API: health, stats, spend tables and reports from the ClickHouse store.

With PRSM_WEB_TOKEN set, every endpoint but ``/health`` needs ``Authorization: Bearer <token>``
(compared in constant time); without it, 401.

With the embedded chDB store only the process running the sink may open the data directory,
so the CLI's reports go through ``GET /reports/NAME`` (``prsm_events.reports``) of the worker
that runs it; a worker with PRSM_SINK=off does not open ClickHouse and answers 409 there.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import faust
from faust.types import TableT
from faust.web import Request, Response, View
from pydantic import SecretStr

from prsm_events.accounting.spend import SpendRow
from prsm_events.errors import StoreUnavailable
from prsm_events.operations.health import HealthFacts, verdict
from prsm_events.reports import REPORTS, ReportError, run_report
from prsm_events.settings import Settings
from streams.alert_delivery import AlertDelivery
from streams.config_feeds import ConfigFeeds
from streams.control import SpendControl
from streams.dead_letter_writer import DeadLetterWriter
from streams.faust_compat import steady, table_store
from streams.health_monitor import HealthMonitor
from streams.metrics import CONTENT_TYPE, MetricSources, WorkerMetrics
from streams.store_sink import StoreSink
from streams.usage_agent import IngestStats, IngestTables

__all__ = ["bearer_guard", "budgets_answer", "group_answer", "group_workers", "register_views",
           "spend_answer"]


def spend_answer(
    rows: Mapping[str, Any], scope: str | None, window: str | None,
    owned: frozenset[int] | None, generation: int,
) -> tuple[dict[str, Any], int]:
    """The body and status of ``GET /spend``: the rows (``rows``: the spend table's store) of
    the usage partitions this worker owns (``owned``) in consumer ``generation``, and those
    partitions. ``owned`` is None while a rebalance or a table recovery is under way: 503,
    since the store may then hold rows of partitions leaving, or rows half restored. (The
    store may also keep rows of partitions a rebalance moved to another worker, which that
    worker now counts: left out.)

    >>> row = SpendRow(2.5, 10, 100, 50, partition=1, offset=7).to_list()
    >>> body, status = spend_answer({"tenant:a|total|all": row}, "tenant:a", None,
    ...                             frozenset({1, 3}), 4)
    >>> status, body["partitions"], body["generation"], body["rows"][0]["cost_usd"]
    (200, [1, 3], 4, 2.5)
    >>> spend_answer({"tenant:a|total|all": row}, None, None, frozenset({3}), 4)[0]["rows"]
    []
    >>> spend_answer({}, None, None, None, 4)[1]
    503
    """
    if owned is None:
        return _rebalancing("their spend rows")
    out = []
    for key, raw in list(rows.items()):
        row_scope, row_window, start = key.rsplit("|", 2)
        if (scope and row_scope != scope) or (window and row_window != window):
            continue
        row = SpendRow.from_list(raw)
        if row.partition not in owned:
            continue
        out.append({"scope": row_scope, "window": row_window, "start": start,
                    "cost_usd": row.cost_usd, "events": row.events,
                    "input_tokens": row.input_tokens, "output_tokens": row.output_tokens})
    out.sort(key=lambda r: (r["scope"], r["window"], r["start"]))
    return {"rows": out, "partitions": sorted(owned), "generation": generation}, 200


def budgets_answer(
    figures: Callable[[], list[dict[str, Any]]], owned: frozenset[int] | None, generation: int,
) -> tuple[dict[str, Any], int]:
    """The body and status of ``GET /budgets``: the budgets this worker holds the figures of
    (``figures``, read only when it answers: ``SpendControl.budget_figures``), and the
    partitions it owns (``owned``) in consumer ``generation`` (``GET /group`` names the
    other workers, which hold the other tenants' budgets). ``owned`` is None while a
    rebalance or a table recovery is under way: 503, as ``GET /spend``.

    >>> body, status = budgets_answer(lambda: [{"key": "tenant:a|day"}], frozenset({0, 1}), 3)
    >>> status, body["budgets"][0]["key"], body["partitions"], body["generation"]
    (200, 'tenant:a|day', [0, 1], 3)
    >>> budgets_answer(lambda: [], None, 3)[1]
    503
    """
    if owned is None:
        return _rebalancing("their ledger rows")
    return {"budgets": figures(), "partitions": sorted(owned), "generation": generation}, 200


def group_answer(owned: frozenset[int] | None, generation: int, workers: list[dict[str, Any]],
                 sink: bool) -> tuple[dict[str, Any], int]:
    """The body and status of ``GET /group``: the partitions this worker owns (``owned``) in
    consumer ``generation``, every worker of the group in it with its partitions
    (``workers``), and whether this worker runs the ClickHouse sink (``sink``: reports of the
    embedded store come from it). 503 while a rebalance or a table recovery is under way.

    >>> group = [{"url": "http://127.0.0.1:6067", "partitions": [0, 1]}]
    >>> group_answer(frozenset({0, 1}), 3, group, True)
    ({'partitions': [0, 1], 'generation': 3, 'workers': [{'url': 'http://127.0.0.1:6067', \
'partitions': [0, 1]}], 'sink': True}, 200)
    >>> group_answer(None, 3, group, True)[1]
    503
    """
    if owned is None:
        return _rebalancing("their tables")
    return {"partitions": sorted(owned), "generation": generation, "workers": workers,
            "sink": sink}, 200


def _rebalancing(held: str) -> tuple[dict[str, Any], int]:
    """The 503 of an answer asked during a rebalance or a table recovery, naming what of the
    worker's partitions is being assigned or restored (``held``)."""
    return {"error": f"rebalancing: this worker's partitions and {held} are being assigned "
                     f"or restored; ask again shortly"}, 503


def group_workers(app: faust.App, table: TableT[Any, Any]) -> list[dict[str, Any]]:
    """Every worker of the group in the current assignment, by the URL its HTTP API
    advertises, with the partitions of ``table`` (co-partitioned with the per-tenant topics)
    it owns: Faust's assignor hands the whole map to each member."""
    topic = table.changelog_topic.get_topic_name()
    return sorted(({"url": url, "partitions": sorted(parts.get(topic, ()))}
                   for url, parts in app.assignor.table_metadata(topic).items()),
                  key=lambda w: str(w["url"]))


Handler = Callable[[View, Request], Awaitable[Response]]


def bearer_guard(token: SecretStr | None) -> Callable[[Handler], Handler]:
    """A decorator that answers 401 unless the request carries ``token`` (no-op for None)."""

    def guard(handler: Handler) -> Handler:
        if token is None:
            return handler
        expected = f"Bearer {token.get_secret_value()}".encode()

        @functools.wraps(handler)
        async def guarded(web: View, request: Request) -> Response:
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return web.json({"error": "missing or wrong bearer token (PRSM_WEB_TOKEN)"},
                                status=401, headers={"WWW-Authenticate": "Bearer"})
            return await handler(web, request)
        return guarded
    return guard


def takes(*names: str) -> Callable[[Handler], Handler]:
    """A decorator that answers 400 for a query parameter the endpoint does not take, or one
    given twice: nothing from a request reaches a query unchecked."""

    def check(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def checked(web: View, request: Request) -> Response:
            given = [name for name, _ in parse_qsl(request.query_string, keep_blank_values=True)]
            unknown = sorted(set(given) - set(names))
            repeated = sorted({n for n in given if given.count(n) > 1})
            if unknown or repeated:
                what = (f"unknown parameter(s) {', '.join(unknown)}" if unknown
                        else f"repeated parameter(s) {', '.join(repeated)}")
                return web.json({"error": f"{what}; this endpoint takes: "
                                          f"{', '.join(names) or 'none'}"}, status=400)
            return await handler(web, request)
        return checked
    return check


def register_views(
    app: faust.App,
    settings: Settings,
    sink: StoreSink | None,
    tables: IngestTables,
    stats: IngestStats,
    control: SpendControl,
    feeds: ConfigFeeds,
    monitor: HealthMonitor,
    dead_letters: DeadLetterWriter,
    delivery: AlertDelivery | None = None,
) -> None:
    guard = bearer_guard(settings.web_token)
    store = None if sink is None else sink.store  # only the process running the sink opens it

    def owned_now() -> frozenset[int] | None:
        """The partitions this worker owns, or None during a rebalance or a table recovery
        (``/spend``, ``/budgets`` and ``/group`` answer 503 then)."""
        return control.owned_partitions() if steady(app) else None

    def ready() -> bool:
        """Assigned, tables restored, budgets and catalog read (``/health``, ``/metrics``)."""
        return steady(app) and feeds.ready.is_set()

    @app.page("/health")
    @takes()
    async def health(web: View, request: Request) -> Response:
        """200 when ready and nothing is degraded, else 503; the body says what is wrong."""
        clickhouse_up = True if store is None else await asyncio.to_thread(store.ping)
        now, wall = time.monotonic(), time.time()
        is_ready = ready()
        blocked = None if sink is None else sink.stats.blocked_since
        facts = HealthFacts(
            ready=is_ready, broker_down_s=monitor.broker_down_s(now),
            sink_blocked_s=None if blocked is None else max(0.0, wall - blocked),
            clickhouse_up=clickhouse_up, stalls=monitor.stalls)
        status, problems = verdict(facts)
        return web.json({
            "status": status, "ready": is_ready, "problems": problems,
            "broker": "unreachable" if facts.broker_down_s is not None else "up",
            "clickhouse": "not used" if store is None else (
                "up" if clickhouse_up else "unavailable"),
            "sink": "off" if sink is None else ("blocked" if blocked is not None else "ok"),
            "stalled": [asdict(s) for s in monitor.stalls],
            "catalog": control.catalog.version, "budgets": len(control.book),
            "partitions": sorted(control.owned_partitions()) if is_ready else [],
        }, status=200 if status == "ok" else 503)

    @app.page("/stats")
    @guard
    @takes()
    async def stats_view(web: View, request: Request) -> Response:
        return web.json({**stats.as_dict(), "decisions": control.stats.as_dict(),
                         "sink": {"running": False} if sink is None else sink.stats.as_dict(),
                         "scoring": control.scoring,
                         "dead_letter_summaries": dead_letters.summaries,
                         "dead_letters_unwritable": dead_letters.unwritable,
                         "alert_delivery": None if delivery is None else delivery.stats.as_dict()})

    def health_gauges() -> dict[str, float]:
        return {"ready": float(ready()),
                "broker_up": float(monitor.broker_down_s(time.monotonic()) is None),
                "stalled_partitions": float(len(monitor.stalls))}

    sources = MetricSources(
        ingest=stats.as_dict, decisions=control.stats.as_dict,
        decided=lambda: dict(control.stats.decided),
        sink=lambda: None if sink is None else sink.stats.as_dict(),
        scoring=lambda: control.scoring, outlooks=lambda: control.outlooks.parts(),
        answers_for=control.answers_for, budgets_in_force=lambda: len(control.book),
        health=health_gauges,
        alert_delivery=lambda: None if delivery is None else delivery.stats.as_dict())
    metrics = WorkerMetrics(sources, settings.metrics_budgets)

    @app.page("/metrics")
    @guard
    @takes()
    async def metrics_view(web: View, request: Request) -> Response:
        """Prometheus metrics (text format 0.0.4; docs/operations.md, Metrics)."""
        lags: dict[tuple[str, int], int] = {}
        if steady(app):
            for tracker in control.trackers:
                backlog = await tracker.backlog()
                for tp, end in backlog.ends.items():
                    lags[(tp.topic, tp.partition)] = max(0, end - backlog.positions[tp])
        sources.lags = lags
        # aiohttp takes a charset only through the header itself
        return web.bytes(metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    @app.page("/budgets")
    @guard
    @takes()
    async def budgets_view(web: View, request: Request) -> Response:
        """The budgets this worker holds the figures of: spent, reserved, remaining,
        forecast and pacing (``budgets_answer``)."""
        body, status = budgets_answer(lambda: control.budget_figures(time.time()),
                                      owned_now(), app.consumer_generation_id)
        return web.json(body, status=status)

    @app.page("/providers")
    @guard
    @takes()
    async def providers_view(web: View, request: Request) -> Response:
        """Learned availability and latency per (provider, model)."""
        return web.json({"providers": control.health.snapshot(time.time())})

    @app.page("/group")
    @guard
    @takes()
    async def group_view(web: View, request: Request) -> Response:
        """This worker's place in the group, and the group (``group_answer``)."""
        owned = owned_now()
        body, status = group_answer(
            owned, app.consumer_generation_id,
            [] if owned is None else group_workers(app, tables.spend), sink is not None)
        return web.json(body, status=status)

    @app.page("/spend")
    @guard
    @takes("scope", "window")
    async def spend_view(web: View, request: Request) -> Response:
        query = request.query
        body, status = spend_answer(table_store(tables.spend), query.get("scope"),
                                    query.get("window"), owned_now(),
                                    app.consumer_generation_id)
        return web.json(body, status=status)

    def report_view(name: str) -> Handler:
        async def report_page(web: View, request: Request) -> Response:
            """A report from the store this worker's sink writes (``prsm_events.reports``)."""
            if store is None:
                return web.json({"error": "this worker does not run the ClickHouse sink "
                                          "(PRSM_SINK=off): ask the worker that does, or query "
                                          "the ClickHouse server"}, status=409)
            try:
                result = await asyncio.to_thread(
                    run_report, name, dict(request.query), datetime.now(UTC), store.query)
            except ReportError as exc:
                return web.json({"error": str(exc)}, status=400)
            except StoreUnavailable as exc:
                return web.json({"error": str(exc)}, status=503)
            return web.json(result.as_json())
        return report_page

    for name, spec in REPORTS.items():
        app.page(f"/reports/{name}", name=f"report_{name}")(
            guard(takes(*sorted(spec.takes))(report_view(name))))
