"""Budgets, catalog and allotments from their compacted topics, followed by every worker in
full.

Every worker needs every budget (a global budget applies to all tenants), so these topics
are read whole, without a consumer group, rather than partitioned like the per-tenant streams.
A record that does not parse is dead-lettered with the reason and skipped.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import mode

from prsm_events.events.dead_letter import DeadLetter
from prsm_events.kafka.compacted_view import CompactedView
from prsm_events.settings import Settings
from streams.control import SpendControl
from streams.dead_letter_writer import DeadLetterWriter
from streams.faust_compat import steady

__all__ = ["ConfigFeeds"]


class ConfigFeeds(mode.Service):
    def __init__(self, settings: Settings, control: SpendControl,
                 dead_letters: DeadLetterWriter, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.control = control
        self.dead_letters = dead_letters
        self.views = [
            CompactedView(settings.kafka, settings.topic("budgets"), control.apply_budget,
                          self._dead_letter(settings.topic("budgets"))),
            CompactedView(settings.kafka, settings.topic("catalog"), control.apply_catalog,
                          self._dead_letter(settings.topic("catalog"))),
            CompactedView(settings.kafka, settings.topic("allotments"),
                          control.apply_allotment,
                          self._dead_letter(settings.topic("allotments"))),
        ]
        self.ready = asyncio.Event()
        self._sending: set[asyncio.Future[Any]] = set()

    def _dead_letter(self, topic: str) -> Any:
        code = ("invalid_budget" if topic.endswith("budgets") else "invalid_allotment"
                if topic.endswith("allotments") else "invalid_catalog")

        def send(topic: str, partition: int, offset: int, key: bytes | None,
                 value: bytes | None, exc: Exception) -> None:
            letter = DeadLetter(code, f"{code}: {exc}", topic, partition, offset, key, value)
            task = asyncio.ensure_future(
                self.dead_letters.write([letter], datetime.now(UTC)))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)
        return send

    async def until_ready(self, poll_s: float) -> None:
        """Wait while tables are rebuilt (rebalance, recovery) or budgets/catalog unread."""
        while not (steady(self.control.app) and self.ready.is_set()):
            await asyncio.sleep(poll_s)

    async def on_start(self) -> None:
        # the views start side by side (each a consumer's bootstrap, metadata and offset
        # requests: one after another they held every worker's start)
        started = await asyncio.gather(*(view.start() for view in self.views),
                                       return_exceptions=True)
        failed = [e for e in started if isinstance(e, BaseException)]
        if failed:
            for view in self.views:
                await view.stop()
            raise failed[0]
        for view in self.views:
            await view.wait_caught_up(60.0)
        self.ready.set()

    async def on_stop(self) -> None:
        for view in self.views:
            await view.stop()
