"""Integration fixtures: one real Kafka broker per test process, workers per test.

Topic names and consumer groups carry ``RUN`` (fresh per session), so that the tests, which
read whole topics, find only their own records also on a broker that earlier runs used
(``PRSM_TEST_KAFKA_BOOTSTRAP``)."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import random
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from prsm_events.cli.worker_process import WorkerProcess
from prsm_events.kafka.dev_broker import LocalBroker
from prsm_events.settings import Settings

pytestmark = pytest.mark.integration
T = TypeVar("T")
RUN = uuid.uuid4().hex[:6]
"""This session's mark on topic prefixes and consumer groups."""


def unique(name: str) -> str:
    """``name`` marked with this session's ``RUN``."""
    return f"{name}-{RUN}"


CLAIMS = Path(tempfile.gettempdir()) / "prsm-test-ports-{}".format(
    os.environ.get("PYTEST_XDIST_TESTRUNUID", RUN))
"""Ports handed out in this run, one empty file each, shared by its test processes
(``make test`` runs the integration tests in two): a port free when one process looks can
be handed to the other before the first binds it, unless each port is claimed once."""


CLAIMED: list[int] = []
"""The ports this process claimed."""


def free_port(pairs: bool = False, count: int = 1) -> int:
    """A free TCP port, and the next ones too: one (``pairs``) or ``count - 1``; no other
    test process of this run is handed any of them. Below the kernel's ephemeral ports: a
    port left unbound for a while (a broker stopped, then started again) is never handed to
    an outgoing connection meanwhile, which would keep the broker from binding it again."""
    count = max(count, 2 if pairs else 1)
    CLAIMS.mkdir(exist_ok=True)
    low, high = LISTEN_PORTS
    for _ in range(1000):
        port = random.randrange(low, high - count)
        if all(_free(port + i) for i in range(count)) and _claim(port, count):
            return port
    raise RuntimeError(f"no {count} free ports in a row in {low}-{high}")


def _listen_ports() -> tuple[int, int]:
    """Where ``free_port`` looks: from 20000 up to the first ephemeral port (Linux's
    ``ip_local_port_range``, else IANA's 49152)."""
    try:
        first = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        first = 49152
    if first < 21000:
        raise RuntimeError(f"the ephemeral ports start at {first}: leave 20000-21000 for tests")
    return 20000, first


LISTEN_PORTS = _listen_ports()


def _claim(port: int, count: int) -> bool:
    claimed = []
    for p in range(port, port + count):
        try:
            os.close(os.open(CLAIMS / str(p), os.O_CREAT | os.O_EXCL))
        except FileExistsError:  # another test process has it: give back what was taken
            for q in claimed:
                (CLAIMS / str(q)).unlink()
            return False
        claimed.append(p)
    if not CLAIMED:
        atexit.register(_give_back)
    CLAIMED.extend(claimed)
    return True


