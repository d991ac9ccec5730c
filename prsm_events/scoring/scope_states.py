"""A scope's learned state as a record of the ``scorer-states`` topic: what a worker learned
of a tenant, handed to the worker that takes the tenant's partition over.

The worker that parks a tenant's scopes (``parked_scopes``) publishes each one's state,
keyed by the scope, on the tenant's partition; the worker that owns the partition adopts it
for a scope it does not know or has learned only a few intervals of
(``BatchScorer.adopt``). MessagePack: each array's shape and its float64 bytes.

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

from collections.abc import Mapping
from typing import Any

import msgspec
import numpy as np

__all__ = ["ScopeState", "decode_scope_state", "encode_scope_state"]

VERSION = 1

Host = np.ndarray[Any, Any]


class ScopeState(msgspec.Struct, frozen=True):
    """One scope's arrays (``"<part>.<name>"``: shape, float64 bytes), learned at
    ``interval_s``."""

    v: int
    interval_s: float
    data: dict[str, tuple[list[int], bytes]]

    def arrays(self) -> dict[str, Host]:
        """The arrays (``ValueError`` if one's bytes do not fit its shape)."""
        out = {}
        for key, (shape, raw) in self.data.items():
            arr = np.frombuffer(raw, dtype=np.float64)
            if arr.size != int(np.prod(shape, dtype=np.int64)):
                raise ValueError(f"{key}: {arr.size} values for shape {shape}")
            out[key] = arr.reshape(shape).copy()
        return out


_ENCODE = msgspec.msgpack.Encoder().encode
_DECODE = msgspec.msgpack.Decoder(ScopeState).decode


def encode_scope_state(arrays: Mapping[str, Host], interval_s: float) -> bytes:
    """The record value of one scope's ``arrays`` (each without the scopes' axis)."""
    return _ENCODE(ScopeState(VERSION, interval_s, {
        key: (list(arr.shape), np.ascontiguousarray(arr, dtype=np.float64).tobytes())
        for key, arr in arrays.items()}))


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
