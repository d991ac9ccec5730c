"""Ingest throughput: usage events/s through the worker vs a raw aiokafka loop (the floor).

Both take the same messages on the same broker in the same run:
- floor: one aiokafka consumer reads the topic and an aiokafka producer writes every value
  to another topic (consume-and-produce, no parsing);
- worker: ``prsm worker`` (validate, price, dedup, spend tables with changelogs, ClickHouse
  sink, offsets committed after the sink), started on an empty topic that is then loaded
  (the load is many times faster than the worker; a worker started on a loaded topic would
  take part of it while it gets ready, before it can be measured). It is timed over the
  same number of events, with a tenth more behind them: a batch waits up to
  PRSM_BATCH_WITHIN_S (0.2 s) to fill, so the last batch of a finite backlog waits for
  events that never come, a wait a continuous stream does not have (its rate over the whole
  backlog, that wait included, is printed beside).

    python benchmarks/ingest.py --events 100000               # one event per message (kcat)
    python benchmarks/ingest.py --events 100000 --envelope 500  # the SDK's batch envelopes

With ``--envelope N`` the events are grouped as ``UsagePublisher.publish_many`` sends them
(per tenant, up to N per message); the floor then moves those same messages, and both rates
are in events/s.

Uses PRSM_KAFKA_BOOTSTRAP when set, else starts a local broker under a temporary home (removed
after the run; kept, and named, when the run fails).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.harness import bench_broker, bench_home, machine_line  # noqa: E402
from prsm_events.cli.replay import WorkloadSpread, synthetic_trace, trace_events  # noqa: E402
from prsm_events.cli.worker_process import WorkerProcess  # noqa: E402
from prsm_events.kafka.admin import ensure_topics  # noqa: E402
from prsm_events.kafka.connection import KafkaConnection  # noqa: E402
from prsm_events.kafka.topics import TopicSpec, topic_specs  # noqa: E402
from prsm_events.settings import Settings  # noqa: E402
from tests.integration.conftest import free_port  # noqa: E402


def make_events(n: int, tenants: int, envelope: int) -> list[tuple[bytes, bytes, int]]:
    """(key, value, events in it) per message: single events, or the SDK's envelopes."""
    rows = synthetic_trace(n, seconds=600, seed=1)
    prefix = uuid.uuid4().hex[:8]
    events = trace_events(rows, WorkloadSpread(tenants=tenants, seed=1), datetime.now(UTC),
                          speed=1000, id_prefix=prefix)
    if envelope > 1:
        from prsm_events.sdk.publisher import UsagePublisher

        return list(UsagePublisher("127.0.0.1:1", batch_events=envelope).envelopes(
            e for _, e in events))
    return [(e.tenant.encode(), e.model_dump_json(exclude_none=True).encode(), 1)
            for _, e in events]


async def preload(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes, int]]
                  ) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20,
                                max_batch_size=512 * 1024, max_request_size=1_000_000, acks=1)
    await producer.start()
    try:
        pending = []
        for key, value, _ in messages:
            pending.append(await producer.send(topic, value=value, key=key))
            if len(pending) >= 10_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def raw_floor(bootstrap: str, source: str, sink: str, n: int) -> float:
    """Seconds for a plain aiokafka consume -> produce loop to move n messages."""
    consumer = AIOKafkaConsumer(source, bootstrap_servers=bootstrap, group_id=f"floor-{source}",
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                max_poll_records=2000)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks=-1,
                                max_request_size=1_000_000)
    await consumer.start()
    await producer.start()
    moved = 0
    started = None
    try:
        while moved < n:
            batches = await consumer.getmany(timeout_ms=500, max_records=2000)
            if started is None and batches:
                started = time.perf_counter()
            pending = []
            for records in batches.values():
                for rec in records:
                    pending.append(await producer.send(sink, value=rec.value, key=rec.key))
            await asyncio.gather(*pending)
            await consumer.commit()
            moved += len(pending)
        assert started is not None
        return time.perf_counter() - started
    finally:
        await consumer.stop()
        await producer.stop()


def faust_noop(bootstrap: str, topic: str, n: int, home: Path) -> float:
    """Events/s of a Faust agent that only iterates and acks (benchmarks/faust_noop.py)."""
    import subprocess

    out = home / "noop-rate.txt"
    subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "faust_noop.py"), bootstrap, topic, str(n),
         str(out)], capture_output=True, cwd=home, timeout=600)
    return float(out.read_text())


