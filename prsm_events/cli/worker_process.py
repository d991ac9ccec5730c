"""Run ``prsm worker`` as a child process and talk to its HTTP API (demo, tests, benchmarks)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from prsm_events.errors import PrsmError
from prsm_events.settings import Settings

__all__ = ["WorkerProcess"]


class WorkerProcess:
    """``prsm worker`` in a child process, with its HTTP API as the readiness probe.

    The child is configured by ``settings`` (passed as PRSM_* variables); ``env`` adds more.
    """

    def __init__(self, settings: Settings, log_path: Path, env: dict[str, str] | None = None):
        self.settings = settings
        self.log_path = log_path
        self.env = {**os.environ, **settings.as_env(), **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self._terminated = False

    def start(self, timeout_s: float = 120.0) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._terminated = False
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "prsm_events", "worker"], stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise self._exited()
            try:
                if self.get("/health").get("ready"):
                    return  # tables recovered from their changelogs, partitions assigned
            except OSError:
                pass
            time.sleep(0.1)
        raise PrsmError(f"worker was not ready within {timeout_s:.0f}s; see {self.log_path}")

    def get(self, path: str) -> dict[str, Any]:
        """GET a JSON endpoint; a 503 answer (``/health`` while degraded) returns its body.
        If the worker has exited, raise ``PrsmError`` with the end of its log."""
        return self._answer(path)[1]

    def get_steady(self, path: str, timeout_s: float = 60.0) -> dict[str, Any]:
        """GET ``path`` once the worker answers it with 200: ``/spend`` and ``/budgets``
        answer 503 while a rebalance or a table recovery is under way."""
        deadline = time.monotonic() + timeout_s
        while True:
            status, body = self._answer(path)
            if status != 503:
                return body
            if time.monotonic() > deadline:
                raise PrsmError(f"the worker answered {path} with 503 for {timeout_s:g} s: "
                                f"{body}")
            time.sleep(0.1)

    def _answer(self, path: str) -> tuple[int, dict[str, Any]]:
        """The status and JSON body of a GET of ``path``; HTTPError for an answer other than
        200 or 503."""
        try:
            with urllib.request.urlopen(self.settings.web_request(path), timeout=10) as resp:
                return int(resp.status), orjson.loads(resp.read())
        except urllib.error.HTTPError as exc:
            if exc.code != 503:
                raise
            return 503, orjson.loads(exc.read())
        except OSError:
            if self.proc is not None and self.proc.poll() is not None:
                raise self._exited() from None
            raise

    def _exited(self) -> PrsmError:
        assert self.proc is not None
        return PrsmError(f"worker exited ({self.proc.returncode}); see {self.log_path}:\n"
                         + self.log_path.read_text(errors="replace")[-3000:])

    def stop(self, timeout_s: float = 60.0) -> None:
        """A clean stop (SIGTERM), SIGKILL after ``timeout_s``."""
        self.terminate()
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def terminate(self) -> None:
        """Ask the worker to stop (SIGTERM, once) without waiting: several workers stop
        together, then ``stop`` waits for each."""
        if self.proc is None or self.proc.poll() is not None or self._terminated:
            return
        self.proc.send_signal(signal.SIGTERM)
        self._terminated = True
