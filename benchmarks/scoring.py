"""Batch scoring throughput: scopes scored per second, NumPy (CPU) vs CuPy (GPU).

    python benchmarks/scoring.py --sizes 1e4 1e5 1e6 1e7 [--backend numpy cupy]

One tick = ``spend_step`` for every scope (forecaster update + anomaly score; on CuPy one
fused kernel). Reported per size and backend: milliseconds per tick (median of ``--repeat``
timed ticks after warm-up), scopes per second, the memory traffic the tick needs
(``BYTES_PER_SCOPE`` per scope) as GB/s, and, on a GPU, that as a fraction of the device's
peak memory bandwidth (from its memory clock and bus width). The pacing step (budgets only)
is timed alongside on the same number of rows.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.harness import machine_line  # noqa: E402
from prsm_events.errors import BackendUnavailable  # noqa: E402
from prsm_events.scoring import BYTES_PER_SCOPE, array_module, pacing_step, spend_step  # noqa: E402
from prsm_events.scoring.anomaly_step import new_anomaly_state  # noqa: E402
from prsm_events.scoring.forecast_step import new_forecast_state  # noqa: E402
from prsm_events.scoring.pacing_step import new_pacing_state  # noqa: E402


def _sync(xp: ModuleType) -> None:
    if xp.__name__.startswith("cupy"):
        xp.cuda.runtime.deviceSynchronize()


def peak_bandwidth(xp: ModuleType) -> float | None:
    """Peak memory bandwidth of GPU 0 in bytes/s (DDR: two transfers per clock)."""
    if not xp.__name__.startswith("cupy"):
        return None
    props = xp.cuda.runtime.getDeviceProperties(0)
    return 2.0 * props["memoryClockRate"] * 1e3 * props["memoryBusWidth"] / 8


def device_name(xp: ModuleType) -> str:
    if xp.__name__.startswith("cupy"):
        name = xp.cuda.runtime.getDeviceProperties(0)["name"]
        return name.decode() if isinstance(name, bytes) else str(name)
    return "CPU (NumPy)"


def time_ticks(xp: ModuleType, n: int, repeat: int) -> tuple[float, float]:
    """(median seconds per spend tick, median seconds per pacing tick) for n scopes."""
    rng = np.random.default_rng(0)
    fc, an = new_forecast_state(xp, n, season=24), new_anomaly_state(xp, n)
    x = xp.asarray(rng.gamma(2.0, 0.5, n))
    for t in range(60):  # past warm-up: the steady-state arithmetic
        spend_step(xp, fc, an, x, t % 24, day=t // 24 % 7)
    _sync(xp)
    spend_times = []
    for t in range(repeat):
        start = time.perf_counter()
        spend_step(xp, fc, an, x, t % 24, day=t // 24 % 7)
        _sync(xp)
        spend_times.append(time.perf_counter() - start)
    pace = new_pacing_state(xp, n)
    args: list[Any] = [xp.asarray(rng.uniform(0, 10, n)) for _ in range(6)]
    pacing_step(xp, pace, *args)
    _sync(xp)
    pace_times = []
    for _ in range(repeat):
        start = time.perf_counter()
        pacing_step(xp, pace, *args)
        _sync(xp)
        pace_times.append(time.perf_counter() - start)
    return statistics.median(spend_times), statistics.median(pace_times)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=float, nargs="+", default=[1e4, 1e5, 1e6, 1e7])
    ap.add_argument("--backend", nargs="+", default=["numpy", "cupy"])
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--max-numpy", type=float, default=1e7,
                    help="largest size NumPy runs (host memory and time)")
    args = ap.parse_args(argv)
    print(machine_line())
    print(f"tick = forecaster + anomaly for every scope, {BYTES_PER_SCOPE} bytes/scope moved")
    results: dict[tuple[str, int], float] = {}
    for backend in args.backend:
        try:
            xp = array_module(backend)
        except BackendUnavailable as exc:
            print(f"{backend}: skipped ({exc})")
            continue
        peak = peak_bandwidth(xp)
        print(f"{backend} on {device_name(xp)}"
              + (f", peak {peak / 1e12:.2f} TB/s" if peak else ""))
        print(f"{'scopes':>10s}{'ms/tick':>10s}{'scopes/s':>14s}{'GB/s':>9s}"
              f"{'of peak':>9s}{'pacing ms':>11s}{'vs numpy':>10s}")
        for size in args.sizes:
            n = int(size)
            if backend == "numpy" and n > args.max_numpy:
                continue
            tick, pace = time_ticks(xp, n, args.repeat)
            results[(backend, n)] = tick
            gbs = BYTES_PER_SCOPE * n / tick / 1e9
            share = f"{gbs * 1e9 / peak:9.0%}" if peak else f"{'':>9s}"
            base = results.get(("numpy", n))
            speedup = f"{base / tick:9.0f}x" if base and backend != "numpy" else f"{'':>10s}"
            print(f"{n:10d}{tick * 1e3:10.3f}{n / tick:14.3e}{gbs:9.1f}{share}"
                  f"{pace * 1e3:11.3f}{speedup}", flush=True)


if __name__ == "__main__":
    main()
