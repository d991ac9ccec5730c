"""Read and write the compacted config topics (budgets, catalog): the CLI's Kafka edge.

>>> budget_record(Budget(scope="tenant:acme", period="day", limit_usd=50))[0]
b'tenant:acme|day'
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    KafkaError,
    TopicAuthorizationFailedError,
)

from prsm_events.accounting.budgets import Budget, BudgetBook
from prsm_events.accounting.catalog import Catalog
from prsm_events.errors import BrokerError
from prsm_events.kafka.compacted_view import CompactedView, wait_for_partitions
from prsm_events.kafka.connection import KafkaAccessError, started
from prsm_events.settings import Settings

__all__ = [
    "budget_record",
    "publish",
    "read_budgets",
    "read_catalog",
    "tail_decisions",
]

CATALOG_KEY = b"catalog"


def budget_record(budget: Budget) -> tuple[bytes, bytes]:
    return budget.key.encode(), budget.model_dump_json().encode()


async def publish(settings: Settings, topic: str, records: list[tuple[bytes, bytes | None]]
                  ) -> None:
    """Send records (value None: a tombstone) and wait until the broker has them all."""
    producer = AIOKafkaProducer(**settings.kafka.client_args(), acks="all",
                                enable_idempotence=True)
    await started(producer, settings.kafka)
    try:
        for key, value in records:
            await producer.send_and_wait(settings.topic(topic), value, key=key)
    except (TopicAuthorizationFailedError, ClusterAuthorizationFailedError) as exc:
        raise KafkaAccessError(f"{settings.kafka.describe()} is not authorized to write "
                               f"{settings.topic(topic)}: {exc}") from None
    except KafkaError as exc:
        raise BrokerError(f"could not write {settings.topic(topic)}: {exc}") from None
    finally:
        await producer.stop()


async def _snapshot(settings: Settings, topic: str, apply: Any) -> None:
    view = CompactedView(settings.kafka, settings.topic(topic), apply)
    await view.start()
    try:
        await view.wait_caught_up(30.0)
    finally:
        await view.stop()


async def read_budgets(settings: Settings) -> BudgetBook:
    """The budgets in force: the budgets topic read to its end."""
    book = BudgetBook()

    def apply(key: bytes | None, value: bytes | None) -> None:
        # the worker dead-letters malformed records; a listing skips them
        with contextlib.suppress(ValueError):
            book.apply(key, value)

    await _snapshot(settings, "budgets", apply)
    return book


async def read_catalog(settings: Settings) -> Catalog | None:
    """The catalog last loaded on the catalog topic, or None (the worker's default)."""
    found: list[Catalog | None] = [None]

    def apply(key: bytes | None, value: bytes | None) -> None:
        found[0] = None if value is None else Catalog.from_json(value)

    await _snapshot(settings, "catalog", apply)
    return found[0]


async def tail_decisions(
    settings: Settings, *, from_beginning: bool, count: int | None, tenant: str | None,
    idle_timeout_s: float | None,
) -> Any:
    """Yield decisions (dicts) as they arrive on the decisions topic."""
    topic = settings.topic("decisions")
    consumer = AIOKafkaConsumer(**settings.kafka.client_args(), group_id=None,
                                enable_auto_commit=False, fetch_max_wait_ms=100)
    await started(consumer, settings.kafka)
    try:
        partitions = await wait_for_partitions(consumer, topic)
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        if from_beginning:
            await consumer.seek_to_beginning(*tps)
        else:
            await consumer.seek_to_end(*tps)
        seen = 0
        idle_since = datetime.now(UTC)
        while count is None or seen < count:
            batches = await consumer.getmany(timeout_ms=200)
            if not batches:
                idle = (datetime.now(UTC) - idle_since).total_seconds()
                if idle_timeout_s is not None and idle >= idle_timeout_s:
                    return
                await asyncio.sleep(0)
                continue
            idle_since = datetime.now(UTC)
            for records in batches.values():
                for record in records:
                    doc = orjson.loads(record.value) if record.value else None
                    if not isinstance(doc, dict):
                        continue
                    if tenant and doc.get("tenant") != tenant:
                        continue
                    yield doc
                    seen += 1
                    if count is not None and seen >= count:
                        return
    finally:
        await consumer.stop()
