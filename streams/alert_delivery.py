"""Alert delivery: consume ``prsm.alerts`` and send each alert to the routes that match it
(``prsm_events.alerting``): signed webhooks and Slack-compatible incoming webhooks.

A role of its own, beside the agents, so that a slow or failing receiver never holds up
ingest, budgets or decisions: its own consumer group (``<PRSM_APP_ID>-alerts``: with several
workers each alert is delivered by one of them), its own HTTP client. Each alert is sent to
each matching route at once; a failure (no answer, 5xx, 408, 429) is retried with backoff
for ``PRSM_ALERT_RETRY_FOR_S``, then the alert is dead-lettered as ``alert_undelivered``
with the route and the last error (as is a 4xx answer at once). An alert whose
``alert_id`` was taken already (the scorer re-sent it) is not sent again. Offsets are
committed up to the oldest alert still being delivered, so a crash delivers again what was
not finished (receivers deduplicate on ``X-Prsm-Alert-Id``). Alerts older than
``PRSM_ALERT_MAX_AGE_S`` when read (a new group starting on old alerts) are not sent.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import mode
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, ConsumerStoppedError, KafkaError
from pydantic import ValidationError

from prsm_events.alerting.payloads import signature, slack_body, webhook_body
from prsm_events.alerting.routes import AlertRoute, AlertRoutes
from prsm_events.events.alerts import Alert
from prsm_events.events.dead_letter import DeadLetter
from prsm_events.operations.backoff import Backoff
from prsm_events.settings import Settings
from streams.dead_letter_writer import DeadLetterWriter, aiokafka_sender

__all__ = ["AlertDelivery", "DeliveryStats", "OffsetWindow"]

log = logging.getLogger("prsm.alerts")

IN_FLIGHT = 256
"""Deliveries under way at most; more alerts wait in the topic (back-pressure)."""
REMEMBER = 100_000
"""Alert ids remembered as taken (the newest), against re-sends."""
_RETRY = frozenset({408, 429})


@dataclass
class DeliveryStats:
    delivered: int = 0  # (alert, route) deliveries answered 2xx
    retries: int = 0  # attempts after a failed one
    undelivered: int = 0  # (alert, route) given up: dead-lettered
    duplicates: int = 0  # alerts whose id was taken already
    too_old: int = 0  # alerts older than PRSM_ALERT_MAX_AGE_S when read
    unmatched: int = 0  # alerts no route takes
    unreadable: int = 0  # records that are not alerts (the sink dead-letters them)
    in_flight: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class OffsetWindow:
    """The offsets of one partition handed out and not yet done; ``committable`` is the
    offset up to which every record is done (what a commit may say).

    >>> w = OffsetWindow()
    >>> for o in (5, 6, 7):
    ...     w.start(o)
    >>> w.finish(6); w.committable()
    5
    >>> w.finish(5); w.committable()
    7
    >>> w.finish(7); w.committable()
    8
    """

    def __init__(self) -> None:
        self._open: dict[int, None] = {}  # insertion order is offset order
        self._next = 0

    def start(self, offset: int) -> None:
        self._open[offset] = None
        self._next = offset + 1

    def finish(self, offset: int) -> None:
        self._open.pop(offset, None)

    def committable(self) -> int:
        return next(iter(self._open), self._next)


class AlertDelivery(mode.Service):
    def __init__(self, settings: Settings, routes: AlertRoutes, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.routes = routes
        self.topic = settings.topic("alerts")
        self.stats = DeliveryStats()
        self._taken: OrderedDict[str, None] = OrderedDict()
        self._windows: dict[TopicPartition, OffsetWindow] = {}
        self._slots = asyncio.Semaphore(IN_FLIGHT)
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._http: aiohttp.ClientSession | None = None
        self._dead_letters: DeadLetterWriter | None = None
        self._deliveries: set[asyncio.Task[None]] = set()

    async def on_start(self) -> None:
        args = self.settings.kafka.client_args()
        self._consumer = AIOKafkaConsumer(
            self.topic, **args, group_id=f"{self.settings.app_id}-alerts",
            client_id=f"prsm-alerts-{socket.gethostname()}-{os.getpid()}",
            enable_auto_commit=False, auto_offset_reset="earliest",
            isolation_level="read_committed", session_timeout_ms=10_000,
            heartbeat_interval_ms=2_000)
        self._producer = AIOKafkaProducer(**args, acks="all")
        await self._producer.start()
        self._dead_letters = DeadLetterWriter(aiokafka_sender(self._producer),
                                              self.settings.topic("dlq"),
                                              self.settings.max_message_bytes)
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10.0))
        await self._consumer.start()

    async def on_stop(self) -> None:
        for task in list(self._deliveries):
            task.cancel()
        await asyncio.gather(*self._deliveries, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
        for client in (self._consumer, self._producer):
            if client is not None:
                await client.stop()

    @mode.Service.task
    async def _run(self) -> None:
        assert self._consumer is not None
        while not self.should_stop:
            try:
                got = await self._consumer.getmany(timeout_ms=500)
                for records in got.values():
                    for record in records:
                        await self._take(record)
                await self._commit()
            except ConsumerStoppedError:
                return
            except KafkaError as exc:
                log.warning("cannot read or commit %s: %r; trying again in 1s", self.topic, exc)
                await asyncio.sleep(1.0)

    async def _take(self, record: ConsumerRecord[bytes, bytes]) -> None:
        tp = TopicPartition(record.topic, record.partition)
        window = self._windows.setdefault(tp, OffsetWindow())
        try:
            alert = Alert.model_validate_json(record.value or b"")
        except ValidationError:
            self.stats.unreadable += 1
            window.start(record.offset)
            window.finish(record.offset)
            return
        routes = self.routes.matching(alert.scope, alert.kind, alert.severity)
        age = time.time() - alert.ts.timestamp()
        skip = ("duplicates" if alert.alert_id in self._taken else
                "too_old" if age > self.settings.alert_max_age_s else
                "unmatched" if not routes else None)
        window.start(record.offset)
        if skip is not None:
            setattr(self.stats, skip, getattr(self.stats, skip) + 1)
            window.finish(record.offset)
            return
        self._taken[alert.alert_id] = None
        if len(self._taken) > REMEMBER:
            self._taken.popitem(last=False)
        await self._slots.acquire()
        self.stats.in_flight += 1
        task = asyncio.ensure_future(self._deliver_all(record, alert, routes, window))
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def _deliver_all(self, record: ConsumerRecord[bytes, bytes], alert: Alert,
                           routes: list[AlertRoute], window: OffsetWindow) -> None:
        try:
            failures = [f for f in await asyncio.gather(
                *(self._deliver(alert, route) for route in routes)) if f]
            if failures:
                await self._undelivered(record, failures)
        finally:
            window.finish(record.offset)
            self.stats.in_flight -= 1
            self._slots.release()

    async def _deliver(self, alert: Alert, route: AlertRoute) -> str | None:
        """Send ``alert`` to ``route`` until it is taken or the retries run out; None when
        delivered, else why not."""
        assert self._http is not None
        body = webhook_body(alert) if route.format == "webhook" else slack_body(alert)
        headers = {"Content-Type": "application/json", "X-Prsm-Alert-Id": alert.alert_id,
                   "User-Agent": "prsm-events"}
        key = route.signing_key() if route.format == "webhook" else None
        deadline = time.monotonic() + self.settings.alert_retry_for_s
        backoff = Backoff(initial=1.0, cap=60.0)
        attempts = 0
        while True:
            attempts += 1
            if key is not None:
                headers["X-Prsm-Signature"] = signature(key, body, int(time.time()))
            try:
                async with self._http.post(str(route.url), data=body, headers=headers) as resp:
                    status = resp.status
                    await resp.read()
                if 200 <= status < 300:
                    self.stats.delivered += 1
                    return None
                why = f"route {route.name}: HTTP {status} after {attempts} attempt(s)"
                if 400 <= status < 500 and status not in _RETRY:
                    return why
            except (aiohttp.ClientError, TimeoutError) as exc:
                why = f"route {route.name}: {exc!r} after {attempts} attempt(s)"
            delay = next(backoff)
            if time.monotonic() + delay > deadline:
                return why
            self.stats.retries += 1
            log.warning("alert %s not delivered (%s); again in %.1fs", alert.alert_id, why,
                        delay)
            await asyncio.sleep(delay)

    async def _undelivered(self, record: ConsumerRecord[bytes, bytes], why: list[str]) -> None:
        assert self._dead_letters is not None
        self.stats.undelivered += len(why)
        log.error("alert %s[%d]@%d not delivered: %s", record.topic, record.partition,
                  record.offset, "; ".join(why))
        try:
            await self._dead_letters.write([DeadLetter(
                "alert_undelivered", f"alert_undelivered: {'; '.join(why)}", record.topic,
                record.partition, record.offset, record.key, record.value)], datetime.now(UTC))
        except KafkaError as exc:
            log.error("the dead letter of an undelivered alert was not written: %r", exc)

    async def _commit(self) -> None:
        assert self._consumer is not None
        assigned = self._consumer.assignment()
        offsets = {tp: w.committable() for tp, w in self._windows.items() if tp in assigned}
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except CommitFailedError as exc:  # a rebalance: the new owner delivers what is open
            log.info("alert offsets not committed after a rebalance (%s)", exc)
            self._windows = {tp: w for tp, w in self._windows.items()
                             if tp in self._consumer.assignment()}
