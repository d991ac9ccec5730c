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
    assert {c.action for c in first} == {"created"} and len(first) == 11
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
    assert len(warnings) == 9  # every per-tenant topic; partitions are never changed
