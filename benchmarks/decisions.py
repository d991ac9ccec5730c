"""Request-to-decision latency and the sustained decision rate, against a raw echo floor.

In the same run, on the same broker, at each offered rate (default 100, 1,000, 5,000
requests/s for --seconds each, the two paths taking turns of --slice-s so that both see the
same seconds of the machine and the broker):
- floor: an aiokafka request/reply echo (client producer -> topic -> echo process's
  consumer+producer -> topic -> client consumer), the least any Kafka round trip costs;
- worker: ``prsm worker`` deciding each request against budgets (ledger, reservations,
  changelogs), the client being this script (producer + consumer, like DecisionClient).
Latency is taken by the client from send to receipt, after a warm-up (WARM_TURNS);
each turn waits for its answers before the next begins.
The maximum sustained rate is the rate at which a backlog of --flood requests is answered.

    python benchmarks/decisions.py --seconds 10

Uses PRSM_KAFKA_BOOTSTRAP when set, else starts a local broker under a temporary home (removed
after the run; kept, and named, when the run fails).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.harness import bench_broker, bench_home, machine_line  # noqa: E402
from prsm_events.accounting.budgets import Budget  # noqa: E402
from prsm_events.cli.worker_process import WorkerProcess  # noqa: E402
from prsm_events.kafka.admin import ensure_topics  # noqa: E402
from prsm_events.kafka.config_topics import budget_record, publish  # noqa: E402
from prsm_events.kafka.connection import KafkaConnection  # noqa: E402
from prsm_events.kafka.topics import TopicSpec, topic_specs  # noqa: E402
from prsm_events.operations.stage_times import quantile_of  # noqa: E402
from prsm_events.settings import Settings  # noqa: E402
from streams.control import DECISION_STAGES  # noqa: E402
from tests.integration.conftest import free_port  # noqa: E402

TENANTS = 20
WARM_TURNS = 3
"""Turns of 1 s at 1,000 requests/s each path takes before anything is timed: the first
seconds of a fresh broker and worker are slower for both (p50 up to 3x in the first turns)."""


def request(i: int, run: str) -> tuple[bytes, bytes]:
    tenant = f"t{i % TENANTS}"
    doc = {"request_id": f"{run}-{i}", "ts": datetime.now(UTC).isoformat(), "tenant": tenant,
           "service": f"svc{i % 3}", "model": "gpt-4o-mini", "est_input_tokens": 800,
           "est_output_tokens": 200, "priority": "normal"}
    return tenant.encode(), orjson.dumps(doc)


def echo_process(bootstrap: str, source: str, sink: str, ready: Any) -> None:
    """The floor's echo service: every request value straight back on the reply topic."""
    async def run() -> None:
        consumer = AIOKafkaConsumer(source, bootstrap_servers=bootstrap, group_id=f"echo-{source}",
                                    auto_offset_reset="latest", fetch_max_wait_ms=100)
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, acks=-1)
        await consumer.start()
        await producer.start()
        while not consumer.assignment():
            await asyncio.sleep(0.05)
        for tp in consumer.assignment():
            await consumer.position(tp)
        ready.set()
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=100, max_records=2000)
                for records in batches.values():
                    for r in records:
                        await producer.send(sink, r.value, key=r.key)
        finally:
            await consumer.stop()
            await producer.stop()

    asyncio.run(run())


