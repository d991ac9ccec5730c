"""Run the worker: make sure the topics exist, then start Faust."""

from __future__ import annotations

import asyncio
import logging

import faust

from prsm_events.kafka_admin import ensure_topics, wait_for_broker
from prsm_events.settings import Settings
from prsm_events.topics import topic_specs
from streams.app import build_app

__all__ = ["run_worker"]


def run_worker(settings: Settings, loglevel: str = "warning") -> None:
    """Block running the worker until SIGINT/SIGTERM (it commits and stops cleanly)."""

    async def prepare() -> None:
        await wait_for_broker(settings.bootstrap)
        specs = topic_specs(settings.topic_prefix, settings.partitions)
        for change in await ensure_topics(settings.bootstrap, specs, settings.replication_factor):
            if change.action != "unchanged":
                logging.getLogger("prsm.worker").warning("topic %s", change)

    asyncio.run(prepare())
    (settings.home / "faust").mkdir(parents=True, exist_ok=True)
    app = build_app(settings)
    # aiokafka logs every send at debug level; with the root logger left at NOTSET each call
    # builds a record only to drop it (a few % of the decision path). Keep it quiet.
    logging.getLogger("aiokafka").setLevel(max(logging.INFO, logging.getLevelName(
        loglevel.upper()) if isinstance(logging.getLevelName(loglevel.upper()), int)
        else logging.WARNING))
    faust.Worker(app, loglevel=loglevel, quiet=True).execute_from_commandline()
