"""What every benchmark needs: a broker (PRSM_KAFKA_BOOTSTRAP, or a local one) and a header."""

from __future__ import annotations

import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prsm_events.accounting.budgets import Budget
    from prsm_events.cli.worker_process import WorkerProcess
    from prsm_events.kafka.dev_broker import LocalBroker
    from prsm_events.settings import Settings

__all__ = ["bench_broker", "bench_home", "machine_line", "start_group"]


@contextmanager
def bench_home(name: str) -> Iterator[Path]:
    """A scratch folder for one run (its broker's data, its workers' homes and logs, up to a
    GiB): removed when the run ends, kept and named on stderr when it fails, for its logs."""
    home = Path(tempfile.mkdtemp(prefix=f"prsm-{name}-"))
    try:
        yield home
    except BaseException:
        print(f"kept for its logs: {home}", file=sys.stderr)
        raise
    shutil.rmtree(home, ignore_errors=True)


def bench_broker(home: Path) -> tuple[str, LocalBroker | None]:
    """PRSM_KAFKA_BOOTSTRAP when set, else a local broker (1 GiB heap) under ``home``."""
    from prsm_events.kafka.dev_broker import LocalBroker  # not needed by benchmarks without Kafka
    from tests.integration.conftest import free_port

    bootstrap = os.environ.get("PRSM_KAFKA_BOOTSTRAP")
    if bootstrap:
        return bootstrap, None
    broker = LocalBroker(home, free_port(pairs=True), heap="1g")
    return broker.start(), broker


def machine_line() -> str:
    return (f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, {platform.platform()}")


def start_group(bootstrap: str, home: Path, name: str, count: int, partitions: int,
                budgets: list[Budget]) -> tuple[Settings, list[WorkerProcess]]:
    """``count`` worker processes in one group on fresh topics ``name.*`` (the first runs the
    ClickHouse sink, the others ``PRSM_SINK=off``), after ``budgets`` are published. Returns
    the first worker's settings and the started workers (stop them)."""
    import asyncio

    from prsm_events.cli.worker_process import WorkerProcess
    from prsm_events.kafka.admin import ensure_topics
    from prsm_events.kafka.config_topics import budget_record, publish
    from prsm_events.kafka.connection import KafkaConnection
    from prsm_events.kafka.topics import topic_specs
    from prsm_events.settings import Settings
    from tests.integration.conftest import free_port

    prefix = f"{name}."
    asyncio.run(ensure_topics(KafkaConnection(bootstrap), topic_specs(prefix, partitions)))

    def settings(i: int) -> Settings:
        return Settings(home=home / name / f"w{i}", kafka_bootstrap=bootstrap,
                        topic_prefix=prefix, app_id=name, web_port=free_port(),
                        partitions=partitions, sink="worker" if i == 0 else "off",
                        reservation_ttl_s=600.0)

    group = [settings(i) for i in range(count)]
    asyncio.run(publish(group[0], "budgets", [budget_record(b) for b in budgets]))
    workers = [WorkerProcess(s, home / name / f"w{i}.log") for i, s in enumerate(group)]
    for w in workers:
        w.start()
    return group[0], workers
