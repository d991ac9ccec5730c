"""Every use of aiokafka beyond its documented API, in one place to check on an upgrade
(tested against the pinned version in ``tests/unit/kafka/test_aiokafka_compat.py``).

- ``cluster_metadata``: a consumer's own metadata covers only its subscriptions, so
  ``partitions_for_topic`` does not see a topic that is only assigned; fresh metadata of
  every topic comes from the consumer's client (``AIOKafkaConsumer._client``, private).
- ``open_connection``: one connection with the client's TLS and SASL settings
  (``aiokafka.conn.create_conn``, public name, undocumented), so that a refused connection
  says why: ``AIOKafkaClient.bootstrap`` only logs the cause and raises a generic error.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.cluster import ClusterMetadata
from aiokafka.conn import create_conn

__all__ = ["cluster_metadata", "open_connection"]


async def cluster_metadata(consumer: AIOKafkaConsumer) -> ClusterMetadata:
    """Fresh metadata of every topic, through the consumer's client."""
    cluster: ClusterMetadata = await consumer._client.fetch_all_metadata()
    return cluster


async def open_connection(host: str, port: int, **client_args: Any) -> Any:
    """An open connection to one broker (TLS handshake and SASL done); close it after use.
    ``client_args``: ``KafkaConnection.client_args()`` without the bootstrap servers."""
    return await create_conn(host, port, **client_args)
