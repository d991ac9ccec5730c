"""A stand-in for the worker's producer (Faust's, and the aiokafka producer it starts) that
records what is sent, batch by batch, and fails the delivery of chosen keys."""

from __future__ import annotations

import asyncio
from typing import Any

import faust

Sent = tuple[str, bytes | None, bytes | None, int]
"""A record as sent: topic, key, value, partition."""


class FakeBatch:
    """aiokafka's BatchBuilder: takes records until ``capacity`` bytes, and any first one."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.records: list[tuple[bytes | None, bytes | None]] = []
        self.headers: list[Any] = []
        self.size = 0

    def append(self, *, key: bytes | None, value: bytes | None, timestamp: Any,
               headers: Any = ()) -> Any:
        size = len(key or b"") + len(value or b"")
        if self.records and self.size + size > self.capacity:
            return None
        self.records.append((key, value))
        self.headers.append(list(headers))
        self.size += size
        return object()


class FakeProducer:
    """Faust's producer and the aiokafka producer in one. ``sent`` lists every record;
    ``calls`` each batch handed over (``("batch", n)``); ``fail`` names keys
    whose delivery fails (with everything in their batch); ``hold`` keeps deliveries
    pending in ``pending`` until a test completes them."""

    partitioner = None

    def __init__(self, partitions: int = 4, capacity: int = 16384) -> None:
        self.partitions = partitions
        self.capacity = capacity
        self.sent: list[Sent] = []
        self.headers: dict[bytes | None, list[Any]] = {}
        """Key -> the headers of the last record sent with it."""
        self.calls: list[tuple[str, int]] = []
        self.fail: set[bytes] = set()
        self.hold = False
        self.pending: list[asyncio.Future[None]] = []

    def _ensure_producer(self) -> FakeProducer:
        return self

    def create_batch(self) -> FakeBatch:
        return FakeBatch(self.capacity)

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(self.partitions))

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int
                         ) -> asyncio.Future[None]:
        self.calls.append(("batch", len(batch.records)))
        self.sent += [(topic, key, value, partition) for key, value in batch.records]
        self.headers.update((key, h) for (key, _), h in zip(batch.records, batch.headers,
                                                             strict=True))
        return self._delivery([key for key, _ in batch.records])

    def _delivery(self, keys: list[bytes | None]) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.hold:
            self.pending.append(done)
        elif any(key in self.fail for key in keys):
            done.set_exception(RuntimeError("not delivered"))
        else:
            done.set_result(None)
        return done


def app_with(producer: FakeProducer, name: str = "fake-producer-test", **conf: Any
             ) -> faust.App:
    app = faust.App(name, broker="kafka://127.0.0.1:1", autodiscover=False, **conf)
    app.producer = producer  # type: ignore[assignment]
    # as a worker in a steady group: flowing, tables recovered (streams.fencing)
    app.flow_control.resume()
    app.tables.recovery.completed.set()  # type: ignore[attr-defined]
    return app
