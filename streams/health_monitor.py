"""The worker's view of its own health: broker reachability, stalled partitions, quiet logs.

A timer probes the broker (a metadata request, on one client kept while the broker answers:
``BrokerProbe``) and, while the
broker answers and no rebalance runs, asks each in-order agent's ``PartitionProgress`` for
partitions stalled longer than PRSM_STALL_AFTER_S. ``/health`` reads the result (it never
waits on the broker itself). ``install_log_limiter`` puts a ``RepeatLimiter`` on the root
handlers so that a broker outage costs a few log lines, not thousands a second.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError
from aiokafka.protocol.metadata import MetadataRequest

from prsm_events.kafka.connection import KafkaConnection
from prsm_events.operations.health import Stall
from prsm_events.operations.log_limits import RepeatLimiter
from prsm_events.settings import Settings
from streams.partition_progress import PartitionProgress

__all__ = ["BrokerProbe", "HealthMonitor", "install_log_limiter"]

log = logging.getLogger("prsm.health")


def install_log_limiter(logger: logging.Logger, interval_s: float) -> list[RepeatLimiter]:
    """Rate-limit repeated warnings and errors on every handler of ``logger`` (a filter of
    its own on each: a record passes every handler's filter, and must count once in each)."""
    limiters = []
    for handler in logger.handlers:
        limiter = RepeatLimiter(interval_s)
        handler.addFilter(limiter)
        limiters.append(limiter)
    return limiters


class BrokerProbe:
    """Whether a broker answers a metadata request (no topics) within ``timeout_s``, asked on
    one client kept between probes: a connection (with its TLS and SASL handshakes) opened
    once while the broker answers, not one every probe. A probe that fails closes the client;
    the next bootstraps a new one from the bootstrap servers."""

    def __init__(self, kafka: KafkaConnection, timeout_s: float) -> None:
        self.kafka = kafka
        self.timeout_s = timeout_s
        self.clients = 0
        """Clients bootstrapped so far."""
        self._client: AIOKafkaClient | None = None

    async def answers(self) -> bool:
        try:
            await asyncio.wait_for(self._ask(), self.timeout_s)
            return True
        except (KafkaError, OSError, TimeoutError):
            await self.close()
            return False

    async def _ask(self) -> None:
        if self._client is None:
            client = AIOKafkaClient(**self.kafka.client_args(),
                                    request_timeout_ms=int(self.timeout_s * 1000))
            self._client = client
            self.clients += 1
            await client.bootstrap()
            return  # bootstrapping asked for the metadata
        node = self._client.get_random_node()
        if node is None:
            raise KafkaError("no broker in the cluster metadata")
        await self._client.send(node, MetadataRequest([]))

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()


class HealthMonitor:
    def __init__(self, settings: Settings, trackers: Sequence[PartitionProgress]) -> None:
        self.settings = settings
        self.trackers = trackers
        self.broker_down_since: float | None = None
        self.stalls: list[Stall] = []
        self.probe = BrokerProbe(settings.kafka, timeout_s=5.0)

    def broker_down_s(self, now: float) -> float | None:
        return None if self.broker_down_since is None else now - self.broker_down_since

    async def observe(self, steady: bool) -> None:
        """Probe the broker; if it answers and the worker is steady, look for stalls."""
        timeout = self.probe.timeout_s
        if await self.probe.answers():
            if self.broker_down_since is not None:
                log.warning("Kafka broker answers again after %.0fs",
                            time.monotonic() - self.broker_down_since)
            self.broker_down_since = None
        elif self.broker_down_since is None:
            self.broker_down_since = time.monotonic()
            log.error("%s does not answer", self.settings.kafka.describe())
        if self.broker_down_since is not None or not steady:
            self.stalls = []
            return
        try:
            found = await asyncio.wait_for(asyncio.gather(
                *(t.stalls(self.settings.stall_after_s) for t in self.trackers)), timeout)
        except (KafkaError, TimeoutError) as exc:
            log.warning("could not look for stalled partitions: %r", exc)
            return  # the broker went away meanwhile: the next probe says so
        self.stalls = [s for per_topic in found for s in per_topic]
