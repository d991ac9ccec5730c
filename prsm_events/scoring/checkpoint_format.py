"""What a scorer checkpoint holds (``ScorerState``), and how one written by an earlier version
is read by this one (``saved_array``): every format upgrade lives here, none in the models.
``checkpoint`` writes and reads the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from prsm_events.scoring.forecast_state import CARRY_STATE, CHECK_STATE
from prsm_events.scoring.pacing_step import BURST_STATE, YOUNG_STATE

__all__ = ["ScorerState", "saved_array"]

Host = np.ndarray[Any, Any]


@dataclass(frozen=True)
class ScorerState:
    """Everything a ``BatchScorer`` has learned, as host arrays (``BatchScorer.export`` /
    ``load``): ``arrays["<part>.<name>"]`` with parts ``anomaly``, ``spend_fc`` (the
    detector's forecaster), ``outlook_fc`` and ``demand_fc`` (scopes on the last axis, in the
    order of ``scopes``) and ``pacing`` (in the order of ``budgets``)."""

    scopes: list[str]
    budgets: list[str]
    season: int
    ticks: int
    arrays: dict[str, Host]
    active: Host | None = None
    """Per scope, the last tick it spent or asked for anything (None: all at ``ticks``)."""
    paced: Host | None = None
    """Per budget, the last tick it was paced at, -1 if never (None: all at ``ticks``, as
    a checkpoint from before they were kept)."""
    parked: ScorerState | None = None
    """The parked scopes (``BatchScorer.park``): their names, arrays of the four scope parts
    and last active ticks; None: none (as a checkpoint from before scopes were parked)."""


_ADDED_LATER = frozenset({*(f"{part}.{name}" for part in ("spend_fc", "outlook_fc", "demand_fc")
                            for name in CARRY_STATE),
                          *(f"outlook_fc.{name}" for name in CHECK_STATE),
                          *(f"pacing.{name}" for name in (*YOUNG_STATE, *BURST_STATE))})
"""State arrays added after the first checkpoints: a checkpoint without them loads with
them at zero (learned again)."""
_STARTS_FROM = {"outlook_fc": "spend_fc"}
"""Parts added later that a checkpoint without them starts from another part's state."""


def saved_array(state: ScorerState, part: str, name: str, want: tuple[int, ...]) -> Host | None:
    """The saved array for ``part.name``, shaped ``want`` (None: it starts at zero).

    A checkpoint from an earlier version may lack what came later: arrays of
    ``_ADDED_LATER`` start at zero, parts of ``_STARTS_FROM`` start from the other part's
    state, and a daily profile saved with fewer buckets (a divisor of the buckets now) is
    spread over the finer ones, each value in all its parts. Anything else that is missing
    or misshapen is a ``ValueError``."""
    key = f"{part}.{name}"
    saved = state.arrays.get(key)
    if (saved is None and part in _STARTS_FROM
            and not any(k.startswith(f"{part}.") for k in state.arrays)
            and f"{_STARTS_FROM[part]}.{name}" in state.arrays):
        return saved_array(state, _STARTS_FROM[part], name, want)
    if saved is None and key in _ADDED_LATER:
        return None
    if (saved is not None and name == "season" and saved.ndim == 2 and saved.shape[0]
            and want[0] % saved.shape[0] == 0 and saved.shape[1:] == want[1:]):
        saved = np.repeat(saved, want[0] // saved.shape[0], axis=0)
    if saved is None or tuple(saved.shape) != want:
        got = "missing" if saved is None else f"shaped {tuple(saved.shape)}"
        raise ValueError(f"{key} is {got}, expected {want}")
    return saved
