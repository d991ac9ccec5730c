"""Batch scoring throughput: scopes scored per second, NumPy (CPU) vs CuPy (GPU).

    python benchmarks/scoring.py --sizes 1e4 1e5 1e6 1e7 [--backend numpy cupy]

What a scoring tick does for every scope: ``spend_step`` (the detector's forecaster update +
anomaly score; on CuPy one fused kernel) and the outlook and demand forecasters' steps
(``forecast_step``, one kernel each on CuPy). Reported per size and backend: milliseconds of
the fused step and of the whole tick (medians of ``--repeat`` timed calls after warm-up),
scopes per second, the memory traffic each needs (``BYTES_PER_SCOPE``, and
``FORECAST_BYTES_PER_SCOPE`` per forecaster) as GB/s, and, on a GPU, that as a fraction of the
device's peak memory bandwidth (from its memory clock and bus width). The pacing step (budgets
only) is timed alongside on the same number of rows.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
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
from prsm_events.scoring.batch import OUTLOOK_SEASON  # noqa: E402
from prsm_events.scoring.calendar_math import profile_place  # noqa: E402
from prsm_events.scoring.forecast_step import (  # noqa: E402
    FORECAST_BYTES_PER_SCOPE,
    forecast_step,
    new_forecast_state,
)
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


WARMUP = 5
"""Untimed calls first (CuPy compiles its kernels and fills its memory pool on the first)."""


def _median_time(xp: ModuleType, step: Callable[[int], object],
                 repeat: int) -> tuple[float, float]:
    """Seconds per ``step(t)`` after ``WARMUP`` untimed calls: the median of ``repeat`` calls
    each waited for (what one tick takes), and the mean of ``repeat`` calls back to back,
    waited for once (on a GPU the host's work to launch a call then overlaps the previous
    call's kernels, so this is the kernels' own time, which the bandwidth is computed from)."""
    for t in range(WARMUP):
        step(t)
    _sync(xp)
    times = []
    for t in range(repeat):
        start = time.perf_counter()
        step(t)
        _sync(xp)
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    for t in range(repeat):
        step(t)
    _sync(xp)
    return statistics.median(times), (time.perf_counter() - start) / repeat


def _time_fused(xp: ModuleType, x: Any, repeat: int) -> tuple[float, float]:
    fc, an = new_forecast_state(xp, x.size, season=24), new_anomaly_state(xp, x.size)
    return _median_time(xp, lambda t: spend_step(xp, fc, an, x, t % 24, day=t // 24 % 7),
                        repeat)


def _time_forecasters(xp: ModuleType, x: Any, repeat: int) -> tuple[float, float]:
    outlook = new_forecast_state(xp, x.size, season=OUTLOOK_SEASON)
    demand = new_forecast_state(xp, x.size, season=24)

    def step(t: int) -> None:  # 10-minute ticks: the outlook's ``past`` varies
        at, past = profile_place((t + 0.5) * 600.0, 86400.0 / OUTLOOK_SEASON, OUTLOOK_SEASON)
        forecast_step(xp, outlook, x, at, day=t // 144 % 7, past=past)
        forecast_step(xp, demand, x, t // 6 % 24, day=t // 144 % 7)

    return _median_time(xp, step, repeat)


def time_ticks(xp: ModuleType, n: int, repeat: int) -> tuple[tuple[float, float], ...]:
    """(each waited for, back to back) seconds for n scopes of the fused spend step, the
    outlook and demand forecasters' steps and the pacing step, each on its own state."""
    rng = np.random.default_rng(0)
    x = xp.asarray(rng.gamma(2.0, 0.5, n))
    fused = _time_fused(xp, x, repeat)
    both = _time_forecasters(xp, x, repeat)
    pace = new_pacing_state(xp, n)
    args: list[Any] = [xp.asarray(rng.uniform(0, 10, n)) for _ in range(7)]
    pacing = _median_time(xp, lambda t: pacing_step(xp, pace, *args), repeat)
    return fused, both, pacing


def _bandwidth(moved: int, seconds: float, peak: float | None) -> str:
    """GB/s, and the share of the device's peak (blank without one)."""
    rate = moved / seconds
    return f"{rate / 1e9:8.1f}" + (f"{rate / peak:9.0%}" if peak else f"{'':>9s}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=float, nargs="+", default=[1e4, 1e5, 1e6, 1e7])
    ap.add_argument("--backend", nargs="+", default=["numpy", "cupy"])
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--max-numpy", type=float, default=1e7,
                    help="largest size NumPy runs (host memory and time)")
    args = ap.parse_args(argv)
    print(machine_line())
    tick_bytes = BYTES_PER_SCOPE + 2 * FORECAST_BYTES_PER_SCOPE
    print(f"fused = the detector's forecaster + anomaly, {BYTES_PER_SCOPE} bytes/scope moved; "
          f"tick = fused + the outlook and demand forecasters, {tick_bytes} bytes/scope")
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
        print(f"{'scopes':>10s}{'fused ms':>10s}{'b2b ms':>9s}{'GB/s':>8s}{'of peak':>9s}"
              f"{'tick ms':>10s}{'b2b ms':>9s}{'scopes/s':>11s}{'GB/s':>8s}{'of peak':>9s}"
              f"{'pacing ms':>11s}{'tick vs numpy':>15s}")
        for size in args.sizes:
            n = int(size)
            if backend == "numpy" and n > args.max_numpy:
                continue
            fused, forecasters, pace = time_ticks(xp, n, args.repeat)
            tick = (fused[0] + forecasters[0], fused[1] + forecasters[1])
            results[(backend, n)] = tick[0]
            base = results.get(("numpy", n))
            speedup = f"{base / tick[0]:14.0f}x" if base and backend != "numpy" else ""
            print(f"{n:10d}{fused[0] * 1e3:10.3f}{fused[1] * 1e3:9.3f}"
                  f"{_bandwidth(BYTES_PER_SCOPE * n, fused[1], peak)}"
                  f"{tick[0] * 1e3:10.3f}{tick[1] * 1e3:9.3f}{n / tick[0]:11.2e}"
                  f"{_bandwidth(tick_bytes * n, tick[1], peak)}{pace[0] * 1e3:11.3f}{speedup}",
                  flush=True)


if __name__ == "__main__":
    main()