def main_thread_cpu_s(pid: int) -> tuple[float, float]:
    """Seconds the main thread of process ``pid`` has run on a core, and has waited for one
    while runnable (its schedstat)."""
    on_cpu, waited = Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()[:2]
    return int(on_cpu) / 1e9, int(waited) / 1e9


@dataclass
class WorkerTimes:
    """What ``worker_run`` measured, in seconds."""

    first_n_s: float
    """From the first accepted event until the first n were accepted."""
    all_s: float
    """... until all n + tail were: the last batch waits PRSM_BATCH_WITHIN_S to fill."""
    stored_s: float
    """... until the sink had written all n + tail to ClickHouse."""
    cpu_s: float
    """The main thread's time on a core over the first n."""
    cpu_wait_s: float
    """The main thread's time runnable but waiting for a core over the first n."""


def worker_run(settings: Settings, n: int, tail: int, log: Path, load: Callable[[], None]
               ) -> WorkerTimes:
    """The worker taking a backlog of n + ``tail`` events: it starts on an empty topic, then
    ``load()`` writes the backlog (much faster than the worker reads it). Timed from the
    first accepted event (whose batch is not counted) to the n-th, while full batches keep
    coming; then to the last, whose partial batch waits PRSM_BATCH_WITHIN_S (0.2 s) for
    events that a finite backlog never brings; then until the sink has written them all.
    Also the seconds its main thread (the event loop: the agents, the consumer, the
    producer) ran on a core over the first n (less noisy than the rate on a shared
    machine), and waited for one while runnable."""
    worker = WorkerProcess(settings, log)
    worker.start()
    assert worker.proc is not None
    pid = worker.proc.pid
    total = n + tail
    try:
        load()
        start_count, started = 0, 0.0
        at_start = (0.0, 0.0)
        first_n: tuple[float, float, float] | None = None
        all_s = None
        while True:
            stats = worker.get("/stats")
            now = time.perf_counter()
            cpu = main_thread_cpu_s(pid)
            if not started and stats["accepted"] > 0:
                start_count, started, at_start = stats["accepted"], now, cpu
            # rates over the events after the first observed batch
            if first_n is None and stats["accepted"] >= n:
                scale = n / max(1, n - start_count)
                first_n = ((now - started) * scale, (cpu[0] - at_start[0]) * scale,
                           (cpu[1] - at_start[1]) * scale)
            if all_s is None and stats["accepted"] >= total:
                all_s = (now - started) * total / max(1, total - start_count)
            if first_n is not None and all_s is not None and stats["sink"]["rows"] >= total:
                return WorkerTimes(first_n[0], all_s,
                                   (now - started) * total / max(1, total - start_count),
                                   first_n[1], first_n[2])
            time.sleep(0.05)
    finally:
        worker.stop()


