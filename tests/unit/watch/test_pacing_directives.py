from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prsm_events.decisions.pacing import PACED_PRIORITIES, PacingAction
from prsm_events.events.directives import ThrottleDirective
from prsm_events.watch.pacing_directives import PacingDirectives, round4

IDS = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="/"),
              min_size=1, max_size=12)
SCOPES = st.builds(lambda t, s: f"tenant:{t}" + (f"/service:{s}" if s else ""), IDS,
                   st.none() | IDS)
ROWS = st.lists(st.tuples(SCOPES, st.sampled_from(["day", "month", "24h"]),
                          st.floats(0.75, 1.2) | st.sampled_from([0.75, 0.7500001, 1.0]),
                          st.floats(0.0, 1e4) | st.sampled_from([0.0, 1e-9, 0.5e-9, 2.5])),
                max_size=20)


def one_by_one(scope: str, period: str, pressure: float, reserve: float, now: float,
               interval_s: float) -> ThrottleDirective:
    """A pacing directive built from its ``PacingAction``, as the tick built each one before
    they were kept as columns."""
    action = PacingAction.at(f"{scope}|{period}", pressure, round(reserve * 1e9))
    stamp = datetime.fromtimestamp(now, UTC)
    return ThrottleDirective(
        scope=scope, origin=f"pacing:{period}", action="throttle",
        allow_fraction=round(1 - action.throttle_share, 4),
        until=stamp + timedelta(seconds=2 * interval_s), reason="paced_throttle",
        message=f"pacing {action.budget_key}: pressure {action.pressure:.2f}, "
        f"{action.throttle_share:.0%} of low/normal requests throttled",
        ts=stamp, details=dict(action.figures()), priorities=tuple(sorted(PACED_PRIORITIES)))


@settings(max_examples=200, deadline=None)
@given(ROWS, st.floats(1.7e9, 2e9) | st.just(1767225600.0), st.sampled_from([0.25, 60.0]))
def test_the_columns_give_each_directive_and_its_json_as_built_one_by_one(
        rows: list[tuple[str, str, float, float]], now: float, interval_s: float) -> None:
    scopes, periods, pressure, reserve = (list(c) for c in zip(*rows, strict=True)) if rows \
        else ([], [], [], [])
    paced = PacingDirectives(scopes, periods, np.array(pressure, dtype=float),
                             np.array(reserve, dtype=float), now, interval_s)
    expected = [one_by_one(*row, now, interval_s) for row in rows]
    assert len(paced) == len(rows)
    assert list(paced) == expected
    assert paced.keys() == [d.key for d in expected]
    # the bytes the worker publishes are the model's own JSON, and read back as the model
    assert paced.values() == [d.model_dump_json().encode() for d in expected]
    assert [ThrottleDirective.model_validate_json(v) for v in paced.values()] == expected


def test_columns_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        PacingDirectives(["tenant:a"], ["day", "day"], np.array([0.8]), np.array([0.0]))


def test_round4_rounds_as_python_does_ties_included() -> None:
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.uniform(0.0, 1.0, 100_000), np.arange(20_001) / 2e4,
                        np.arange(10_001) / 1e4 + 0.00005, [0.0, 1.0, 1e-12, 0.99995]])
    assert round4(x) == [round(v, 4) for v in x.tolist()]