class RoundTrips:
    """One path's client, kept for the whole run: a producer to its request topic and a
    consumer of its reply topic (from the end) that times every reply from its send."""

    def __init__(self, bootstrap: str, req_topic: str, reply_topic: str) -> None:
        self.req_topic, self.reply_topic = req_topic, reply_topic
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, acks=-1)
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                         fetch_max_wait_ms=100, enable_auto_commit=False)
        self.sent: dict[str, float] = {}
        self.latencies: list[float] = []
        self.received_at: list[float] = []
        self._receiver: asyncio.Task[None] | None = None
        self._drained = asyncio.Event()

    async def start(self) -> None:
        await self.producer.start()
        await self.consumer.start()
        cluster = await self.consumer._client.fetch_all_metadata()
        tps = [TopicPartition(self.reply_topic, p)
               for p in cluster.partitions_for_topic(self.reply_topic)]
        self.consumer.assign(tps)
        await self.consumer.seek_to_end(*tps)
        for tp in tps:
            await self.consumer.position(tp)
        self._receiver = asyncio.create_task(self._receive())

    async def stop(self) -> None:
        if self._receiver is not None:
            self._receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._receiver
        await self.producer.stop()
        await self.consumer.stop()

    async def _receive(self) -> None:
        while True:
            batches = await self.consumer.getmany(timeout_ms=200)
            now = time.perf_counter()
            for records in batches.values():
                for r in records:
                    t0 = self.sent.pop(orjson.loads(r.value)["request_id"], None)
                    if t0 is not None:
                        self.latencies.append(now - t0)
                        self.received_at.append(now)
            if not self.sent:
                self._drained.set()

    async def send(self, run: str, count: int, rate: float = 0.0) -> None:
        """Send ``count`` requests at ``rate`` (0: all at once), then wait for their answers
        (at most 60 s)."""
        start = time.perf_counter()
        for i in range(count):
            if rate:
                wait = start + i / rate - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
            key, value = request(i, run)
            self.sent[f"{run}-{i}"] = time.perf_counter()
            await self.producer.send(self.req_topic, value, key=key)
        deadline = time.perf_counter() + 60.0
        while self.sent and time.perf_counter() < deadline:
            self._drained.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), deadline - time.perf_counter())
        self.sent.clear()  # what is left was not answered within a minute

    def take(self) -> tuple[list[float], list[float]]:
        """The latencies and receipt times gathered since the last take."""
        out = (self.latencies, self.received_at)
        self.latencies, self.received_at = [], []
        return out


def summary(rate: float, sent: int, latencies: list[float]) -> dict[str, float]:
    lat = sorted(latencies)
    out = {"offered": rate, "sent": sent, "answered": len(lat)}
    if lat:
        out |= {"p50_ms": 1000 * lat[len(lat) // 2],
                "p99_ms": 1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))],
                "mean_ms": 1000 * statistics.fmean(lat)}
    return out


async def measure(bootstrap: str, prefix: str, worker: WorkerProcess, rates: list[float],
                  seconds: float, slice_s: float, flood: int) -> tuple[
                      dict[str, list[dict[str, float]]],
                      list[tuple[str, float, dict[str, tuple[float, float, float]]]]]:
    """Per rate, the floor and the worker in alternating slices of ``slice_s`` (each path
    ``seconds`` in all), so that both see the same seconds of the machine and the broker;
    then a backlog of ``flood`` requests on each. Returns each path's figures per phase, and
    the worker's stage times and CPU (in cores, over its own slices) per phase."""
    paths = {"floor": RoundTrips(bootstrap, prefix + "echo-req", prefix + "echo-rep"),
             "worker": RoundTrips(bootstrap, prefix + "requests", prefix + "decisions")}
    results: dict[str, list[dict[str, float]]] = {"floor": [], "worker": []}
    phases = []

    async def stage_times() -> dict[str, Any]:
        stages: dict[str, Any] = (await asyncio.to_thread(worker.get, "/stats"))[
            "decisions"]["stages"]
        return stages

    for path in paths.values():
        await path.start()
    try:
        for _ in range(WARM_TURNS):  # not reported: connections, code paths, the broker's JIT
            for path in paths.values():
                await path.send(f"warm{uuid.uuid4().hex[:4]}", 1000, 1000.0)
        for path in paths.values():
            path.take()
        for rate in rates:
            per_slice = max(1, round(rate * slice_s))
            slices = max(1, round(seconds / slice_s))
            before, cpu, wall = await stage_times(), 0.0, 0.0
            for k in range(slices):
                for name in ("floor", "worker") if k % 2 == 0 else ("worker", "floor"):
                    run = f"{name}{int(rate)}-{k}-{uuid.uuid4().hex[:4]}"
                    if name == "floor":
                        await paths[name].send(run, per_slice, rate)
                        continue
                    cpu0, t0 = cpu_seconds(worker), time.perf_counter()
                    await paths[name].send(run, per_slice, rate)
                    cpu += cpu_seconds(worker) - cpu0
                    wall += time.perf_counter() - t0
            for name, path in paths.items():
                results[name].append(summary(rate, slices * per_slice, path.take()[0]))
            phases.append((f"{rate:,.0f} req/s", cpu / wall,
                           stage_figures(before, await stage_times())))
        before = await stage_times()
        for name, path in paths.items():
            cpu0, start = cpu_seconds(worker), time.perf_counter()
            await path.send(f"{name}flood{uuid.uuid4().hex[:4]}", flood)
            latencies, received_at = path.take()
            results[name].append(summary(0.0, flood, latencies) | {
                "drain_rate": (len(received_at) - 1) / (max(received_at) - start)
                if len(received_at) > 1 else 0.0})
            if name == "worker":
                phases.append((f"backlog of {flood:,}", (cpu_seconds(worker) - cpu0) / (
                    time.perf_counter() - start), stage_figures(before, await stage_times())))
    finally:
        for path in paths.values():
            await path.stop()
    return results, phases


