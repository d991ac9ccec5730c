"""The CUDA source of every fused kernel, compiled as C++ for the CPU, against NumPy.

Without a GPU the CuPy path would go untested; here each kernel's operation is compiled with
the host C++ compiler into a loop over elements (CuPy's elementwise semantics: inputs by value,
outputs by reference) and swapped in for ``cupy.ElementwiseKernel``, so the GPU path's Python
(argument order, outputs, state updates) and its arithmetic run against the NumPy reference.
Skipped without a C++ compiler; on a GPU machine tests/unit/scoring/test_backends.py runs the
real thing.
"""

from __future__ import annotations

import ctypes
import importlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from prsm_events.scoring.pacing_step import PacingInputs
from tests.unit.scoring.test_backends import HOURLY, day, run_anomaly, run_forecast, series

# the package re-exports functions under the modules' names: fetch the modules themselves
anomaly_mod, forecast_mod, pacing_mod, spend_mod = (
    importlib.import_module(f"prsm_events.scoring.{name}")
    for name in ("anomaly_step", "forecast_step", "pacing_step", "spend_step"))
CXX = shutil.which("g++") or shutil.which("c++")
pytestmark = pytest.mark.skipif(CXX is None, reason="no C++ compiler to build kernel sources")
MODULES = (anomaly_mod, forecast_mod, pacing_mod, spend_mod)


def _names(params: str) -> list[str]:
    return [p.split()[-1] for p in params.split(",")]


class CpuKernel:
    """An ``ElementwiseKernel`` look-alike that runs the operation compiled as C++."""

    def __init__(self, kernel: tuple[str, str, str, str], workdir: Path) -> None:
        in_params, out_params, body, name = kernel
        self.ins, self.outs = _names(in_params), _names(out_params)
        args = self.ins + self.outs
        binds = "".join(f"    const double {v} = a[{k}][i];\n" for k, v in enumerate(self.ins))
        binds += "".join(f"    double& {v} = a[{len(self.ins) + k}][i];\n"
                         for k, v in enumerate(self.outs))
        src = workdir / f"{name}.cpp"
        src.write_text("#include <math.h>\n"
                       f'extern "C" void run(long n, double** a) {{\n'
                       f"  for (long i = 0; i < n; ++i) {{\n{binds}{body}\n  }}\n}}\n")
        lib = workdir / f"{name}.so"
        subprocess.run([str(CXX), "-O1", "-shared", "-fPIC", "-o", str(lib), str(src)],
                       check=True, capture_output=True)
        self.fn = ctypes.CDLL(str(lib)).run
        self.arity = len(args)

    def __call__(self, *args: Any) -> None:
        assert len(args) == self.arity, f"{len(args)} arguments for {self.arity} parameters"
        n = max(np.size(a) for a in args)
        arrays = [np.full(n, float(a)) if np.ndim(a) == 0 else a for a in args]
        for a in arrays:
            assert a.dtype == np.float64 and a.flags.c_contiguous and a.size == n
        ptrs = (ctypes.POINTER(ctypes.c_double) * len(arrays))(
            *(a.ctypes.data_as(ctypes.POINTER(ctypes.c_double)) for a in arrays))
        self.fn(ctypes.c_long(n), ptrs)


@pytest.fixture
def cpu_kernels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Route every module's GPU path through its kernel compiled for the CPU."""
    for mod in MODULES:
        kernel = CpuKernel(mod.KERNEL, tmp_path)
        monkeypatch.setattr(mod, "_kernel", lambda k=kernel: k)
    for mod in MODULES:
        monkeypatch.setattr(mod, "backend_name", lambda xp: "cupy")
    yield


def test_fused_spend_kernel_source(cpu_kernels: None) -> None:
    data = series(120, 150, seed=2)
    with pytest.MonkeyPatch.context() as mp:  # the reference: NumPy functions
        for mod in MODULES:
            mp.setattr(mod, "backend_name", lambda xp: "numpy")
        ref = run_anomaly(np, data)
    fc = forecast_mod.new_forecast_state(np, 120, season=24)
    an = anomaly_mod.new_anomaly_state(np, 120)
    for t, row in enumerate(data):
        out = spend_mod.spend_step(np, fc, an, row.copy(), t % 24, HOURLY, day=day(t))
        np.testing.assert_allclose(out.score, ref[t], rtol=1e-9, atol=1e-12)


