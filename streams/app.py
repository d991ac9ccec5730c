"""Build the Faust app from Settings: one place that wires topics, tables, agents and views."""

from __future__ import annotations

from datetime import timedelta

import faust

from prsm_events.accounting.catalog import load_catalog
from prsm_events.accounting.ingest import UsageIngestor
from prsm_events.alerting.routes import load_routes
from prsm_events.errors import ConfigError
from prsm_events.events.validation import EventLimits
from prsm_events.settings import Settings
from prsm_events.store.clickhouse import ClickHouseStore
from streams.alert_delivery import AlertDelivery
from streams.allotments import register_allotments
from streams.answered_log import AnsweredLog
from streams.config_feeds import ConfigFeeds
from streams.control import SpendControl
from streams.dead_letter_writer import DeadLetterWriter, faust_sender
from streams.decision_agent import register_decisions
from streams.faust_compat import (
    commit_positions,
    consumer_on_loop,
    deliver_without_tasks,
    fetch_wait,
    known_standby_offsets,
    prompt_tables,
    steady,
)
from streams.health_monitor import HealthMonitor
from streams.record_probe import BrokerRecordProbe
from streams.scoring_timer import register_scoring
from streams.store_sink import StoreSink
from streams.usage_agent import IngestStats, register_ingest
from streams.web import register_views

__all__ = ["build_app"]


def build_app(settings: Settings, store: ClickHouseStore | None = None) -> faust.App:
    """The worker's Faust app; ``store`` defaults to the one named by PRSM_CLICKHOUSE_DSN (used
    only with PRSM_SINK=worker: this process then runs the ClickHouse sink)."""
    brokers = [f"kafka://{host.strip()}" for host in settings.bootstrap.split(",")]
    app = faust.App(
        settings.app_id,
        broker=brokers,
        broker_credentials=settings.kafka.faust_credentials(),
        store=settings.table_store,
        table_standby_replicas=settings.standby_replicas,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_allow_declare=True,
        autodiscover=False,
        web_enabled=True,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        # where the group's answers send the CLI for this worker (streams.web.group_workers)
        canonical_url=settings.web_advertised_url or settings.web_url,
        # Faust's own table and router views would serve table contents without the token;
        # the worker's API (streams/web.py) reads its tables itself.
        web_router_enabled=False,
        web_tables_enabled=False,
        producer_acks=-1,
        producer_linger=settings.producer_linger_ms / 1000,
        producer_max_request_size=settings.max_message_bytes,
        producer_max_batch_size=min(256 * 1024, settings.max_message_bytes),
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        broker_session_timeout=10.0,
        # Do not hold a rebalance until buffered events are processed: they are re-delivered
        # after it, and processing is idempotent (see streams/usage_agent.py).
        stream_wait_empty=False,
        broker_heartbeat_interval=2.0,
        stream_buffer_maxsize=max(4096, settings.batch_max * 2),
        datadir=str(settings.home.absolute() / "faust"),
    )
    consumer_on_loop(app)
    sink: StoreSink | None = None
    if settings.sink == "worker":  # this process runs the sink, and owns an embedded store
        store = store or ClickHouseStore(
            settings.clickhouse_dsn.get_secret_value(), settings.clickhouse_database
        )
        sink = StoreSink(settings, store)
        app.add_dependency(sink)
    else:
        store = None
    limits = EventLimits(
        max_bytes=settings.max_event_bytes,
        max_batch_bytes=settings.max_message_bytes,
        max_future_skew=timedelta(seconds=settings.max_future_skew_s),
        max_age=timedelta(seconds=settings.max_event_age_s),
        max_cost_usd=settings.max_event_cost_usd,
    )
    catalog = load_catalog(settings.catalog_path)
    ingestor = UsageIngestor(catalog, limits)
    control = SpendControl(app, settings, catalog)
    control.answered_log = AnsweredLog(settings.kafka, settings.topic("decisions"))
    control.catalog_listeners.append(lambda c: setattr(ingestor, "catalog", c))
    dead_letters = DeadLetterWriter(faust_sender(app), settings.topic("dlq"),
                                    settings.max_message_bytes)
    feeds = ConfigFeeds(settings, control, dead_letters)
    app.add_dependency(feeds)  # started (budgets and catalog read) with the app

    stats = IngestStats()
    probe = BrokerRecordProbe(settings.kafka)
    tables = register_ingest(app, settings, ingestor, stats, control, feeds, dead_letters, probe)
    register_decisions(app, settings, control, feeds, limits, dead_letters, probe)
    register_scoring(app, settings, control, feeds)
    register_allotments(app, settings, control, feeds)
    monitor = HealthMonitor(settings, control.trackers)

    @app.timer(interval=settings.health_interval_s)  # type: ignore[untyped-decorator]
    async def watch_health() -> None:
        await monitor.observe(steady(app))

    try:
        routes = load_routes(settings.alert_routes)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    delivery = AlertDelivery(settings, routes) if routes.routes else None
    if delivery is not None:
        app.add_dependency(delivery)

    register_views(app, settings, sink, tables, stats, control, feeds, monitor, dead_letters,
                   delivery)
    # the agents read these in order (PartitionProgress): commit exactly what they processed
    commit_positions(app, {tracker.topic: tracker.position for tracker in control.trackers})
    deliver_without_tasks(app)
    fetch_wait(app, settings.fetch_max_wait_ms)
    prompt_tables(app)  # every table is made by now
    known_standby_offsets(app)
    return app
