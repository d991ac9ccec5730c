"""The batch scorer's learned state on disk, so that a restarted worker (a deploy) goes on
forecasting, pacing and detecting where it stopped instead of learning everything again.

One ``.npz`` file (NumPy's own format, no pickle): the scorer's arrays, plus a JSON ``meta``
entry with the scope and budget names, the scoring interval, and whatever else the caller
keeps (``extra``: the spend watch's once-per-period memory). Written to a temporary file and
renamed over the old one, so a crash while writing leaves the previous checkpoint whole.

>>> import tempfile
>>> from pathlib import Path
>>> from prsm_events.scoring.batch import BatchScorer
>>> scorer = BatchScorer("numpy")
>>> _ = scorer.step({"tenant:a": 2.0}, {}, bucket=0)
>>> path = Path(tempfile.mkdtemp()) / "scorer.npz"
>>> write_checkpoint(path, scorer.export(), interval_s=60.0, extra={"note": 1})
>>> state, extra = read_checkpoint(path, interval_s=60.0)
>>> state.scopes, state.ticks, extra
(['tenant:a'], 1, {'note': 1})
"""

from __future__ import annotations

import json
import os
import threading
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from prsm_events.scoring.checkpoint_format import ScorerState

__all__ = ["CheckpointError", "read_checkpoint", "write_checkpoint"]

VERSION = 1
ACTIVE = "scopes.active"
PACED = "budgets.paced"
PARKED = "parked:"
"""The prefix of a parked scope part's arrays (``parked:anomaly.level``)."""
PARKED_ACTIVE = "parked.active"


class CheckpointError(Exception):
    """A checkpoint that cannot be used (unreadable, another version or scoring interval)."""


def write_checkpoint(path: Path, state: ScorerState, interval_s: float,
                     extra: dict[str, Any] | None = None) -> None:
    """Replace ``path`` with ``state`` (atomically: a temporary file renamed over it)."""
    parked = state.parked
    meta = {"version": VERSION, "interval_s": interval_s, "season": state.season,
            "ticks": state.ticks, "scopes": state.scopes, "budgets": state.budgets,
            "parked": [] if parked is None else parked.scopes, "extra": extra or {}}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with tmp.open("wb") as f:
            entries: dict[str, Any] = {"meta": np.array(json.dumps(meta)), **state.arrays}
            if state.active is not None:
                entries[ACTIVE] = state.active
            if state.paced is not None:
                entries[PACED] = state.paced
            if parked is not None:
                entries |= {PARKED + key: arr for key, arr in parked.arrays.items()}
                if parked.active is not None:
                    entries[PARKED_ACTIVE] = parked.active
            np.savez(f, **entries)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_checkpoint(path: Path, interval_s: float) -> tuple[ScorerState, dict[str, Any]]:
    """The state saved at ``path`` and its ``extra``; ``CheckpointError`` if it cannot be
    used here (``FileNotFoundError`` if there is none)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            arrays = {k: data[k] for k in data.files if k != "meta"}
        active = arrays.pop(ACTIVE, None)
        paced = arrays.pop(PACED, None)
        parked_active = arrays.pop(PARKED_ACTIVE, None)
        parked_arrays = {k.removeprefix(PARKED): arrays.pop(k) for k in list(arrays)
                         if k.startswith(PARKED)}
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"{path} is unreadable: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("version") != VERSION:
        raise CheckpointError(f"{path} has version {meta.get('version')!r}, "
                              f"this worker reads {VERSION}")
    if meta.get("interval_s") != interval_s:
        raise CheckpointError(f"{path} was learned with {meta.get('interval_s')} s intervals, "
                              f"the worker now scores every {interval_s} s")
    try:
        parked_scopes = [str(s) for s in meta.get("parked") or []]
        parked = ScorerState(parked_scopes, [], int(meta["season"]), int(meta["ticks"]),
                             parked_arrays, parked_active) if parked_scopes else None
        state = ScorerState([str(s) for s in meta["scopes"]], [str(b) for b in meta["budgets"]],
                            int(meta["season"]), int(meta["ticks"]), arrays, active, paced,
                            parked)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path} has a malformed header: {exc}") from exc
    return state, dict(meta.get("extra") or {})
