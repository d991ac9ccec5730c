"""Run the worker (make sure the topics exist, then start Faust), or the sink on its own."""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

import faust
from mode.utils.times import want_seconds

from prsm_events.kafka.admin import (
    check_message_limits,
    ensure_topics,
    provision_topics,
    require_co_partitioned,
    wait_for_broker,
    wait_for_leaders,
)
from prsm_events.kafka.topics import TopicSpec, topic_specs
from prsm_events.settings import Settings
from streams.app import build_app
from streams.faust_compat import prompt_close
from streams.health_monitor import install_log_limiter

__all__ = ["GC_THRESHOLDS", "run_sink", "run_worker"]

GC_THRESHOLDS = (5_000, 20, 100)
"""Python's collector: the hot path allocates a few objects per message and keeps almost none,
and with the defaults (700, 10, 10) the collections, full ones walking every table row, took a
fifth of the worker's time. A young collection every 5,000 allocations pauses the loop about
1.5 ms (every 50,000: 10-20 ms at once, the same time in all, a decision tail); a full one is
considered after 100 middle ones, as rarely as before
(docs/decisions/2026-12-03-reading-below-the-stream.md, 2026-12-05-decision-tail.md)."""


def run_worker(settings: Settings, loglevel: str = "warning") -> None:
    """Block running the worker until SIGINT/SIGTERM (it commits and stops cleanly)."""

    (settings.home / "faust").mkdir(parents=True, exist_ok=True)
    app = build_app(settings)  # no I/O yet: names the changelog topics its tables write
    changelogs = changelog_specs(app)

    async def prepare() -> None:
        await wait_for_broker(settings.kafka)
        specs = topic_specs(settings.topic_prefix, settings.partitions,
                            settings.topic_max_message_bytes)
        changes = await ensure_topics(settings.kafka, specs, settings.replication_factor)
        # the tables' changelogs too, before the consumer joins its group (Faust would
        # create them as it starts, a moment before its assignor reads the metadata);
        # existing ones are left as they are (their limits are checked below)
        changes += await ensure_topics(settings.kafka, changelogs, settings.replication_factor,
                                       align=False)
        for change in changes:
            if change.action != "unchanged":
                logging.getLogger("prsm.worker").warning("topic %s", change)
        require_co_partitioned(settings, changes)
        # what the worker writes: every prsm topic, and the changelogs of its tables
        written = [s.name for s in [*specs, *changelogs]]
        await wait_for_leaders(settings.kafka, written)
        await check_message_limits(settings.kafka, written, settings.topic_max_message_bytes)

    asyncio.run(prepare())
    # aiokafka logs every send at debug level; with the root logger left at NOTSET each call
    # builds a record only to drop it (a few % of the decision path). Keep it quiet.
    logging.getLogger("aiokafka").setLevel(max(logging.INFO, logging.getLevelName(
        loglevel.upper()) if isinstance(logging.getLevelName(loglevel.upper()), int)
        else logging.WARNING))
    gc.collect()
    gc.freeze()  # what lives as long as the process (modules, the app) leaves the collections
    gc.set_threshold(*GC_THRESHOLDS)
    QuietWorker(app, settings.log_repeat_s, loglevel=loglevel,
                quiet=True).execute_from_commandline()


def changelog_specs(app: faust.App) -> list[TopicSpec]:
    """The changelog topics of ``app``'s tables, as Faust creates them (its partitions, its
    cleanup policy and retention, the table's extra configs)."""
    specs = []
    for table in app.tables.values():
        topic: Any = table.changelog_topic
        policy = ",".join(sorted(name for name, on in (("compact", topic.compacting),
                                                       ("delete", topic.deleting)) if on))
        configs = {"cleanup.policy": policy} if policy else {}
        if topic.retention:
            configs["retention.ms"] = str(int(want_seconds(topic.retention) * 1000))
        configs.update({k: str(v) for k, v in (topic.config or {}).items()})
        specs.append(TopicSpec(topic.get_topic_name(),
                               topic.partitions or app.conf.topic_partitions, configs))
    return specs


def run_sink(settings: Settings, loglevel: str = "warning") -> None:
    """Block running the ClickHouse sink alone (``streams.store_sink``) until SIGINT/SIGTERM:
    for workers run with PRSM_SINK=off."""
    import mode

    from prsm_events.store.clickhouse import ClickHouseStore
    from streams.store_sink import StoreSink

    asyncio.run(wait_for_broker(settings.kafka))
    provision_topics(settings)
    store = ClickHouseStore(settings.clickhouse_dsn.get_secret_value(),
                            settings.clickhouse_database)
    sink = StoreSink(settings, store)
    worker = mode.Worker(sink, loglevel=loglevel, quiet=True)
    prompt_close(worker)
    worker.execute_from_commandline()


class QuietWorker(faust.Worker):
    """faust's Worker with repeated warnings and errors rate-limited (PRSM_LOG_REPEAT_S)."""

    def __init__(self, app: faust.App, repeat_s: float, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.repeat_s = repeat_s
        prompt_close(self)

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        super().on_setup_root_logger(logger, level)
        if self.repeat_s > 0:
            install_log_limiter(logger, self.repeat_s)
