"""Stopping a worker process: SIGTERM once, however often asked, then a wait; SIGKILL for
one that does not stop in time."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from prsm_events.cli.worker_process import WorkerProcess
from prsm_events.settings import Settings

CHILD = """
import signal, sys, time
seen = []
def on_term(*_):
    seen.append(1)
    if len(seen) == 1:
        time.sleep(0.3)  # a clean stop's work; a second SIGTERM now would cut it short
        print(len(seen), flush=True)
        sys.exit(0)
signal.signal(signal.SIGTERM, on_term if sys.argv[1] == "stops" else signal.SIG_IGN)
print("ready", flush=True)
time.sleep(60)
"""


def child(tmp_path: Path, behaviour: str) -> WorkerProcess:
    process = WorkerProcess(Settings(home=tmp_path), tmp_path / "worker.log")
    process.proc = subprocess.Popen([sys.executable, "-c", CHILD, behaviour],
                                    stdout=subprocess.PIPE)
    assert process.proc.stdout is not None and process.proc.stdout.readline() == b"ready\n"
    return process


def test_several_asks_to_stop_send_one_sigterm_and_stop_waits_for_the_exit(
        tmp_path: Path) -> None:
    process = child(tmp_path, "stops")
    process.terminate()
    process.terminate()
    process.stop()
    assert process.proc is not None and process.proc.returncode == 0
    assert process.proc.stdout is not None and process.proc.stdout.read() == b"1\n"
    process.stop()  # stopped already: nothing to do


def test_a_process_that_ignores_sigterm_is_killed_after_the_timeout(tmp_path: Path) -> None:
    process = child(tmp_path, "ignores")
    process.stop(timeout_s=0.5)
    assert process.proc is not None and process.proc.returncode == -signal.SIGKILL