def pure_rate(n: int = 20_000) -> float:
    """Requests/s of the worker's pure step in-process, in batches of 100 requests: decode
    them together, admit each (decide + reserve), serialise the decisions, and write the
    ledger rows."""
    from prsm_events.accounting.budgets import BudgetBook
    from prsm_events.accounting.catalog import Catalog
    from prsm_events.accounting.escrow import Escrow
    from prsm_events.accounting.ledger import BudgetLedger
    from prsm_events.decisions.admission import AdmissionDesk
    from prsm_events.errors import InvalidEvent
    from prsm_events.events.decision import encode_decision
    from prsm_events.events.validation import EventLimits, decode_requests
    from prsm_events.kafka.partitioning import owner_partition

    book = BudgetBook([Budget(scope=f"tenant:t{i}", period="day", limit_usd=1e6)
                       for i in range(TENANTS)]
                      + [Budget(scope="global", period="month", limit_usd=1e9)])
    ledger = BudgetLedger({}, {}, 4, owner_partition)
    ledger.escrow, ledger.owned = Escrow(4), frozenset(range(4))  # as the worker runs it
    desk = AdmissionDesk(book, ledger, Catalog.shipped())
    raws = [request(i, "pure")[1] for i in range(n)]
    limits = EventLimits()
    now = datetime.now(UTC)
    start = time.perf_counter()
    for i in range(0, n, 100):
        for decoded in decode_requests(raws[i:i + 100], limits, now):
            assert not isinstance(decoded, InvalidEvent)
            encode_decision(desk.admit(decoded, now))
        desk.ledger.take_dirty()
    return n / (time.perf_counter() - start)


