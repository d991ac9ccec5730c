"""CLI commands of spend control: ``budget set|list|delete|outlook``, ``catalog load|list``,
``decisions tail``."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path
from typing import Any

import click
import orjson
from pydantic import ValidationError

from prsm_events.errors import PrsmError
from prsm_events.settings import Settings

__all__ = ["budget", "catalog", "decisions"]


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def _emit_json_or_none(rows: list[dict[str, Any]], fmt: str) -> bool:
    """Print ``rows`` as JSON, or say there are none; True when nothing more is to print."""
    if fmt == "json":
        click.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return True
    if not rows:
        click.echo("no budgets")
        return True
    return False


def _run(coro: Any) -> Any:
    try:
        return asyncio.run(coro)
    except PrsmError as exc:
        _fail(str(exc))


# --- budget --------------------------------------------------------------------------------
@click.group()
def budget() -> None:
    """Budgets on the compacted budgets topic (take effect within a second)."""


@budget.command("set")
@click.argument("scope")
@click.option("--period", required=True,
              help="day | week | month (calendar, see --timezone) or rolling 1h | 24h | 7d.")
@click.option("--limit", "limit_usd", type=float, required=True, help="Limit in USD.")
@click.option("--alert-at", default="", help="Fractions of the limit that alert, e.g. 0.5,0.8.")
@click.option("--hard/--soft", default=True, show_default=True,
              help="Hard budgets block requests; soft ones only alert.")
@click.option("--pacing/--no-pacing", default=False, show_default=True,
              help="Spread the budget over its period (calendar periods).")
@click.option("--anomaly-throttle/--no-anomaly-throttle", default=True, show_default=True,
              help="Throttle the driving dimension on a high-severity spend anomaly.")
@click.option("--timezone", default="UTC", show_default=True, help="IANA zone of the period.")
def budget_set(scope: str, period: str, limit_usd: float, alert_at: str, hard: bool,
               pacing: bool, anomaly_throttle: bool, timezone: str) -> None:
    """Create or replace the budget of SCOPE for --period (e.g. tenant:acme)."""
    from prsm_events.accounting.budgets import Budget
    from prsm_events.kafka.config_topics import budget_record, publish

    try:
        fractions = tuple(float(x) for x in alert_at.split(",") if x.strip())
    except ValueError:
        _fail(f"--alert-at {alert_at!r}: give fractions like 0.5,0.8")
        raise
    try:
        b = Budget(scope=scope, period=period, limit_usd=limit_usd, alert_at=fractions,
                   hard=hard, pacing=pacing, anomaly_throttle=anomaly_throttle,
                   timezone=timezone)
    except ValidationError as exc:
        _fail("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                        for e in exc.errors(include_url=False)))
        raise
    _run(publish(Settings(), "budgets", [budget_record(b)]))
    click.echo(f"set {b.key}: ${b.limit_usd:g} {'hard' if b.hard else 'soft'}"
               + (f", alerts at {', '.join(f'{f:g}' for f in b.alert_at)}" if b.alert_at else "")
               + (", paced" if b.pacing else ""))


@budget.command("list")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
def budget_list(fmt: str) -> None:
    """The budgets in force."""
    from prsm_events.kafka.config_topics import read_budgets

    book = _run(read_budgets(Settings()))
    rows = sorted((b.model_dump(mode="json") for b in book), key=lambda r: (r["scope"],
                                                                             r["period"]))
    if _emit_json_or_none(rows, fmt):
        return
    click.echo(f"{'scope':<36} {'period':<6} {'limit_usd':>12} {'hard':<5} alert_at  timezone")
    for r in rows:
        click.echo(f"{r['scope']:<36} {r['period']:<6} {r['limit_usd']:>12g} "
                   f"{str(r['hard']).lower():<5} {','.join(f'{x:g}' for x in r['alert_at']):<9} "
                   f"{r['timezone']}")


@budget.command("outlook")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
def budget_outlook(fmt: str) -> None:
    """Where each budget's spend is heading (from the running workers' forecasts: each
    worker of the group is asked for the budgets it holds)."""
    from prsm_events.cli.worker_api import group_get
    from prsm_events.operations.group_views import merged_budgets

    rows = merged_budgets(group_get(Settings(), "/budgets", why="forecasts live in the "
                                    "worker; start `prsm worker`"))
    if _emit_json_or_none(rows, fmt):
        return
    click.echo(f"{'budget':<36} {'limit':>10} {'spent':>10} {'period end (90%)':>35} "
               f"{'exhausted at':<26} pacing")
    for r in rows:
        f = r.get("forecast") or {}
        end = f.get("period_end_spend_usd")
        span = ("-" if end is None else f"{end:.4f} (learning)" if f.get("learning")
                else f"{end:.4f} ({f['period_end_spend_low_usd']:.4f}-"
                f"{f['period_end_spend_high_usd']:.4f})" if "period_end_spend_low_usd" in f
                else f"{end:.4f} (run rate)")
        if f.get("window_peak"):
            span = f"peak {span}"  # a rolling window: its peak over the next window
        pace = r.get("pacing_action")
        click.echo(f"{r['key']:<36} {r['limit_usd']:>10g} {r['spent_usd']:>10.4f} {span:>35} "
                   f"{(f.get('exhaustion_ts') or '-')[:25]:<26} "
                   + (f"pressure {pace['pressure']:.2f}" if pace else "-"))


@budget.command("delete")
@click.argument("scope")
@click.option("--period", default=None, help="Only this period's budget (default: all).")
def budget_delete(scope: str, period: str | None) -> None:
    """Remove the budgets of SCOPE (a tombstone per budget)."""
    from prsm_events.kafka.config_topics import publish, read_budgets

    s = Settings()
    book = _run(read_budgets(s))
    keys = [b.key for b in book if b.scope == scope and (period is None or b.period == period)]
    if not keys:
        _fail(f"no budget on {scope}" + (f" for period {period}" if period else ""))
    _run(publish(s, "budgets", [(k.encode(), None) for k in keys]))
    click.echo(f"deleted {', '.join(keys)}")


# --- catalog -------------------------------------------------------------------------------
@click.group()
def catalog() -> None:
    """The model catalog on the compacted catalog topic."""


@catalog.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def catalog_load(file: Path) -> None:
    """Validate FILE (catalog JSON) and make it the catalog in force."""
    from prsm_events.accounting.catalog import Catalog
    from prsm_events.kafka.config_topics import CATALOG_KEY, publish

    try:
        cat = Catalog.from_path(file)
    except PrsmError as exc:
        _fail(str(exc))
        raise
    _run(publish(Settings(), "catalog", [(CATALOG_KEY, file.read_bytes())]))
    click.echo(f"loaded catalog {cat.version}: {len(cat)} entries")


@catalog.command("list")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
def catalog_list(fmt: str) -> None:
    """The catalog in force (the shipped one until one is loaded)."""
    from prsm_events.accounting.catalog import load_catalog
    from prsm_events.kafka.config_topics import read_catalog

    s = Settings()
    cat = _run(read_catalog(s)) or load_catalog(s.catalog_path)
    if fmt == "json":
        click.echo(orjson.dumps(cat.to_json(), option=orjson.OPT_INDENT_2).decode())
        return
    click.echo(f"catalog {cat.version} (prices read on {cat.prices_read_on}), USD per 1M tokens")
    click.echo(f"{'provider':<14} {'model':<24} {'input':>8} {'output':>8} {'quality':>7} "
               "capabilities")
    for e in cat.entries:
        click.echo(f"{e.provider:<14} {e.model:<24} {e.input:>8g} {e.output:>8g} "
                   f"{e.quality:>7g} {','.join(e.capabilities)}")


# --- decisions -----------------------------------------------------------------------------
@click.group()
def decisions() -> None:
    """Decisions on the decisions topic."""


@decisions.command("tail")
@click.option("--from-beginning", is_flag=True)
@click.option("-n", "--count", type=int, default=None, help="Stop after N decisions.")
@click.option("--tenant", default=None)
@click.option("--idle-timeout", type=float, default=None, help="Stop after S idle seconds.")
@click.option("--format", "fmt", type=click.Choice(["line", "json"]), default="line",
              show_default=True)
def decisions_tail(from_beginning: bool, count: int | None, tenant: str | None,
                   idle_timeout: float | None, fmt: str) -> None:
    """Print decisions as they arrive."""
    from prsm_events.kafka.config_topics import tail_decisions

    async def run() -> None:
        async for d in tail_decisions(Settings(), from_beginning=from_beginning, count=count,
                                      tenant=tenant, idle_timeout_s=idle_timeout):
            if fmt == "json":
                click.echo(orjson.dumps(d).decode())
                continue
            retry = f" retry_after={d['retry_after_s']}s" if d.get("retry_after_s") else ""
            click.echo(f"{d['ts']} {d['tenant']} {d['request_id']} {d['action']} "
                       f"{d.get('model')}@{d.get('provider')} ${d.get('est_cost_usd', 0):.6f} "
                       f"{d['reason']['code']}{retry}")

    with contextlib.suppress(KeyboardInterrupt):
        _run(run())
