"""Provision topics on a Kafka cluster (aiokafka admin client); idempotent, reports changes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaConnectionError, KafkaError

from prsm_events.errors import BrokerError, ConfigError
from prsm_events.kafka.connection import (
    KafkaAccessError,
    KafkaConnection,
    probe_connection,
    quiet_aiokafka,
)
from prsm_events.kafka.topics import CO_PARTITIONED, TopicSpec, topic_specs
from prsm_events.settings import Settings

__all__ = [
    "TopicChange",
    "check_message_limits",
    "ensure_topics",
    "provision_topics",
    "require_co_partitioned",
    "wait_for_broker",
]

_DYNAMIC_TOPIC_CONFIG = 1  # DescribeConfigs config_source of a per-topic override
_TOPIC_ALREADY_EXISTS = 36


@dataclass(frozen=True)
class TopicChange:
    topic: str
    action: str  # created | altered | unchanged | warning
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.action:9} {self.topic}" + (f"  ({self.detail})" if self.detail else "")


async def wait_for_broker(kafka: KafkaConnection, timeout_s: float = 60.0) -> None:
    """Return once the cluster answers a metadata request; raise BrokerError after timeout,
    and KafkaAccessError at once when the cluster refuses our credentials or TLS."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    with quiet_aiokafka():  # connection-refused errors are expected here
        await _wait(kafka, loop, deadline)


async def _wait(kafka: KafkaConnection, loop: asyncio.AbstractEventLoop, deadline: float
                ) -> None:
    last: Exception | None = None
    while loop.time() < deadline:
        admin = AIOKafkaAdminClient(**kafka.client_args(), request_timeout_ms=5000)
        try:
            await admin.start()
            await admin.list_topics()
            return
        except (KafkaError, OSError) as exc:
            last = exc
        finally:
            await admin.close()
        try:  # refused access fails at once; only an unreachable cluster is waited for
            await probe_connection(kafka, timeout_s=5.0)
        except KafkaAccessError:
            raise
        except BrokerError:
            pass
        await asyncio.sleep(0.5)
    raise BrokerError(f"{kafka.describe()} did not answer in time: {last}")


async def ensure_topics(
    kafka: KafkaConnection, specs: Sequence[TopicSpec], replication_factor: int = 1,
    align: bool = True,
) -> list[TopicChange]:
    """Create missing topics and align configs of existing ones (``align``; else leave
    them as they are); never drops data.

    Partition counts are never changed (that would move tenants between partitions);
    a mismatch is reported as a warning.
    """
    async with _admin(kafka) as admin:
        return await _ensure(admin, specs, replication_factor, align)


