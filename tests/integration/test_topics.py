"""`prsm topics create` on the real broker: creates, then reports unchanged, then repairs drift."""

from __future__ import annotations

import asyncio

import pytest

from prsm_events.kafka.admin import ensure_topics
from prsm_events.kafka.connection import KafkaConnection
from prsm_events.kafka.topics import topic_specs
from tests.integration.conftest import run, set_topic_config, unique

pytestmark = pytest.mark.integration


def test_topics_are_created_idempotently_and_drift_is_repaired(kafka):
    prefix = f"{unique('it-topics')}."
    specs = topic_specs(prefix, 3)
    first = asyncio.run(ensure_topics(KafkaConnection(kafka), specs))
    assert {c.action for c in first} == {"created"} and len(first) == 12
    second = asyncio.run(ensure_topics(KafkaConnection(kafka), specs))
    assert {c.action for c in second} == {"unchanged"}
    run(set_topic_config(kafka, f"{prefix}usage", "retention.ms", "1000"))
    third = asyncio.run(ensure_topics(KafkaConnection(kafka), specs))
    altered = [c for c in third if c.action == "altered"]
    assert [c.topic for c in altered] == [f"{prefix}usage"]
    assert "retention.ms=604800000" in altered[0].detail
    more = topic_specs(prefix, 6)
    changes = asyncio.run(ensure_topics(KafkaConnection(kafka), more))
    warnings = [c for c in changes if c.action == "warning"]
    assert len(warnings) == 10  # every per-tenant topic; partitions are never changed


def test_topics_created_a_moment_ago_are_waited_for_until_each_partition_has_a_leader(kafka):
    from aiokafka.admin import AIOKafkaAdminClient

    from prsm_events.errors import BrokerError
    from prsm_events.kafka.admin import wait_for_leaders
    from prsm_events.kafka.topics import TopicSpec

    prefix = f"{unique('it-leaders')}."
    specs = [TopicSpec(f"{prefix}{name}", 6, {"cleanup.policy": "compact"})
             for name in ("a-changelog", "b-changelog", "c-changelog")]

    async def created_then_waited() -> list[dict]:
        await ensure_topics(KafkaConnection(kafka), specs)
        await wait_for_leaders(KafkaConnection(kafka), [s.name for s in specs])
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
        await admin.start()
        try:
            return await admin.describe_topics([s.name for s in specs])
        finally:
            await admin.close()

    described = run(created_then_waited())
    assert sorted(t["topic"] for t in described) == [s.name for s in specs]
    assert all(len(t["partitions"]) == 6 and all(p["leader"] >= 0 for p in t["partitions"])
               for t in described)
    with pytest.raises(BrokerError, match="without a leader after 1s: not a topic!"):
        run(wait_for_leaders(KafkaConnection(kafka), ["not a topic!"], timeout_s=1.0))


def test_without_align_only_missing_topics_are_created_and_existing_ones_left_alone(kafka):
    prefix = f"{unique('it-noalign')}."
    specs = topic_specs(prefix, 3)
    asyncio.run(ensure_topics(KafkaConnection(kafka), specs[:2]))
    run(set_topic_config(kafka, f"{prefix}usage", "retention.ms", "1000"))
    changes = asyncio.run(ensure_topics(KafkaConnection(kafka), specs[:3], align=False))
    assert [(c.topic, c.action) for c in changes] == [(specs[2].name, "created")]
    # the drift stays (the worker's start refuses a changelog that takes smaller records
    # rather than change it)
    aligned = asyncio.run(ensure_topics(KafkaConnection(kafka), specs[:3]))
    assert [c.topic for c in aligned if c.action == "altered"] == [f"{prefix}usage"]