def _give_back() -> None:
    """At this process's exit (its brokers and workers are stopped), its claims go, and the
    folder with the last of them."""
    for port in CLAIMED:
        (CLAIMS / str(port)).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        CLAIMS.rmdir()


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address of the real broker: PRSM_TEST_KAFKA_BOOTSTRAP, or a local one."""
    existing = os.environ.get("PRSM_TEST_KAFKA_BOOTSTRAP")
    if existing:
        yield existing
        return
    home = tmp_path_factory.mktemp("broker")
    if "PRSM_TEST_HOME" in os.environ:  # one broker a test process, each in its own folder
        home = Path(os.environ["PRSM_TEST_HOME"]) / os.environ.get("PYTEST_XDIST_WORKER", "main")
    broker = LocalBroker(home, free_port(pairs=True))
    bootstrap = broker.start()
    yield bootstrap
    broker.stop()


class WorkerHandle:
    def __init__(self, name: str, kafka: str, home: Path, env: dict[str, str] | None = None,
                 **overrides: Any) -> None:
        self.name = name
        fields: dict[str, Any] = {
            "home": home, "kafka_bootstrap": kafka, "topic_prefix": f"{unique(name)}.",
            "app_id": unique(name),
            "web_port": free_port(), "partitions": 3, "batch_within_s": 0.05,
            "sink_retry_max_s": 1.0,
        }
        self.settings = Settings(**{**fields, **overrides})
        loglevel = os.environ.get("PRSM_TEST_WORKER_LOGLEVEL", "warning")
        self.process = WorkerProcess(self.settings, home / f"worker-{name}.log",
                                     {"PRSM_LOGLEVEL": loglevel, **(env or {})})

    def start(self) -> WorkerHandle:
        self.process.start()
        return self

    def stop(self) -> None:
        self.process.stop()

    def kill(self) -> None:
        assert self.process.proc is not None
        self.process.proc.kill()
        self.process.proc.wait()

    def get(self, path: str) -> dict:
        return self.process.get(path)

    def topic(self, name: str) -> str:
        return self.settings.topic(name)

    def processed(self) -> int:
        s = self.get("/stats")
        return s["accepted"] + s["dead_lettered"] + s["duplicates"]

    def spend(self, scope: str, window: str = "total") -> dict:
        rows = self.spend_answer(f"scope={scope}&window={window}")["rows"]
        return rows[0] if rows else {"cost_usd": 0.0, "events": 0}

    def spend_answer(self, query: str = "", timeout: float = 60.0) -> dict:
        """``GET /spend?query`` once the worker answers it: it answers 503 while a
        rebalance or a table recovery is under way."""
        return self.process.get_steady(f"/spend?{query}", timeout)

    def budgets(self, timeout: float = 60.0) -> list[dict]:
        """The budgets of ``GET /budgets`` once the worker answers it (503 as ``/spend``)."""
        return self.process.get_steady("/budgets", timeout)["budgets"]

    def report(self, by: str) -> list[dict]:
        return self.get(f"/reports/spend?by={by}")["rows"]

    def stored(self, by: str, events: int, timeout: float = 60.0) -> list[dict]:
        """The spend report once ClickHouse holds at least ``events`` events: the sink writes
        them after the tables count them (``streams.store_sink``)."""
        wait_until(lambda: sum(r["events"] for r in self.report(by)) >= events, timeout,
                   what=f"{events} events in ClickHouse", details=lambda: self.get("/stats"))
        return self.report(by)


def module_worker(name: str, **overrides: Any) -> Any:
    """A module-scoped fixture: one worker ``name`` (``overrides``: Settings fields) shared by
    a test module. Use as ``worker = module_worker("dec", reservation_ttl_s=600.0)``."""

    @pytest.fixture(scope="module")
    def worker(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerHandle]:
        handle = WorkerHandle(name, kafka, Path(tmp_path_factory.mktemp(name)), **overrides)
        handle.start()
        yield handle
        handle.stop()

    return worker


@pytest.fixture
def start_worker(kafka: str, tmp_path: Path) -> Iterator[Callable[..., WorkerHandle]]:
    started: list[WorkerHandle] = []

    def start(name: str, home: Path | None = None, **overrides: Any) -> WorkerHandle:
        """A worker named ``name``; ``overrides`` are Settings fields."""
        handle = WorkerHandle(name, kafka, home or tmp_path / name, **overrides)
        started.append(handle)
        return handle.start()

    yield start
    for handle in started:  # all stop at once, as a deployment's would
        handle.process.terminate()
    for handle in started:
        handle.stop()


def wait_until(
    predicate: Callable[[], bool], timeout: float = 60.0, what: str = "",
    details: Callable[[], object] | None = None,
) -> None:
    """Poll until predicate() holds; on timeout the message carries details() (e.g. stats)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.25)
    extra = ""
    if details is not None:
        try:
            extra = f"; state: {details()}"
        except OSError as exc:
            extra = f"; state unavailable: {exc}"
    raise AssertionError(f"timed out waiting for {what or predicate}{extra}")


