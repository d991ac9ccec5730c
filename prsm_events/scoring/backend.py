"""Which array module scores: NumPy on the CPU, or CuPy on a CUDA GPU.

``PRSM_SCORING_BACKEND``: ``numpy``, ``cupy`` (fails clearly without a GPU) or ``auto``
(CuPy when it imports and sees a device, else NumPy).

>>> array_module("numpy").__name__
'numpy'
"""

from __future__ import annotations

import logging
from types import ModuleType
from typing import Any

import numpy as np

from prsm_events.errors import BackendUnavailable

__all__ = ["array_module", "backend_name", "to_host"]

log = logging.getLogger(__name__)
BACKENDS = ("auto", "numpy", "cupy")


def _cupy() -> ModuleType:
    try:
        import cupy  # optional, heavy
    except Exception as exc:  # ImportError, or a CUDA library that fails to load
        raise BackendUnavailable(f"cupy does not import: {exc}") from exc
    try:
        devices = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as exc:
        raise BackendUnavailable(f"cupy sees no CUDA device: {exc}") from exc
    if devices < 1:
        raise BackendUnavailable("cupy sees no CUDA device")
    return cupy  # type: ignore[no-any-return]


def array_module(name: str = "auto") -> ModuleType:
    """The array module for backend ``name`` (see the module docstring)."""
    if name not in BACKENDS:
        raise BackendUnavailable(f"unknown scoring backend {name!r}; use one of {BACKENDS}")
    if name == "numpy":
        return np
    if name == "cupy":
        return _cupy()
    try:
        return _cupy()
    except BackendUnavailable as exc:
        log.info("scoring on NumPy: %s", exc)
        return np


def backend_name(xp: ModuleType) -> str:
    """``numpy`` or ``cupy``."""
    return "cupy" if xp.__name__.startswith("cupy") else "numpy"


def to_host(array: Any) -> np.ndarray[Any, Any]:
    """A NumPy copy of ``array`` (a no-op view for NumPy arrays)."""
    if isinstance(array, np.ndarray):
        return array
    return array.get()  # type: ignore[no-any-return]
