"""Named state arrays of one model for many scopes (scopes on the last axis).

Each model keeps its state as a dataclass of arrays (``ForecastState``, ``AnomalyState``,
``PacingState``) rather than a dict of strings: fields are named and checked. Their names are
also the checkpoint's array names and, in order, the CUDA kernels' parameters, so one
declaration serves the step, the kernel and the file.

>>> import numpy as np
>>> from dataclasses import dataclass
>>> @dataclass(eq=False)
... class Two(StateArrays):
...     a: Any
...     b: Any
>>> s = Two.zeros(np, 3)
>>> s.a[1] = 5.0
>>> sorted(s.arrays()), s.map(lambda v: v[:2]).a.tolist()
(['a', 'b'], [0.0, 5.0])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from types import ModuleType
from typing import Any, Self

__all__ = ["StateArrays"]

Array = Any


@dataclass(eq=False)
class StateArrays:
    """Base of the per-model state dataclasses: every field is an array."""

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def zeros(cls, xp: ModuleType, n: int) -> Self:
        """Every field a zeroed vector of ``n`` scopes (override for other shapes)."""
        return cls(**{name: xp.zeros(n, dtype=xp.float64) for name in cls.names()})

    def arrays(self) -> dict[str, Array]:
        """The arrays by name (the same objects: writing into them writes the state)."""
        return {name: getattr(self, name) for name in self.names()}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, Array]) -> Self:
        return cls(**{name: arrays[name] for name in cls.names()})

    def map(self, fn: Callable[[Array], Array]) -> Self:
        """A state of ``fn`` applied to every array (grown, a subset of scopes, copied)."""
        return self.from_arrays({name: fn(arr) for name, arr in self.arrays().items()})

    def ordered(self, names: Sequence[str]) -> tuple[Array, ...]:
        """The arrays of ``names``, in that order (a kernel's parameters)."""
        return tuple(getattr(self, name) for name in names)