def cpu_seconds(worker: WorkerProcess) -> float:
    """CPU seconds (user + system) the worker process has used (Linux: /proc; NaN elsewhere)."""
    try:
        assert worker.proc is not None
        fields = Path(f"/proc/{worker.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, AssertionError):
        return float("nan")


def stage_figures(before: dict[str, Any], after: dict[str, Any]
                  ) -> dict[str, tuple[float, float, float]]:
    """Per stage, of the requests counted between two reads of the worker's stage times
    (``/stats`` decisions ``stages``): mean, p50 and p99 in ms (the quantiles as the upper
    bounds of their buckets)."""
    out = {}
    for stage, now in after.items():
        then = before[stage]
        bounds = [b for b, _ in now["buckets"]]
        cumulative = [a[1] - b[1] for a, b in zip(now["buckets"], then["buckets"], strict=True)]
        cumulative.append(now["count"] - then["count"])
        per = [c - (cumulative[i - 1] if i else 0) for i, c in enumerate(cumulative)]
        n = cumulative[-1]
        mean = (now["sum_s"] - then["sum_s"]) / n if n else float("nan")
        out[stage] = (1000 * mean, 1000 * quantile_of(bounds, per, 0.5),
                      1000 * quantile_of(bounds, per, 0.99))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="100,1000,5000")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--flood", type=int, default=50_000)
    parser.add_argument("--slice-s", type=float, default=1.0,
                        help="The floor and the worker take turns of this long at each rate.")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--linger-ms", type=float, default=Settings().producer_linger_ms,
                        help="The worker's producer linger (PRSM_PRODUCER_LINGER_MS; "
                        "default: the worker's).")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]

    with bench_home("bench") as home:
        bootstrap, broker = bench_broker(home)
        run_id = uuid.uuid4().hex[:6]
        prefix = f"dbench{run_id}."
        echo = None
        worker = None
        try:
            specs = [*topic_specs(prefix, args.partitions),
                     TopicSpec(f"{prefix}echo-req", args.partitions),
                     TopicSpec(f"{prefix}echo-rep", args.partitions)]
            asyncio.run(ensure_topics(KafkaConnection(bootstrap), specs))
            ready = multiprocessing.Event()
            echo = multiprocessing.Process(target=echo_process, daemon=True, args=(
                bootstrap, f"{prefix}echo-req", f"{prefix}echo-rep", ready))
            echo.start()
            ready.wait(60)
            settings = Settings(home=home / "worker", kafka_bootstrap=bootstrap,
                                topic_prefix=prefix, app_id=f"dbench{run_id}",
                                web_port=free_port(), partitions=args.partitions,
                                producer_linger_ms=args.linger_ms, reservation_ttl_s=60.0)
            budgets = [Budget(scope=f"tenant:t{i}", period="day", limit_usd=1e6)
                       for i in range(TENANTS)] + [Budget(scope="global", period="month",
                                                          limit_usd=1e9)]
            asyncio.run(publish(settings, "budgets", [budget_record(b) for b in budgets]))
            worker = WorkerProcess(settings, home / "worker.log")
            worker.start()
            results, stages = asyncio.run(measure(bootstrap, prefix, worker, rates, args.seconds,
                                                  args.slice_s, args.flood))
            stats = worker.get("/stats")["decisions"]
            pure = pure_rate()
        finally:
            if worker is not None:
                worker.stop()
            if echo is not None:
                echo.terminate()
            if broker is not None:
                broker.stop()

    print(machine_line())
    print(f"partitions: {args.partitions}, tenants: {TENANTS}, worker producer linger: "
          f"{args.linger_ms} ms, {args.seconds:g} s per rate for each path, in turns of "
          f"{args.slice_s:g} s")
    print("| offered req/s | floor p50 ms | floor p99 ms | worker p50 ms | worker p99 ms | "
          "p99 ratio | answered (worker) |")
    print("|---|---|---|---|---|---|---|")
    for f, w in zip(results["floor"][:-1], results["worker"][:-1], strict=True):
        print(f"| {f['offered']:,.0f} | {f['p50_ms']:.2f} | {f['p99_ms']:.2f} | "
              f"{w.get('p50_ms', float('nan')):.2f} | {w.get('p99_ms', float('nan')):.2f} | "
              f"{w.get('p99_ms', float('nan')) / f['p99_ms']:.3f} | "
              f"{w['answered']:,}/{w['sent']:,} |")
    f, w = results["floor"][-1], results["worker"][-1]
    print(f"backlog of {args.flood:,}: floor {f.get('drain_rate', 0):,.0f} replies/s, worker "
          f"{w.get('drain_rate', 0):,.0f} decisions/s (ratio "
          f"{w.get('drain_rate', 0) / max(f.get('drain_rate', 1), 1):.3f}); answered "
          f"{w['answered']:,}/{w['sent']:,}")
    print(f"worker decision stats: {stats['actions']}")
    print("\nwhere requests spent their time in the worker (prsm_decision_stage_seconds): "
          "mean ms, and p50 / p99 as bucket bounds; the worker process's CPU (user + system, "
          "all threads) over the phase, in cores")
    print("| phase | CPU | " + " | ".join(DECISION_STAGES) + " |")
    print("|---|---|" + "---|" * len(DECISION_STAGES))
    for phase, busy, figures in stages:
        print(f"| {phase} | {busy:.2f} | " + " | ".join(
            "{:.2f} ({:g} / {:g})".format(*figures[s]) for s in DECISION_STAGES) + " |")
    print(f"pure step in-process (decode, decide, reserve, serialise): {pure:,.0f} requests/s")


if __name__ == "__main__":
    main()
