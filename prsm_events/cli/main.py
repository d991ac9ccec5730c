"""The ``prsm`` command line."""

from __future__ import annotations

import asyncio
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from prsm_events.errors import ConfigError, PrsmError
from prsm_events.settings import Settings

__all__ = ["main"]

SHARED_TRACE = Path("../shared/data/azure-llm-2023/AzureLLMInferenceTrace_code.csv")


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:  # inputs are hidden: they may hold secrets
        problems = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise ConfigError(f"invalid PRSM_* settings: {problems}") from None


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


class _Commands(click.Group):
    """Every command's known failures (broker, settings, store) end in one line, exit 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PrsmError as exc:
            _fail(str(exc))


@click.group(cls=_Commands)
def main() -> None:
    """prsm-events: real-time AI spend control on Kafka."""


# --- dev -----------------------------------------------------------------------------------
@main.group()
def dev() -> None:
    """The local Kafka broker (real Apache Kafka, KRaft, single node)."""


def _broker(secure: bool = False) -> Any:
    from prsm_events.kafka.dev_broker import LocalBroker

    s = _settings()
    return LocalBroker(s.home, s.broker_port, secure=secure)


@dev.command("up")
@click.option("--secure", is_flag=True,
              help="SASL_SSL (SCRAM) and mutual TLS with ACLs, as a managed cluster; clients "
              "need PRSM_HOME/kafka-secure/client.env.")
def dev_up(secure: bool) -> None:
    """Fetch (once) and start the broker; wait until it answers."""
    broker = _broker(secure)
    click.echo(f"starting Kafka {broker.kafka_version()} under {broker.dir} ...", err=True)
    bootstrap = broker.start()
    if secure:
        click.echo(f"SASL_SSL as admin: set -a; . {broker.dir / 'client.env'}; set +a\n"
                   f"mutual TLS on {broker.tls_bootstrap}", err=True)
    click.echo(bootstrap)


@dev.command("down")
def dev_down() -> None:
    """Stop the broker (and the secure one); their data stays under PRSM_HOME."""
    stopped = [_broker(secure).stop() for secure in (False, True)]
    click.echo("stopped" if any(stopped) else "not running")


@dev.command("status")
def dev_status() -> None:
    plain, secure = _broker(), _broker(secure=True)
    click.echo(plain.status())
    if secure.pid() is not None:
        click.echo(f"secure: {secure.status()}")


@dev.command("user")
@click.argument("name")
@click.password_option(help="The user's password (asked when not given).")
def dev_user(name: str, password: str) -> None:
    """Add (or change) a SCRAM-SHA-256/512 user on the secure broker."""
    from pydantic import SecretStr

    _broker(secure=True).add_user(name, SecretStr(password))
    click.echo(f"user {name}")


def _dev_tool(name: str, args: tuple[str, ...]) -> None:
    broker = _broker(secure=_broker(secure=True).pid() is not None)
    done = broker.tool(name, *args)
    click.echo(done.stdout, nl=False)
    click.echo(done.stderr, nl=False, err=True)
    sys.exit(done.returncode)


@dev.command("acls", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def dev_acls(args: tuple[str, ...]) -> None:
    """kafka-acls from the broker's jars, as admin (e.g. `prsm dev acls --list`)."""
    _dev_tool("kafka-acls", args)


