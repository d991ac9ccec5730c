"""A decision record as a ``decisions`` row; anything else is refused with the reason."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from prsm_events.events.decision import Action, DecisionRecord, ReasonRecord, encode_decision
from prsm_events.store.decision_rows import DECISION_COLUMNS, decision_row


def test_a_decision_as_the_worker_encodes_it_is_one_row_with_its_place() -> None:
    record = encode_decision(DecisionRecord(
        request_id="r9", ts=datetime(2026, 3, 1, 12, tzinfo=UTC), tenant="acme",
        action=Action.ROUTE, model="gpt-4o-mini", provider="openai", requested_model="gpt-4o",
        priority="high", est_cost_usd=0.001, requested_est_cost_usd=0.0075,
        quality_given_up=0.12, reason=ReasonRecord("routed_cheaper_model", "m"),
        budget={"scope": "tenant:acme", "period": "day", "limit_usd": 10, "spent_usd": 7.5,
                "reserved_usd": 0.001, "remaining_usd": 2.5, "hard": True,
                "period_end": "2026-03-02T00:00:00+00:00"},
        forecast={"period_end_spend_usd": 12.25, "exhaustion_ts": None}))
    line = decision_row(record, 4, 99)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    row = msgspec.json.decode(line)
    assert tuple(row) == DECISION_COLUMNS
    assert (row["action"], row["model"], row["requested_model"], row["priority"]) == (
        "route", "gpt-4o-mini", "gpt-4o", "high")
    assert msgspec.json.decode(row["budget"])["hard"] is True
    assert (row["requested_est_cost_usd"], row["quality_given_up"]) == (0.0075, 0.12)
    assert [row[f"budget_{k}"] for k in ("scope", "period", "limit_usd", "spent_usd",
                                          "reserved_usd", "remaining_usd", "period_end")] == [
        "tenant:acme", "day", 10.0, 7.5, 0.001, 2.5, "2026-03-02T00:00:00+00:00"]
    assert (row["forecast_period_end_usd"], row["forecast_exhaustion_ts"]) == (12.25, None)
    assert (row["ts"], row["src_partition"], row["src_offset"]) == ("2026-03-01T12:00:00Z", 4, 99)


def test_a_decision_without_figures_has_empty_figure_columns() -> None:
    row = msgspec.json.decode(decision_row(encode_decision(DecisionRecord(
        request_id="r1", ts=datetime(2026, 3, 1, tzinfo=UTC), tenant="acme",
        action=Action.ALLOW, model="gpt-4o", requested_model="gpt-4o", est_cost_usd=0.0075,
        reason=ReasonRecord("no_budget", "m"), budget={"scope": "x", "limit_usd": "lots"})),
        0, 0))
    # not routed: the requested estimate is the decision's own; a figure that is not a number
    # is no figure
    assert (row["requested_est_cost_usd"], row["quality_given_up"]) == (0.0075, None)
    assert (row["budget_scope"], row["budget_limit_usd"], row["budget_period_end"]) == (
        "x", None, None)


@pytest.mark.parametrize("value", [
    None, b"", b"not json", b"[1, 2]", b'{"request_id": 1}',
    b'{"request_id":"r","ts":"2026-01-01T00:00:00Z","tenant":"t","action":"maybe",'
    b'"requested_model":"m","reason":{"code":"c","message":"m"}}',
    b'{"request_id":"r","ts":"2026-01-01T00:00:00","tenant":"t","action":"allow",'
    b'"requested_model":"m","reason":{"code":"c","message":"m"}}',
    b'{"request_id":"r","ts":"2026-01-01T00:00:00Z","tenant":"t","action":"allow",'
    b'"requested_model":"m","reason":"fits"}',
])
def test_what_is_not_a_decision_is_refused_with_the_reason(value: bytes | None) -> None:
    with pytest.raises(ValueError, match="not a decision"):
        decision_row(value, 0, 0)
