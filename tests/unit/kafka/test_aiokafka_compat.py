"""The aiokafka internals the project uses exist on the pinned aiokafka."""

from __future__ import annotations

import asyncio
import inspect

from aiokafka import AIOKafkaConsumer
from aiokafka.conn import create_conn

from prsm_events.kafka.aiokafka_compat import cluster_metadata


def test_the_consumer_client_and_connection_factory_exist() -> None:
    async def build() -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1")
        assert hasattr(consumer._client, "fetch_all_metadata")
        assert inspect.iscoroutinefunction(consumer._client.fetch_all_metadata)
        assert inspect.iscoroutinefunction(cluster_metadata)

    asyncio.run(build())
    accepted = inspect.signature(create_conn).parameters
    for name in ("ssl_context", "security_protocol", "sasl_mechanism", "sasl_plain_username",
                 "sasl_plain_password", "request_timeout_ms"):
        assert name in accepted, name
