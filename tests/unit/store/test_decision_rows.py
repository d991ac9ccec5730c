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
        priority="high", est_cost_usd=0.001, reason=ReasonRecord("routed_cheaper_model", "m"),
        budget={"scope": "tenant:acme", "remaining_usd": 2.5}))
    line = decision_row(record, 4, 99)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    row = msgspec.json.decode(line)
    assert tuple(row) == DECISION_COLUMNS
    assert (row["action"], row["model"], row["requested_model"], row["priority"]) == (
        "route", "gpt-4o-mini", "gpt-4o", "high")
    assert msgspec.json.decode(row["budget"]) == {"scope": "tenant:acme", "remaining_usd": 2.5}
    assert (row["ts"], row["src_partition"], row["src_offset"]) == ("2026-03-01T12:00:00Z", 4, 99)


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
