"""`prsm topics create` on the real broker: creates, then reports unchanged, then repairs drift."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from prsm_events.kafka.admin import ensure_topics
from prsm_events.kafka.connection import KafkaConnection
from prsm_events.kafka.topics import topic_specs
from tests.integration.conftest import unique

pytestmark = pytest.mark.integration


async def set_retention(bootstrap: str, topic: str, value: str) -> None:
    """Change a topic's retention behind prsm's back; return once the broker reports it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    resource = ConfigResource(ConfigResourceType.TOPIC, topic)
    try:
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                                  configs={"retention.ms": value})])
        for _ in range(100):  # config changes propagate through the metadata log
            described = await admin.describe_configs([resource])
            entries = {e[0]: e[1] for e in described[0].resources[0][4]}
            if entries["retention.ms"] == value:
                return
            await asyncio.sleep(0.1)
        raise AssertionError("the broker never reported the changed retention")
    finally:
        await admin.close()


def test_topics_are_created_idempotently_and_drift_is_repaired(kafka):
    prefix = f"{unique('it-topics')}."
    specs = topic_specs(prefix, 3)
    first = asyncio.run(ensure_topics(KafkaConnection(kafka), specs))
    assert {c.action for c in first} == {"created"} and len(first) == 9
    second = asyncio.run(ensure_topics(KafkaConnection(kafka), specs))
    assert {c.action for c in second} == {"unchanged"}
    asyncio.run(set_retention(kafka, f"{prefix}usage", "1000"))
    third = asyncio.run(ensure_topics(KafkaConnection(kafka), specs))
    altered = [c for c in third if c.action == "altered"]
    assert [c.topic for c in altered] == [f"{prefix}usage"]
    assert "retention.ms=604800000" in altered[0].detail
    more = topic_specs(prefix, 6)
    changes = asyncio.run(ensure_topics(KafkaConnection(kafka), more))
    warnings = [c for c in changes if c.action == "warning"]
    assert len(warnings) == 8  # every per-tenant topic; partitions are never changed