def test_standalone_forecast_and_anomaly_kernel_sources(cpu_kernels: None) -> None:
    data = series(64, 150, seed=6)
    got = run_anomaly(np, data)  # forecast_step + anomaly_step through the kernels
    with pytest.MonkeyPatch.context() as mp:
        for mod in MODULES:
            mp.setattr(mod, "backend_name", lambda xp: "numpy")
        ref = run_anomaly(np, data)
    for a, b in zip(ref, got, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("season", [24, 1])
def test_forecast_kernel_source_reads_and_learns_between_buckets(cpu_kernels: None,
                                                                 season: int) -> None:
    data = series(40, 150, seed=4)
    got = run_forecast(np, data, season, spaced_s=2700.0)  # 45-minute intervals: all ``past``
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(forecast_mod, "backend_name", lambda xp: "numpy")
        ref = run_forecast(np, data, season, spaced_s=2700.0)
    for a, b in zip(ref[0], got[0], strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got[1], ref[1], rtol=1e-9)
    np.testing.assert_allclose(got[2], ref[2], rtol=1e-9)


def test_pacing_kernel_source(cpu_kernels: None) -> None:
    rng = np.random.default_rng(9)
    inputs = [[rng.uniform(0, 10, 50) for _ in range(6)] + [rng.uniform(0, 3, 50)]
              for _ in range(15)]
    for args in inputs:  # some budgets with nothing left, some forecast to see nothing more
        args[0] = args[0] - 2.0
        args[1][:15] = args[5][:15] = 0.0  # grown, no demand forecast: the burst reserve
    got, ref = [], []
    state = pacing_mod.new_pacing_state(np, 50)
    for args in inputs:
        out = pacing_mod.pacing_step(np, state, *args)
        got.append((out.pressure.copy(), out.reserve.copy()))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pacing_mod, "backend_name", lambda xp: "numpy")
        state = pacing_mod.new_pacing_state(np, 50)
        for args in inputs:
            out = pacing_mod.pacing_step(np, state, *args)
            ref.append((out.pressure.copy(), out.reserve.copy()))
    for (gp, gr), (rp, rr) in zip(got, ref, strict=True):
        np.testing.assert_allclose(gp, rp, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(gr, rr, rtol=1e-9, atol=1e-12)


def test_the_batch_scorer_through_the_kernels_equals_numpy(cpu_kernels: None) -> None:
    """The scorer's own calls (fused spend step, the outlook forecaster placed between two
    half hours, the demand forecaster, pacing with its burst reserve) through the kernels."""
    from prsm_events.scoring import BatchScorer

    def run() -> list[np.ndarray[Any, Any]]:
        rng = np.random.default_rng(11)
        scorer = BatchScorer("numpy", capacity=4)
        scopes = [f"tenant:t{i}" for i in range(9)]
        out = []
        for t in range(200):  # 10-minute intervals: the outlook's ``past`` is 1/6, 1/2, 5/6
            spend = {s: float(rng.gamma(2.0, 1.0 + i)) for i, s in enumerate(scopes)}
            minute = (t * 10 + 5) % 1440
            scores = scorer.step(spend, {s: 2 * v for s, v in spend.items()}, minute // 60,
                                 day=t // 144, day_share=minute / 1440)
            pressure, reserve = scorer.pace(scopes[:3], PacingInputs(
                remaining=[50.0, 5.0, 0.0], demand_rest=[80.0, 0.0, 9.0],
                spend=[1.0, 0.5, 0.0], demand=[2.0, 1.0, 3.0], high_share=[0.2, 0.5, 0.1],
                young_left=[0.0, 0.0, 100.0], intervals_left=[100.0, 1.0, 100.0]))
            out += [scores.score, scores.expected, pressure, reserve]
        weights = [float(k % 5) for k in range(48)]
        for demand in (False, True):
            counts = [weights[:24]] * 9 if demand else [weights] * 9
            rest = scorer.rest(scopes, counts, demand=demand, days=[[3] * 7] * 9)
            out += [rest.mean, rest.low, rest.high]
        return out

    got = run()
    with pytest.MonkeyPatch.context() as mp:
        for mod in MODULES:
            mp.setattr(mod, "backend_name", lambda xp: "numpy")
        ref = run()
    for a, b in zip(ref, got, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)
