"""What every benchmark needs: a broker (PRSM_KAFKA_BOOTSTRAP, or a local one) and a header."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prsm_events.kafka.dev_broker import LocalBroker

__all__ = ["bench_broker", "machine_line"]


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
