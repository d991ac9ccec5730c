"""Scopes set aside by a batch scorer: another worker answers for their tenant now.

With several workers, a tenant's spend reaches the worker that owns its partition. When the
partition moves, the scopes of that tenant go silent on the former owner: stepped on, they
would learn zeros that never happened, and if the partition came back, its ordinary spend
would look like a spike against them (a false anomaly, and a throttle on budgets that
throttle on anomalies). So the scorer parks them: their state leaves its arrays (no step
learns or scores them), kept here as it was; a parked scope that spends here again resumes
from it. A scope parked longer than the scorer forgets idle scopes after is dropped.

>>> import numpy as np
>>> parked = ParkedScopes()
>>> parked.add(["tenant:a", "tenant:b"], {"x.level": np.array([[1.0, 2.0]])},
...            np.array([7, 8]))
>>> "tenant:b" in parked, len(parked)
(True, 2)
>>> names, arrays, active = parked.take(["tenant:b", "tenant:c"])
>>> names, arrays["x.level"].tolist(), active.tolist(), len(parked)
(['tenant:b'], [[2.0]], [8], 1)
>>> parked.expire(idle_before=8)
['tenant:a']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["ParkedScopes"]

Host = np.ndarray[Any, Any]


class ParkedScopes:
    """Parked scopes' state: host arrays by name (``"<part>.<name>"``, scopes on the last
    axis), and each scope's last active tick."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.arrays: dict[str, Host] = {}
        self.active: Host = np.zeros(0, dtype=np.int64)
        self._at: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, scope: object) -> bool:
        return scope in self._at

    def add(self, names: Sequence[str], arrays: Mapping[str, Host], active: Host) -> None:
        """Park ``names`` (none parked already) with their state (host arrays, one column
        per name)."""
        if not names:
            return
        if any(name in self._at for name in names):
            raise ValueError("a scope parked twice")
        if self.names and set(arrays) != set(self.arrays):
            raise ValueError("parked state of another shape")
        self.arrays = {key: np.concatenate([self.arrays[key], arr], axis=-1) if self.names
                       else np.array(arr, copy=True) for key, arr in arrays.items()}
        self.active = np.concatenate([self.active, np.asarray(active, dtype=np.int64)])
        self.names = [*self.names, *names]
        self._at = {name: i for i, name in enumerate(self.names)}

    def state_of(self, scope: str) -> dict[str, Host]:
        """A parked scope's arrays (copies, without the scopes' axis)."""
        column = self._at[scope]
        return {key: arr[..., column].copy() for key, arr in self.arrays.items()}

    def take(self, scopes: Sequence[str]) -> tuple[list[str], dict[str, Host], Host]:
        """Unpark those of ``scopes`` that are parked: their names, state and active ticks
        (in that order); they are parked no more."""
        found = [s for s in dict.fromkeys(scopes) if s in self._at]
        if not found:
            return [], {}, np.zeros(0, dtype=np.int64)
        columns = np.array([self._at[s] for s in found], dtype=np.int64)
        taken = {key: arr[..., columns].copy() for key, arr in self.arrays.items()}
        active = self.active[columns].copy()
        keep = np.ones(len(self.names), dtype=bool)
        keep[columns] = False
        self._keep(np.flatnonzero(keep))
        return found, taken, active

    def expire(self, idle_before: int) -> list[str]:
        """Drop the scopes last active before the tick ``idle_before``; returns them."""
        idle = self.active < idle_before
        if not idle.any():
            return []
        gone = [self.names[i] for i in np.flatnonzero(idle).tolist()]
        self._keep(np.flatnonzero(~idle))
        return gone

    def _keep(self, columns: Host) -> None:
        self.names = [self.names[i] for i in columns.tolist()]
        self.arrays = {key: arr[..., columns] for key, arr in self.arrays.items()}
        self.active = self.active[columns]
        self._at = {name: i for i, name in enumerate(self.names)}
