"""The broker probe keeps one client while the broker answers and starts afresh after a
probe that failed."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError

from prsm_events.kafka.connection import KafkaConnection
from streams import health_monitor
from streams.health_monitor import BrokerProbe


class FakeClient:
    made: list[FakeClient] = []
    down = False

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.asked: list[Any] = []
        self.closed = False
        FakeClient.made.append(self)

    async def bootstrap(self) -> None:
        if FakeClient.down:
            raise KafkaConnectionError("no broker")

    def get_random_node(self) -> int:
        return 1

    async def send(self, node: int, request: Any) -> None:
        if FakeClient.down:
            raise KafkaConnectionError("connection lost")
        self.asked.append((node, request))

    async def close(self) -> None:
        self.closed = True


async def test_one_client_while_the_broker_answers_and_a_new_one_after_a_failure(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health_monitor, "AIOKafkaClient", FakeClient)
    FakeClient.made, FakeClient.down = [], False
    probe = BrokerProbe(KafkaConnection("b1:9092"), timeout_s=1.0)
    assert [await probe.answers() for _ in range(3)] == [True, True, True]
    assert len(FakeClient.made) == 1 and len(FakeClient.made[0].asked) == 2
    assert FakeClient.made[0].kwargs["bootstrap_servers"] == "b1:9092"

    FakeClient.down = True  # the broker goes away: the kept client is dropped
    assert await probe.answers() is False
    assert FakeClient.made[0].closed
    assert await probe.answers() is False  # each probe tries a fresh bootstrap meanwhile
    assert len(FakeClient.made) == 2 and FakeClient.made[1].closed

    FakeClient.down = False
    assert [await probe.answers() for _ in range(2)] == [True, True]
    assert len(FakeClient.made) == 3 and not FakeClient.made[2].closed
    assert probe.clients == 3
    await probe.close()
    assert FakeClient.made[2].closed