@dev.command("configs", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def dev_configs(args: tuple[str, ...]) -> None:
    """kafka-configs from the broker's jars, as admin."""
    _dev_tool("kafka-configs", args)


# --- topics --------------------------------------------------------------------------------
@main.group()
def topics() -> None:
    """Kafka topics."""


@topics.command("create")
def topics_create() -> None:
    """Create every prsm topic, or align its settings (idempotent); exit 2 when usage, requests
    or decisions has another partition count than PRSM_PARTITIONS (a worker would refuse them)."""
    from prsm_events.kafka.admin import provision_topics, require_co_partitioned

    settings = _settings()
    changes = provision_topics(settings)
    for change in changes:
        click.echo(str(change))
    require_co_partitioned(settings, changes)  # a PrsmError ends as every command's: exit 2


# --- worker --------------------------------------------------------------------------------
@main.command()
@click.option("--loglevel", default="warning", show_default=True, envvar="PRSM_LOGLEVEL")
def worker(loglevel: str) -> None:
    """Run the stream worker (ingest agent, tables, HTTP API; the ClickHouse sink unless
    PRSM_SINK=off)."""
    from streams.worker import run_worker

    run_worker(_settings(), loglevel)


@main.command()
@click.option("--loglevel", default="warning", show_default=True, envvar="PRSM_LOGLEVEL")
def sink(loglevel: str) -> None:
    """Run the ClickHouse sink on its own: accepted events, decisions, alerts and budget snapshots
    from their topics into ClickHouse (for workers run with PRSM_SINK=off)."""
    from streams.worker import run_sink

    run_sink(_settings(), loglevel)


# --- publish -------------------------------------------------------------------------------
def _event_from_flags(opts: dict[str, Any]) -> dict[str, Any]:
    event = {k: v for k, v in opts.items() if v is not None}
    event.setdefault("event_id", str(uuid.uuid4()))
    event.setdefault("ts", datetime.now(UTC).isoformat())
    return event


@main.command()
@click.option("--file", "file_", type=click.File("rb"), help="JSONL file of events; - for stdin.")
@click.option("--no-validate", is_flag=True, help="Send lines as they are (to test the DLQ).")
@click.option("--tenant")
@click.option("--service")
@click.option("--model")
@click.option("--provider")
@click.option("--team")
@click.option("--api-key-id")
@click.option("--request-id")
@click.option("--event-id")
@click.option("--input-tokens", type=int)
@click.option("--output-tokens", type=int)
@click.option("--cost-usd", type=float)
@click.option("--kind")
def publish(file_: Any, no_validate: bool, **flags: Any) -> None:
    """Publish one event from flags, or JSONL events from --file."""
    from prsm_events.errors import InvalidEvent
    from prsm_events.events.usage import UsageEvent
    from prsm_events.events.validation import describe_validation_error, parse_object
    from prsm_events.sdk.publisher import UsagePublisher

    s = _settings()
    lines: list[bytes] = []
    events: list[UsageEvent] = []
    if file_ is not None:
        lines = [ln for ln in file_.read().splitlines() if ln.strip()]
        if not no_validate:
            for n, line in enumerate(lines, 1):
                try:
                    events.append(UsageEvent.model_validate(parse_object(line)))
                except InvalidEvent as exc:
                    _fail(f"line {n}: {exc.reason}; nothing was sent")
                except ValidationError as exc:
                    _fail(f"line {n}: {describe_validation_error(exc).reason}; nothing was sent")
    else:
        if not flags.get("tenant") or not flags.get("service"):
            _fail("give --tenant and --service (and --model or --cost-usd), or --file")
        try:
            events.append(UsageEvent.model_validate(_event_from_flags(flags)))
        except ValidationError as exc:
            _fail(str(exc))

    async def send() -> int:
        async with UsagePublisher(s.kafka, topic=s.topic("usage")) as pub:
            if no_validate:
                for line in lines:
                    await pub.publish_raw(line)
                return len(lines)
            return await pub.publish_many(events)

    click.echo(f"published {asyncio.run(send())} events to {s.topic('usage')}")


# --- replay --------------------------------------------------------------------------------
@main.command()
@click.argument("trace", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                required=False)
@click.option("--speed", type=float, default=60.0, show_default=True,
              help="Time compression factor (60: one trace minute per second).")
@click.option("--max-rate", type=float, default=None,
              help="Cap on events/s (default: as the trace and --speed dictate).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--tenants", type=int, default=5, show_default=True)
@click.option("--limit", type=int, default=None, help="Replay only the first N rows.")
@click.option("--run-id", default=None, help="Event id prefix (default: a fresh one).")
def replay(trace: Path | None, speed: float, max_rate: float | None, seed: int, tenants: int,
           limit: int | None, run_id: str | None) -> None:
    """Replay a CSV request trace as usage events (synthetic workload without TRACE)."""
    from prsm_events.cli.replay import replay_trace

    total = replay_trace(_settings(), trace, speed=speed, seed=seed, tenants=tenants,
                         limit=limit, run_id=run_id, max_rate=max_rate)
    click.echo(f"replayed {total} events")


# --- report --------------------------------------------------------------------------------
@main.group()
def report() -> None:
    """Reports from ClickHouse (each a documented SQL query: --sql prints it)."""


_REPORT_OPTIONS = {
    "every": click.option("--every", type=click.Choice(["hour", "day"]), default=None,
                          help="One row per hour or day (a time axis)."),
    "by": click.option("--by", default=None, help="Dimensions, comma-separated: tenant, "
                       "service, team, api_key, provider, model, kind, status, tag:KEY."),
    "tenant": click.option("--tenant", default=None, help="Only this tenant."),
    "since": click.option("--since", default=None, help="ISO 8601 start (UTC when no zone)."),
    "until": click.option("--until", default=None, help="ISO 8601 end, excluded."),
    "limit": click.option("--limit", default=None, help="At most this many rows."),
}


def _report_command(name: str, summary: str, takes: frozenset[str], plots: bool) -> None:
    def run(fmt: str, sql: bool, plot: Path | None = None, **options: str | None) -> None:
        from prsm_events.cli.worker_api import fetch_report
        from prsm_events.reports import ReportOptions, report_named

        spec = report_named(name)
        try:
            if plot is not None:  # refused before anything is asked
                from prsm_events.reports.plot import check_target

                check_target(plot, bool(options.get("every")))
            if sql:
                parsed = ReportOptions.parse(options, spec.takes)
                q = spec.build(parsed, datetime.now(UTC))
                click.echo(q.sql.replace("{db}", _settings().clickhouse_database))
                for key, value in q.params.items():
                    click.echo(f"-- {{{key}}} = {value!r}")
                return
            result = fetch_report(_settings(), name, options)
            if plot is not None and spec.measure is not None and spec.series is not None:
                from prsm_events.reports.plot import plot_report  # matplotlib: only to draw

                series = spec.series(ReportOptions.parse(options, spec.takes))
                plot_report(result, spec.measure, series, plot)
                click.echo(f"wrote {plot}", err=True)
        except (PrsmError, ValueError) as exc:  # ReportError is both
            _fail(str(exc))
        click.echo(result.render(fmt), nl=False)

    command = run
    for option in reversed([o for n, o in _REPORT_OPTIONS.items() if n in takes]):
        command = option(command)
    command = click.option("--sql", is_flag=True, help="Print the SQL and its parameters "
                           "instead of running it.")(command)
    if plots:
        command = click.option("--plot", type=click.Path(dir_okay=False, path_type=Path),
                               default=None, help="Also draw it: FILE.png or FILE.html "
                               "(needs --every).")(command)
    command = click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]),
                           default="table", show_default=True)(command)
    report.command(name, help=summary)(command)


def _register_reports() -> None:
    from prsm_events.reports import REPORTS

    for spec in REPORTS.values():
        _report_command(spec.name, spec.summary, spec.takes, spec.measure is not None)


_register_reports()


# --- demo ----------------------------------------------------------------------------------
@main.command()
@click.option("--trace", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help=f"Trace CSV (default: {SHARED_TRACE} when present, else synthetic).")
@click.option("--speed", type=float, default=600.0, show_default=True)
@click.option("--limit", type=int, default=3000, show_default=True)
def demo(trace: Path | None, speed: float, limit: int) -> None:
    """Start a broker and a worker, replay a workload, print the spend report, stop."""
    from prsm_events.cli.demo import run_demo

    if trace is None and SHARED_TRACE.exists():
        trace = SHARED_TRACE
    try:
        run_demo(_settings(), trace, speed=speed, limit=limit)
    except PrsmError as exc:
        _fail(str(exc))


# --- spend control (budget, catalog, decisions) ----------------------------------------------
def _add_control_commands() -> None:
    from prsm_events.cli.control_commands import budget, catalog, decisions

    for command in (budget, catalog, decisions):
        main.add_command(command)


_add_control_commands()
