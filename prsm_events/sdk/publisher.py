"""SDK: publish usage events to ``prsm.usage`` from Python (async or sync).

Events are validated before they leave the process, keyed by tenant, and sent with
``acks=all`` and an idempotent producer. The ``event_id`` is the idempotency key: publishing
the same event twice counts once. ``publish_many`` sends batch envelopes (one message per
tenant carrying up to ``batch_events`` events as a JSON array; ``events.envelope``), which
the worker takes many times faster than one message per event. Each event is written as
``fast_path.usage_json`` writes it (its fields at their defaults left out), the form the
worker decodes a whole envelope of at once.

Async::

    async with UsagePublisher("127.0.0.1:19092") as pub:
        await pub.publish({"event_id": "e1", "ts": "2026-01-01T00:00:00Z", "tenant": "acme",
                           "service": "chat", "model": "gpt-4o", "input_tokens": 1200})

Sync::

    with SyncUsagePublisher("127.0.0.1:19092") as pub:
        pub.publish(event)

TLS and SASL come from the ``PRSM_KAFKA_*`` variables (see ``Settings``), also when a
bootstrap string is given; or pass a ``KafkaConnection``. Refused credentials or an
untrusted certificate fail ``start()`` at once with ``KafkaAccessError``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaProducer

from prsm_events.events.envelope import encode_envelope
from prsm_events.events.fast_path import usage_json
from prsm_events.events.usage import UsageEvent
from prsm_events.kafka.connection import KafkaConnection, started
from prsm_events.sdk.client_lifecycle import AsyncClient
from prsm_events.settings import Settings

__all__ = ["SyncUsagePublisher", "UsagePublisher"]

EventLike = UsageEvent | Mapping[str, Any]

ENVELOPE_MARGIN = 4096
"""Bytes a batch message leaves below PRSM_MAX_MESSAGE_BYTES (the record's own framing)."""


def _connection(bootstrap: str | KafkaConnection | None, settings: Settings
                ) -> KafkaConnection:
    """A given connection; or the PRSM_KAFKA_* security towards the given servers."""
    if isinstance(bootstrap, KafkaConnection):
        return bootstrap
    return settings.kafka.with_bootstrap(bootstrap) if bootstrap else settings.kafka


def _encode(event: EventLike) -> tuple[bytes, bytes]:
    model = event if isinstance(event, UsageEvent) else UsageEvent.model_validate(event)
    return model.tenant.encode(), usage_json(model)


def _message(values: list[bytes]) -> bytes:
    return values[0] if len(values) == 1 else encode_envelope(values)


class UsagePublisher(AsyncClient):
    """Async publisher; use as ``async with`` or call ``start()``/``stop()``."""

    def __init__(
        self,
        bootstrap: str | KafkaConnection | None = None,
        *,
        topic: str | None = None,
        batch_events: int = 500,
        **producer_options: Any,
    ) -> None:
        settings = Settings()
        self.kafka = _connection(bootstrap, settings)
        self.topic = topic or settings.topic("usage")
        if batch_events < 1:
            raise ValueError(f"batch_events must be at least 1, not {batch_events}")
        self.batch_events = batch_events
        """Most events ``publish_many`` puts in one message (1: one message per event)."""
        self.batch_bytes = settings.max_message_bytes - ENVELOPE_MARGIN
        """Most bytes of one batch message: what the topics take, less a margin."""
        options: dict[str, Any] = {"acks": "all", "enable_idempotence": True, "linger_ms": 5}
        options.update(producer_options)
        self._options = options
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        if self._producer is None:
            producer = AIOKafkaProducer(**self.kafka.client_args(), **self._options)
            await started(producer, self.kafka)
            self._producer = producer

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    @property
    def producer(self) -> AIOKafkaProducer:
        """The started aiokafka producer (for callers that pace their own sends)."""
        if self._producer is None:
            raise RuntimeError("UsagePublisher is not started (use `async with` or start())")
        return self._producer

    async def publish(self, event: EventLike) -> None:
        """Validate and send one event; return once the broker acknowledged it."""
        key, value = _encode(event)
        await self.producer.send_and_wait(self.topic, value=value, key=key)

    async def publish_many(self, events: Iterable[EventLike]) -> int:
        """Validate and send events in batch messages, pipelined; return the number of events
        once all are acknowledged."""
        producer = self.producer
        pending = []
        count = 0
        for key, value, events_in in self.envelopes(events):
            pending.append(await producer.send(self.topic, value=value, key=key))
            count += events_in
        await asyncio.gather(*pending)
        return count

    def envelopes(self, events: Iterable[EventLike]) -> Iterator[tuple[bytes, bytes, int]]:
        """(key, value, events in it) of each message ``publish_many`` sends: the events
        grouped by tenant in order, at most ``batch_events`` and ``batch_bytes`` per message;
        a message of one event is a plain JSON object."""
        groups: dict[bytes, list[bytes]] = {}
        sizes: dict[bytes, int] = {}  # bytes of each group's message: brackets and commas
        for event in events:
            key, value = _encode(event)
            values = groups.setdefault(key, [])
            if values and (len(values) >= self.batch_events
                           or sizes[key] + len(value) + 1 > self.batch_bytes):
                yield key, _message(values), len(values)
                values.clear()
            if not values:
                sizes[key] = 2
            values.append(value)
            sizes[key] += len(value) + 1
        for key, values in groups.items():
            if values:
                yield key, _message(values), len(values)

    async def publish_raw(self, value: bytes, key: bytes | None = None) -> None:
        """Send bytes as they are (no validation): for tools and tests."""
        await self.producer.send_and_wait(self.topic, value=value, key=key)


class SyncUsagePublisher:
    """Blocking publisher for code without an event loop; runs one in a daemon thread."""

    def __init__(self, bootstrap: str | KafkaConnection | None = None, **options: Any
                 ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="prsm-publisher")
        self._thread.start()
        self._async = UsagePublisher(bootstrap, **options)
        try:
            self._call(self._async.start())
        except BaseException:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            raise

    def _call(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result()

    def publish(self, event: EventLike) -> None:
        self._call(self._async.publish(event))

    def publish_many(self, events: Iterable[EventLike]) -> int:
        return int(self._call(self._async.publish_many(list(events))))

    def close(self) -> None:
        if self._loop.is_running():
            self._call(self._async.stop())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    def __enter__(self) -> SyncUsagePublisher:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