def settled(workers, partitions: int = 6) -> None:
    """Wait until the group has settled: every worker ready, the partitions split among
    them (traffic during a rebalance: ``test_a_global_budget_holds_through_a_rebalance_...``)."""
    def split() -> bool:
        owned = [w.get("/health") for w in workers]
        parts = [p for h in owned for p in h["partitions"]]
        return all(h["ready"] for h in owned) and sorted(parts) == list(range(partitions))
    wait_until(split, timeout=90, what="the group settled", details=lambda: [
        (w.get("/health")["ready"], w.get("/health")["partitions"]) for w in workers])


def union_totals(workers, partitions: int = 6) -> tuple[int, float] | None:
    """Events and cost in the spend tables of all ``workers`` together (each serves the
    tenants of its own partitions), read in one consumer generation whose partitions they
    own once each; None while a rebalance is under way (a worker answers 503, or the
    answers are of two generations or leave a partition out)."""
    answers = [w.get("/spend?window=total") for w in workers]
    if not all("rows" in a for a in answers) or len({a["generation"] for a in answers}) != 1:
        return None
    if sorted(p for a in answers for p in a["partitions"]) != list(range(partitions)):
        return None
    tenants = [r for a in answers for r in a["rows"] if "/" not in r["scope"]]
    return sum(r["events"] for r in tenants), sum(r["cost_usd"] for r in tenants)


def union_counted(workers, events: int, what: str, timeout: float = 180.0,
                  partitions: int = 6) -> tuple[int, float]:
    """``union_totals`` of ``workers`` once it holds at least ``events`` events."""
    counted: list[tuple[int, float]] = []

    def enough() -> bool:
        union = union_totals(workers, partitions)
        if union is not None:
            counted.append(union)
        return union is not None and union[0] >= events

    wait_until(enough, timeout, what=what,
               details=lambda: (counted[-1:], [w.get("/stats") for w in workers]))
    return counted[-1]


def publish_global_budget(workers: list[WorkerHandle], limit_usd: float) -> None:
    """A global day budget of ``limit_usd``, the workers' only one, once each has read it and
    the group has settled."""
    from prsm_events.accounting.budgets import Budget
    from prsm_events.kafka.config_topics import budget_record
    from prsm_events.kafka.config_topics import publish as publish_config

    run(publish_config(workers[0].settings, "budgets", [budget_record(
        Budget(scope="global", period="day", limit_usd=limit_usd))]))
    wait_until(lambda: all(w.get("/health")["budgets"] == 1 for w in workers),
               what="every worker read the budget")
    settled(workers)


async def decide_in_steps(settings: Settings, requests: list[Any], step: int,
                          pause_s: float = 0.0) -> None:
    """A decision for each of ``requests`` from four ``DecisionClient``s, ``step`` at once
    (a steady stream, not one burst), ``pause_s`` apart; a request deferred while allotment
    moves to its partition (``awaiting_allotment``) is asked again after its
    ``retry_after_s``, as a gateway would."""
    from prsm_events.sdk.decision_client import DecisionClient

    clients = [DecisionClient(settings, timeout_s=120.0) for _ in range(4)]
    for c in clients:
        await c.start()

    async def decide(i: int, request: Any) -> None:
        while True:
            d = await clients[i % 4].decide(request)
            if d.reason.code != "awaiting_allotment":
                return
            await asyncio.sleep(d.retry_after_s or 0.25)

    try:
        for start in range(0, len(requests), step):
            await asyncio.gather(*(decide(i, r) for i, r in
                                   enumerate(requests[start:start + step], start)))
            await asyncio.sleep(pause_s)
    finally:
        for c in clients:
            await c.stop()


