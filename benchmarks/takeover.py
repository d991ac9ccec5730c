"""Takeover: seconds from a worker's SIGKILL until another worker counts its tenants' new events.

    python benchmarks/takeover.py --runs 3

Per run: two ``prsm worker`` processes in one group (6 partitions; one runs the sink, the
other ``PRSM_SINK=off``) take 1,200 events of 12 tenants. Then the second is killed, and one
event per tenant it owned is published every 0.2 s: the takeover time is until the survivor's
spend table counts more events for every one of those tenants than the victim had (its
partitions reassigned after the session timeout, the tables' state restored from standbys or
changelogs, and new events processed).
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.harness import bench_broker, bench_home, machine_line  # noqa: E402
from prsm_events.cli.worker_process import WorkerProcess  # noqa: E402
from prsm_events.events.usage import UsageEvent  # noqa: E402
from prsm_events.sdk.publisher import SyncUsagePublisher  # noqa: E402
from prsm_events.settings import Settings  # noqa: E402
from tests.integration.conftest import free_port  # noqa: E402

TENANTS = 12


def spend_events(worker: WorkerProcess, tenant: str) -> int:
    """Events the worker has counted for ``tenant``; 0 while it rebalances (it answers 503,
    without rows)."""
    rows = worker.get(f"/spend?scope=tenant:{tenant}&window=total").get("rows")
    return int(rows[0]["events"]) if rows else 0


def one_run(bootstrap: str, home: Path, standby: int) -> float:
    name = f"takeover{uuid.uuid4().hex[:6]}"

    def settings(i: int, sink: str) -> Settings:
        return Settings(home=home / f"w{i}", kafka_bootstrap=bootstrap, topic_prefix=f"{name}.",
                        app_id=name, web_port=free_port(), partitions=6, sink=sink,
                        standby_replicas=standby)

    def event(i: int, tenant: str) -> UsageEvent:
        return UsageEvent(event_id=f"{name}-{i}", ts=datetime.now(UTC), tenant=tenant,
                          service="chat", model="gpt-4.1-mini", input_tokens=10,
                          output_tokens=1)

    survivor = WorkerProcess(settings(0, "worker"), home / "w0.log")
    victim = WorkerProcess(settings(1, "off"), home / "w1.log")
    survivor.start()
    victim.start()
    try:
        with SyncUsagePublisher(bootstrap, topic=f"{name}.usage") as pub:
            pub.publish_many([event(i, f"t{i % TENANTS}") for i in range(1200)])
            deadline = time.monotonic() + 120
            while sum(w.get("/stats")["accepted"] for w in (survivor, victim)) < 1200:
                if time.monotonic() > deadline:
                    raise RuntimeError("the workers did not take the first events")
                time.sleep(0.2)
            before = {t: n for t in (f"t{i}" for i in range(TENANTS))
                      if (n := spend_events(victim, t)) > 0}
            assert victim.proc is not None
            victim.proc.kill()
            killed = time.monotonic()
            i = 10_000
            while time.monotonic() - killed < 120:
                for tenant in before:
                    pub.publish(event(i, tenant))
                    i += 1
                if all(spend_events(survivor, t) > n for t, n in before.items()):
                    return time.monotonic() - killed
                time.sleep(0.2)
            raise RuntimeError("no takeover within 120 s")
    finally:
        survivor.stop()
        victim.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--standby", type=int, nargs="+", default=[1],
                    help="PRSM_STANDBY_REPLICAS of the workers; several: runs of each")
    args = ap.parse_args()
    with bench_home("takeover") as home:
        bootstrap, broker = bench_broker(home / "broker")
        took: dict[int, list[float]] = {}
        try:
            for r in range(args.runs):  # interleaved: the machine's noise falls on each alike
                for standby in args.standby:
                    took.setdefault(standby, []).append(
                        one_run(bootstrap, home / f"run{r}-s{standby}", standby))
        finally:
            if broker is not None:
                broker.stop()
    print(machine_line())
    print("session timeout 10 s, heartbeat 2 s (streams/app.py)")
    for standby, times in took.items():
        print(f"standby replicas {standby}: takeover s: " + ", ".join(f"{t:.1f}" for t in times))


if __name__ == "__main__":
    main()
