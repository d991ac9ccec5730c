"""Every client over SASL_SSL (SCRAM) and mutual TLS on a secured local broker with the
authorizer on, each role with exactly the ACLs of docs/operations.md; refused access fails at
once with a clear error; no secret is ever printed."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import secrets
import shlex
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from pydantic import SecretStr

from prsm_events.errors import BrokerError
from prsm_events.kafka.admin import ensure_topics, wait_for_broker
from prsm_events.kafka.connection import KafkaAccessError, KafkaConnection, probe_connection
from prsm_events.kafka.dev_broker import LocalBroker
from prsm_events.kafka.topics import topic_specs
from prsm_events.sdk.decision_client import DecisionClient
from prsm_events.sdk.publisher import UsagePublisher
from prsm_events.sdk.throttle_cache import ThrottleCache
from prsm_events.settings import Settings
from tests.factories import request, usage
from tests.integration.conftest import WorkerHandle, free_port, run, unique, wait_until
from tests.integration.test_ingest_pipeline import kcat

pytestmark = pytest.mark.integration
ROLES = ("service", "gateway", "operator", "worker")
DOCS = Path(__file__).parents[2] / "docs" / "operations.md"


@dataclasses.dataclass
class SecureCluster:
    broker: LocalBroker
    passwords: dict[str, SecretStr]
    prefix: str
    app_id: str

    def connection(self, role: str) -> KafkaConnection:
        return self.broker.user_connection(role, self.passwords[role])

    def env(self, role: str) -> dict[str, str]:
        """PRSM_* settings of a process that connects as ``role``."""
        kafka = self.connection(role)
        return {"PRSM_KAFKA_BOOTSTRAP": kafka.bootstrap,
                "PRSM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "PRSM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
                "PRSM_KAFKA_USERNAME": role,
                "PRSM_KAFKA_PASSWORD": self.passwords[role].get_secret_value(),
                "PRSM_KAFKA_CA_FILE": str(kafka.ca_file),
                "PRSM_TOPIC_PREFIX": self.prefix, "PRSM_APP_ID": self.app_id}

    def settings(self, role: str, **fields: Any) -> Settings:
        env = self.env(role)
        return Settings(**{**{k.removeprefix("PRSM_").lower(): v for k, v in env.items()},
                           **fields})

    def secrets(self) -> list[str]:
        return [p.get_secret_value() for p in self.passwords.values()] + [
            self.broker.admin_password().get_secret_value()]


def documented_acls(prefix: str, app_id: str) -> list[list[str]]:
    """The ``$ACL ...`` lines of docs/operations.md, with P and APP set."""
    block = DOCS.read_text().split('ACL="kafka-acls', 1)[1].split("```", 1)[0]
    lines = [ln for ln in block.splitlines() if ln.startswith("$ACL ")]
    assert len(lines) >= 8, "the ACL block of docs/operations.md was not found"
    return [shlex.split(ln.removeprefix("$ACL ").replace("${P}", prefix).replace("${APP}", app_id))
            for ln in lines]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureCluster]:
    port = free_port(count=3)
    broker = LocalBroker(tmp_path_factory.mktemp("secure-broker"), port, secure=True)
    broker.start()
    try:
        passwords = {role: SecretStr(secrets.token_urlsafe(12)) for role in ROLES}
        prefix, app_id = f"{unique('sec')}.", unique("sec")
        # each is a JVM of Kafka's own tools (a second or two to start): run them side by side
        with ThreadPoolExecutor(4) as pool:
            for _ in pool.map(lambda item: broker.add_user(*item), passwords.items()):
                pass
            for done in pool.map(lambda args: broker.tool("kafka-acls", "--add", *args),
                                 documented_acls(prefix, app_id)):
                assert done.returncode == 0, done.stderr
        yield SecureCluster(broker, passwords, prefix, app_id)
    finally:
        broker.stop()


def prsm(env: dict[str, str], *args: str, stdin: str | None = None
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "prsm_events", *args], input=stdin,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=120)


def test_each_role_works_over_scram_tls_with_the_documented_acls(
    cluster: SecureCluster, tmp_path: Path,
) -> None:
    admin = cluster.broker.connection
    run(ensure_topics(admin, topic_specs(cluster.prefix, 3)))  # as an operator would provision
    worker = WorkerHandle("sec", cluster.broker.bootstrap, tmp_path / "worker",
                          **{k: v for k, v in cluster.settings("worker").model_dump().items()
                             if k.startswith("kafka_")},
                          topic_prefix=cluster.prefix, app_id=cluster.app_id,
                          web_token=SecretStr("web-" + secrets.token_urlsafe(8)))
    worker.start()
    try:
        # operator, through the CLI: a hard budget the gateway's requests meet
        done = prsm(cluster.env("operator"), "budget", "set", "tenant:acme", "--period", "day",
                    "--limit", "0.5", "--hard")
        assert done.returncode == 0, done.stderr
        wait_until(lambda: any(b["scope"] == "tenant:acme"
                               for b in worker.budgets()), 30, "the budget")

        # service, through the SDK (async and sync), the CLI and kcat
        async def publish() -> None:
            async with UsagePublisher(cluster.connection("service"),
                                      topic=f"{cluster.prefix}usage") as pub:
                await pub.publish_many([usage(f"sdk-{i}") for i in range(20)])

        run(publish())
        from prsm_events.sdk.publisher import SyncUsagePublisher

        with SyncUsagePublisher(cluster.connection("service"),
                                topic=f"{cluster.prefix}usage") as sync_pub:
            sync_pub.publish(usage("sync-1"))
        done = prsm(cluster.env("service"), "publish", "--tenant", "acme", "--service", "cli",
                    "--model", "gpt-4o-mini", "--input-tokens", "10")
        assert done.returncode == 0, done.stderr
        event = usage("kcat-1").model_dump_json(exclude_none=True)
        ca = str(cluster.connection("service").ca_file)
        subprocess.run(
            [kcat(), "-b", cluster.broker.bootstrap, "-X", "security.protocol=SASL_SSL",
             "-X", "sasl.mechanisms=SCRAM-SHA-512", "-X", "sasl.username=service",
             "-X", f"sasl.password={cluster.passwords['service'].get_secret_value()}",
             "-X", f"ssl.ca.location={ca}", "-P", "-t", f"{cluster.prefix}usage", "-K", "\t"],
            input=f"acme\t{event}\n".encode(), check=True, timeout=30)
        wait_until(lambda: worker.get("/stats")["accepted"] == 23, 60, "23 events counted",
                   lambda: worker.get("/stats"))
        assert worker.spend("tenant:acme")["events"] == 23

        # gateway: a decision through DecisionClient, directives through ThrottleCache
        async def decide() -> tuple[str, str, int]:
            gateway = cluster.settings("gateway")
            async with ThrottleCache(gateway) as cache, DecisionClient(
                    gateway, timeout_s=30) as client:
                decision = await client.decide(request(model="gpt-4o-mini",
                                                       est_input_tokens=100))
                return decision.action.value, decision.source, len(cache.directives)

        action, source, _ = run(decide())
        assert (action, source) == ("allow", "worker")

        # a service may not write budgets (nor anything but usage)
        async def service_writes_budgets() -> None:
            producer = AIOKafkaProducer(**cluster.connection("service").client_args())
            await producer.start()
            try:
                await producer.send_and_wait(f"{cluster.prefix}budgets", b"{}",
                                             key=b"tenant:acme|day")
            finally:
                await producer.stop()

        with pytest.raises(KafkaError, match="TopicAuthorizationFailed"):
            run(service_writes_budgets())
        done = prsm(cluster.env("service"), "budget", "set", "tenant:acme", "--period", "day",
                    "--limit", "1000")
        assert done.returncode == 2 and "not authorized" in done.stderr.lower(), done.stderr
        assert "Traceback" not in done.stderr
        assert worker.budgets()[0]["limit_usd"] == 0.5

        # no secret anywhere the worker speaks or writes
        said = worker.process.log_path.read_text() + orjson.dumps(
            [worker.get("/health"), worker.get("/stats")]).decode()
        for secret in cluster.secrets():
            assert secret not in said
    finally:
        worker.stop()


def test_refused_access_fails_at_once_with_a_clear_error(
    cluster: SecureCluster, tmp_path: Path,
) -> None:
    wrong = dataclasses.replace(cluster.connection("service"), password=SecretStr("wrong-pw"))
    untrusted = dataclasses.replace(cluster.connection("service"), ca_file=None)

    async def start_publisher(kafka: KafkaConnection) -> None:
        async with UsagePublisher(kafka, topic=f"{cluster.prefix}usage"):
            pass

    with pytest.raises(KafkaAccessError, match="refused the credentials of 'service'"):
        run(start_publisher(wrong))
    with pytest.raises(KafkaAccessError, match="TLS certificate is not trusted"):
        run(start_publisher(untrusted))

    async def start_gateway() -> None:
        settings = cluster.settings("gateway", kafka_password=SecretStr("wrong-pw"))
        async with DecisionClient(settings):
            pass

    with pytest.raises(KafkaAccessError, match="refused the credentials of 'gateway'"):
        run(start_gateway())

    # the worker's first attempt decides: it exits with the reason, it does not wait 60 s
    with pytest.raises(KafkaAccessError):
        run(wait_for_broker(wrong, timeout_s=600))
    env = {**cluster.env("worker"), "PRSM_KAFKA_PASSWORD": "wrong-pw",
           "PRSM_HOME": str(tmp_path), "PRSM_WEB_PORT": str(free_port())}
    done = prsm(env, "worker")
    assert done.returncode == 2
    assert "refused the credentials of 'worker'" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    done = prsm({**cluster.env("service"), "PRSM_KAFKA_CA_FILE": ""}, "publish", "--tenant",
                "acme", "--service", "cli", "--model", "gpt-4o-mini", "--input-tokens", "1")
    assert done.returncode == 2 and "not trusted" in done.stderr, done.stderr
    for secret in cluster.secrets():
        assert secret not in done.stdout + done.stderr


def test_mutual_tls_and_every_sasl_mechanism(cluster: SecureCluster) -> None:
    tls = cluster.broker.certificates
    cert, key = tls.client("service")  # CN=service: the same principal, the same ACLs
    mtls = KafkaConnection(cluster.broker.tls_bootstrap, "SSL", ca_file=tls.ca_file,
                           cert_file=cert, key_file=key)

    async def publish(kafka: KafkaConnection) -> None:
        async with UsagePublisher(kafka, topic=f"{cluster.prefix}usage") as pub:
            await pub.publish(usage(f"mtls-{uuid.uuid4().hex[:6]}", tenant="mtls"))

    run(publish(mtls))
    without_cert = KafkaConnection(cluster.broker.tls_bootstrap, "SSL", ca_file=tls.ca_file)
    with pytest.raises(BrokerError):
        run(publish(without_cert))
    for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
        run(probe_connection(dataclasses.replace(cluster.connection("service"),
                                                 sasl_mechanism=mechanism)))
    run(probe_connection(dataclasses.replace(cluster.broker.connection, sasl_mechanism="PLAIN")))
    with pytest.raises(KafkaAccessError, match="refused the credentials"):
        # PLAIN users are the broker's own (admin); SCRAM users are not PLAIN users
        run(probe_connection(dataclasses.replace(cluster.connection("service"),
                                                 sasl_mechanism="PLAIN")))


def test_secured_broker_refuses_plaintext_clients(cluster: SecureCluster) -> None:
    plain = KafkaConnection(cluster.broker.bootstrap)
    with pytest.raises(BrokerError, match=re.escape(plain.describe())):
        run(asyncio.wait_for(probe_connection(plain, timeout_s=5), 30))


def test_dev_cli_adds_users_and_runs_the_admin_tools(cluster: SecureCluster) -> None:
    env = {"PRSM_HOME": str(cluster.broker.home), "PRSM_BROKER_PORT": str(cluster.broker.port)}
    listed = prsm(env, "dev", "acls", "--list", "--topic", f"{cluster.prefix}budgets")
    assert listed.returncode == 0, listed.stderr
    assert "User:operator" in listed.stdout and "User:service" not in listed.stdout
    password = secrets.token_urlsafe(12)
    done = prsm(env, "dev", "user", "auditor", "--password", password)
    assert done.returncode == 0, done.stderr
    assert password not in done.stdout + done.stderr
    run(probe_connection(cluster.broker.user_connection("auditor", SecretStr(password))))
    status = prsm(env, "dev", "status")
    assert "secure: running" in status.stdout and cluster.broker.bootstrap in status.stdout