def answers_and_admitted(bootstrap: str, workers: list[WorkerHandle]
                         ) -> tuple[dict[str, list[dict]], float]:
    """Every decision on the topic by request, and what they admitted: a request answered
    twice (re-read by the partition's next owner) holds one reservation, its first
    admission's."""
    import orjson

    answers: dict[str, list[dict]] = {}
    for record in run(read_to_end(bootstrap, workers[0].topic("decisions"))):
        doc = orjson.loads(record.value)
        answers.setdefault(doc["request_id"], []).append(doc)
    admitted = sum(next((d["est_cost_usd"] for d in ds if d["action"] in ("allow", "route")),
                        0.0) for ds in answers.values())
    return answers, admitted


def global_budget_held(workers: list[WorkerHandle], admitted: float) -> None:
    """Every worker's figures of the one (global) budget come to ``admitted`` (its own
    partitions' reservations and what the others published), and no partition holds more
    than its allotment (the whole could be within the limit while one is not)."""
    wait_until(lambda: all(abs(w.budgets()[0]["reserved_usd"] - admitted) < 1e-9
                           for w in workers), timeout=60,
               what="every worker holds every admitted request", details=lambda: (
                   admitted, [w.budgets()[0] for w in workers]))
    parts = [part for w in workers for part in w.budgets()[0]["partitions"]]
    over = [part for part in parts if part["taken_usd"] > part["allotment_usd"] + 1e-9]
    assert not over, over


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def read_to_end(bootstrap: str, topic: str, timeout_s: float = 30.0) -> list[Any]:
    """Every record on ``topic``, read up to the end offsets it has now."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from prsm_events.kafka.compacted_view import wait_for_partitions

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    out: list[Any] = []
    try:
        tps = [TopicPartition(topic, p) for p in await wait_for_partitions(consumer, topic)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        deadline = asyncio.get_running_loop().time() + timeout_s
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"could not read {topic} to its end in {timeout_s}s")
            for records in (await consumer.getmany(timeout_ms=500)).values():
                out.extend(records)
    finally:
        await consumer.stop()
    return out


async def set_topic_config(bootstrap: str, topic: str, name: str, value: str) -> str:
    """Change one config of a topic behind prsm's back (Kafka's AlterConfigs: the topic's
    other overrides go back to the broker's defaults); return its value before, once the
    broker reports the new one."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    resource = ConfigResource(ConfigResourceType.TOPIC, topic)

    async def current() -> str:
        described = await admin.describe_configs([resource])
        return str({e[0]: e[1] for e in described[0].resources[0][4]}[name])

    try:
        before = await current()
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                                  configs={name: value})])
        for _ in range(100):  # config changes propagate through the metadata log
            if await current() == value:
                return before
            await asyncio.sleep(0.1)
        raise AssertionError(f"the broker never reported {name}={value} for {topic}")
    finally:
        await admin.close()


def send_raw(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes | None]],
             max_request_size: int = 2_000_000) -> None:
    """Send (key, value) pairs as they are, one at a time, each acknowledged by the broker
    (a producer that allows records larger than the worker's limit)."""
    from aiokafka import AIOKafkaProducer

    async def go() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                    max_request_size=max_request_size)
        await producer.start()
        try:
            for key, value in messages:
                await producer.send_and_wait(topic, value, key=key)
        finally:
            await producer.stop()

    run(go())


@contextmanager
def clickhouse_held(dsn: str) -> Iterator[None]:
    """Another process holds the embedded ClickHouse data directory of ``dsn`` meanwhile: a
    worker's store cannot open it, exactly as when a ClickHouse server is down."""
    import subprocess
    import sys

    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, clickhouse_connect; c = clickhouse_connect.get_client(dsn=sys.argv[1]);"
         " print('locked', flush=True); sys.stdin.read()", dsn],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"locked"
        yield
    finally:
        assert holder.stdin is not None
        holder.stdin.close()  # ClickHouse comes back
        holder.wait(timeout=30)