def measure_parts(messages: list[tuple[bytes, bytes, int]], home: Path) -> dict[str, float]:
    """Events/s of the worker's pure step, of encoding accepted records and of the sink's
    chDB insert, in this process."""
    from prsm_events.accounting.catalog import Catalog
    from prsm_events.accounting.ingest import RawMessage, UsageIngestor
    from prsm_events.events.validation import EventLimits
    from prsm_events.store.accepted_rows import accepted_records
    from prsm_events.store.clickhouse import ClickHouseStore
    from prsm_events.store.sink import ClickHouseSink

    batch = [RawMessage("bench", 0, i, k, v) for i, (k, v, _) in enumerate(messages)]
    ingestor = UsageIngestor(Catalog.shipped(), EventLimits())
    now = datetime.now(UTC)
    t0 = time.perf_counter()
    out = ingestor.process(batch, lambda k: None, lambda k: None, now)
    pure = sum(c for _, _, c in messages) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    records, chunk, size = [], [], 0
    for message in out.accepted:  # records of 2000 events or so, as the worker's batches
        chunk.append(message)
        size += len(message[1])
        if size >= 2000:
            records.append(accepted_records(chunk, now))
            chunk, size = [], 0
    if chunk:
        records.append(accepted_records(chunk, now))
    encode = out.accepted_count / (time.perf_counter() - t0)
    store = ClickHouseStore(f"chdb://{home / 'parts-ch'}")
    store.ping()  # open the engine and apply the DDL outside the timing
    t0 = time.perf_counter()
    sink = ClickHouseSink(store)
    for batch_records in records:
        sink.write(batch_records)
    insert = out.accepted_count / (time.perf_counter() - t0)
    store.close()
    return {"pure": pure, "encode": encode, "insert": insert}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--tenants", type=int, default=50)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--batch-max", type=int, default=2000)
    parser.add_argument("--envelope", type=int, default=1,
                        help="events per message, grouped by tenant as the SDK does (1: none)")
    args = parser.parse_args()

    with bench_home("bench") as home:
        bootstrap, broker = bench_broker(home)
        run_id = uuid.uuid4().hex[:6]
        prefix = f"bench{run_id}."
        try:
            messages = make_events(args.events, args.tenants, args.envelope)
            # more events behind the measured ones, so that batches stay full up to the n-th
            tail = make_events(max(args.events // 10, 4 * args.batch_max), args.tenants,
                               args.envelope)
            tail_events = sum(count for _, _, count in tail)
            specs = [*topic_specs(prefix, args.partitions),
                     TopicSpec(f"{prefix}floor-in", args.partitions),
                     TopicSpec(f"{prefix}floor-out", args.partitions)]
            asyncio.run(ensure_topics(KafkaConnection(bootstrap), specs))
            asyncio.run(preload(bootstrap, f"{prefix}floor-in", messages))
            floor_s = asyncio.run(raw_floor(bootstrap, f"{prefix}floor-in", f"{prefix}floor-out",
                                            len(messages)))
            settings = Settings(home=home / "worker", kafka_bootstrap=bootstrap,
                                topic_prefix=prefix, app_id=f"bench{run_id}", web_port=free_port(),
                                partitions=args.partitions, batch_max=args.batch_max)
            times = worker_run(
                settings, args.events, tail_events, home / "worker.log",
                lambda: asyncio.run(preload(bootstrap, f"{prefix}usage", messages + tail)))
            sample, count = [], 0
            for message in messages:
                if count >= 20_000:
                    break
                sample.append(message)
                count += message[2]
            parts = measure_parts(sample, home)
            noop_rate = faust_noop(bootstrap, f"{prefix}floor-in", len(messages), home) * (
                args.events / len(messages))
        finally:
            if broker is not None:
                broker.stop()
    floor_rate = args.events / floor_s
    worker_rate = args.events / times.first_n_s
    print(machine_line())
    print(f"events: {args.events} in {len(messages)} messages (the worker: {tail_events} more "
          f"behind them), tenants: {args.tenants}, partitions: {args.partitions}, "
          f"batch max: {args.batch_max}")
    print(f"raw aiokafka consume->produce (floor): {floor_rate:,.0f} events/s")
    print(f"prsm worker (validate, price, dedup, tables, accepted topic): {worker_rate:,.0f} "
          f"events/s (the first {args.events}; all {args.events + tail_events}, the last batch "
          f"waiting to fill: {(args.events + tail_events) / times.all_s:,.0f})")
    print(f"ratio worker/floor: {worker_rate / floor_rate:.3f}")
    print(f"worker's main thread on a core: {times.cpu_s / args.events * 1e6:.2f} us an event "
          f"({times.cpu_s / times.first_n_s:.0%} of the time; waiting for one "
          f"{times.cpu_wait_s / times.first_n_s:.0%})")
    print(f"all in ClickHouse (its sink in the worker's process): "
          f"{(args.events + tail_events) / times.stored_s:,.0f} events/s")
    per_message = args.events / len(messages)
    print(f"Faust agent that only iterates and acks: {noop_rate / per_message:,.0f} messages/s"
          + (f" (ratio to floor {noop_rate / floor_rate:.2f})" if per_message == 1 else
             f" ({noop_rate:,.0f} events/s at {per_message:.0f} events a message)"))
    print(f"in-process parts: validate+price+dedup+fold {parts['pure']:,.0f} events/s, "
          f"accepted records {parts['encode']:,.0f} events/s, "
          f"chDB insert (batches of 2000) {parts['insert']:,.0f} rows/s")


if __name__ == "__main__":
    main()