@asynccontextmanager
async def _admin(kafka: KafkaConnection) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client, closed on exit; BrokerError when Kafka cannot be reached."""
    admin = AIOKafkaAdminClient(**kafka.client_args(), request_timeout_ms=15000)
    try:
        await admin.start()
    except KafkaConnectionError:
        await admin.close()
        await probe_connection(kafka)  # says why (refused access) when it can
        raise BrokerError(f"cannot reach {kafka.describe()}") from None
    try:
        yield admin
    finally:
        await admin.close()


async def _ensure(
    admin: AIOKafkaAdminClient, specs: Sequence[TopicSpec], replication_factor: int,
    align: bool = True,
) -> list[TopicChange]:
    existing = set(await admin.list_topics())
    changes: list[TopicChange] = []
    missing = [s for s in specs if s.name not in existing]
    if missing:
        resp = await admin.create_topics(
            [NewTopic(s.name, s.partitions, replication_factor, topic_configs=s.configs)
             for s in missing]
        )
        for topic, code, message in resp.topic_errors:
            if code not in (0, _TOPIC_ALREADY_EXISTS):
                raise BrokerError(f"cannot create topic {topic}: {message} (code {code})")
            changes.append(TopicChange(topic, "created"))
    present = [s for s in specs if s.name in existing] if align else []
    if not present:
        return changes
    described = {t["topic"]: t for t in await admin.describe_topics([s.name for s in present])}
    configs = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, s.name) for s in present]
    )
    current: dict[str, dict[str, tuple[str, int]]] = {}
    for response in configs:
        for _code, _msg, _type, name, entries in response.resources:
            current[name] = {e[0]: (e[1], e[3]) for e in entries}
    for spec in present:
        have = current.get(spec.name, {})
        differing = {k: v for k, v in spec.configs.items() if have.get(k, (None,))[0] != v}
        if differing:
            overrides = {k: v for k, (v, src) in have.items() if src == _DYNAMIC_TOPIC_CONFIG}
            overrides.update(spec.configs)
            await admin.alter_configs(
                [ConfigResource(ConfigResourceType.TOPIC, spec.name, configs=overrides)]
            )
            detail = ", ".join(f"{k}={v}" for k, v in sorted(differing.items()))
            changes.append(TopicChange(spec.name, "altered", detail))
        else:
            changes.append(TopicChange(spec.name, "unchanged"))
        count = len(described.get(spec.name, {}).get("partitions", []))
        if count != spec.partitions:
            changes.append(TopicChange(
                spec.name, "warning",
                f"has {count} partitions, expected {spec.partitions}; left as is",
            ))
    return changes


async def wait_for_leaders(kafka: KafkaConnection, topics: Sequence[str],
                           timeout_s: float = 60.0) -> None:
    """Return once the broker's metadata lists every one of ``topics`` with a leader for
    each partition; BrokerError after ``timeout_s``. A topic created a moment ago may not be
    in the metadata yet: a consumer group joined then is assigned without it (Faust's
    assignor skips a topic it cannot see, so a table's changelog goes unassigned)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    waiting = sorted(set(topics))
    async with _admin(kafka) as admin:
        while True:
            described = await admin.describe_topics(waiting)
            waiting = sorted(
                t["topic"] for t in described
                if t["error_code"] != 0 or not t["partitions"]
                or any(p["leader"] < 0 or p["error_code"] != 0 for p in t["partitions"]))
            if not waiting:
                return
            if loop.time() > deadline:
                raise BrokerError(f"topics without a leader after {timeout_s:.0f}s: "
                                  f"{', '.join(waiting)}")
            await asyncio.sleep(0.2)


async def check_message_limits(
    kafka: KafkaConnection, topics: Sequence[str], needed: int,
    setting: str = "PRSM_MAX_MESSAGE_BYTES",
) -> dict[str, int]:
    """Each existing topic's ``max.message.bytes`` (its own or the broker's default); raise
    BrokerError naming every topic that would refuse a record batch of ``needed`` bytes,
    so that a worker never starts with a producer allowed to send what a topic refuses
    (such a send fails on every retry and holds its partition)."""
    async with _admin(kafka) as admin:
        present = sorted(set(topics) & set(await admin.list_topics()))
        if not present:
            return {}
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in present])
    limits: dict[str, int] = {}
    for response in responses:
        for _code, _msg, _type, name, entries in response.resources:
            for entry in entries:
                if entry[0] == "max.message.bytes":
                    limits[name] = int(entry[1])
    short = {name: limit for name, limit in limits.items() if limit < needed}
    if short:
        listed = ", ".join(f"{name} ({limit})" for name, limit in sorted(short.items()))
        raise BrokerError(
            f"topics accept smaller records than the worker may write ({needed} bytes, from "
            f"{setting}): {listed}; raise their max.message.bytes (`prsm topics create` does "
            f"it for the prsm topics) or lower {setting}")
    return limits


def provision_topics(settings: Settings) -> list[TopicChange]:
    """Create or align every prsm topic of ``settings`` (what `prsm topics create` does)."""
    specs = topic_specs(settings.topic_prefix, settings.partitions,
                        settings.topic_max_message_bytes)
    return asyncio.run(ensure_topics(settings.kafka, specs, settings.replication_factor))


def require_co_partitioned(settings: Settings, changes: Sequence[TopicChange]) -> None:
    """Raise ConfigError when ``usage``, ``requests`` or ``decisions`` (named in ``changes``, as
    :func:`ensure_topics` reports them) has another partition count than PRSM_PARTITIONS: a
    worker reads a partition of each together and reads a partition's decisions back when it
    takes it over, so such topics would mix tenants' figures."""
    together = {settings.topic(name) for name in CO_PARTITIONED}
    off = [f"{c.topic} {c.detail}" for c in changes
           if c.action == "warning" and c.topic in together]
    if off:
        raise ConfigError(
            f"{', '.join(sorted(together))} must each have PRSM_PARTITIONS "
            f"({settings.partitions}) partitions: {'; '.join(off)}. Set PRSM_PARTITIONS "
            "to their count, or recreate them (docs/operations.md, Topics)")
