"""A scope's learned state as a record of the ``scorer-states`` topic: what a worker learned
of a tenant, handed to the worker that takes the tenant's partition over.

The worker that parks a tenant's scopes (``parked_scopes``) publishes each one's state,
keyed by the scope, on the tenant's partition; the worker that owns the partition adopts it
for a scope it does not know or has learned only a few intervals of
(``BatchScorer.adopt``). MessagePack: the arrays' names and shapes, and their float64 values
one after another (so that many records of one layout are read as one array).

>>> import numpy as np
>>> raw = encode_scope_state({"anomaly.n": np.array(3.0), "spend_fc.season": np.ones(2)}, 60.0)
>>> state = decode_scope_state(raw)
>>> state.interval_s, {k: v.tolist() for k, v in state.arrays().items()}
(60.0, {'anomaly.n': 3.0, 'spend_fc.season': [1.0, 1.0]})
>>> decode_scope_state(b"nope")
Traceback (most recent call last):
...
ValueError: not a scope state: ...
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
import numpy as np

__all__ = ["ScopeState", "decode_scope_state", "encode_scope_state", "encode_scope_states",
           "stacked"]

VERSION = 2

Host = np.ndarray[Any, Any]


class ScopeState(msgspec.Struct, frozen=True):
    """One scope's arrays: their names (``"<part>.<name>"``) and shapes, and their float64
    values in that order, learned at ``interval_s``."""

    v: int
    interval_s: float
    names: list[str]
    shapes: list[list[int]]
    values: bytes
    by: str = ""
    """The worker that wrote it (``ScorerHandoff.identity``; a worker skips its own)."""
    at: float = 0.0
    """When it was written (epoch seconds): of two states of a scope, the later one is
    newer."""

    def layout(self) -> tuple[tuple[str, ...], tuple[tuple[int, ...], ...]]:
        return tuple(self.names), tuple(map(tuple, self.shapes))

    def arrays(self) -> dict[str, Host]:
        """The arrays, read-only views of the values (``ValueError`` if they do not fit the
        shapes)."""
        return {name: arr[0] for name, arr in stacked([self]).items()}


def stacked(states: Sequence[ScopeState]) -> dict[str, Host]:
    """The arrays of ``states`` (all of one layout), each with the states on a first axis:
    read as one array (``ValueError`` if the values do not fit the shapes)."""
    first = states[0]
    names, shapes = first.layout()
    sizes = [math.prod(shape) for shape in shapes]
    if len(first.names) != len(first.shapes) or any(
            len(s.values) != 8 * sum(sizes) for s in states):
        raise ValueError(f"values for {sum(sizes)} numbers do not fit the shapes")
    flat = np.frombuffer(b"".join(s.values for s in states), dtype=np.float64).reshape(
        len(states), sum(sizes))
    out = {}
    at = 0
    for name, shape, size in zip(names, shapes, sizes, strict=True):
        out[name] = flat[:, at:at + size].reshape(len(states), *shape)
        at += size
    return out


_ENCODE = msgspec.msgpack.Encoder().encode
_DECODE = msgspec.msgpack.Decoder(ScopeState).decode


def encode_scope_state(arrays: Mapping[str, Host], interval_s: float, by: str = "",
                       at: float = 0.0) -> bytes:
    """The record value of one scope's ``arrays`` (each without the scopes' axis), written
    by the worker ``by`` at ``at``."""
    return encode_scope_states({name: np.asarray(arr)[..., None] for name, arr in arrays.items()},
                               interval_s, by, at)[0]


def encode_scope_states(columns: Mapping[str, Host], interval_s: float, by: str = "",
                        at: float = 0.0) -> list[bytes]:
    """The record values of many scopes at once: ``columns`` as ``BatchScorer.export`` gives
    its arrays (the scopes on the last axis), one value per scope in their order, each
    what ``encode_scope_state`` gives that scope's arrays.

    >>> columns = {"anomaly.n": np.array([3.0, 4.0]), "spend_fc.season": np.ones((2, 2))}
    >>> [decode_scope_state(v).arrays()["anomaly.n"].item()
    ...  for v in encode_scope_states(columns, 60.0)]
    [3.0, 4.0]
    """
    names = sorted(columns)
    if not names:
        return []
    count = np.shape(columns[names[0]])[-1]
    shapes = [list(np.shape(columns[n])[:-1]) for n in names]
    flat = np.concatenate([np.moveaxis(np.asarray(columns[n], dtype=np.float64), -1, 0)
                           .reshape(count, -1) for n in names], axis=1)
    return [_ENCODE(ScopeState(VERSION, interval_s, names, shapes, row.tobytes(), by, at))
            for row in flat]


def decode_scope_state(raw: bytes | None) -> ScopeState:
    """A record value as a ``ScopeState``; ``ValueError`` when it is not one of this
    version."""
    try:
        state = _DECODE(raw or b"")
    except msgspec.DecodeError as exc:
        raise ValueError(f"not a scope state: {exc}") from None
    if state.v != VERSION:
        raise ValueError(f"a scope state of version {state.v}, this worker reads {VERSION}")
    return state
