"""DecisionRecord (what the worker builds and encodes) against Decision (the contract)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prsm_events.events.decision import (
    Action,
    Decision,
    DecisionRecord,
    Reason,
    ReasonRecord,
    encode_decision,
)


def read_back(record: DecisionRecord) -> Decision:
    """The record's JSON as a client reads it; its values must survive the model."""
    raw = encode_decision(record)
    decision = Decision.model_validate_json(raw)
    assert orjson.loads(decision.model_dump_json()) == orjson.loads(raw)
    return decision


def test_the_record_has_the_contract_fields_in_order_with_its_defaults() -> None:
    assert DecisionRecord.__struct_fields__ == tuple(Decision.model_fields)
    assert ReasonRecord.__struct_fields__ == tuple(Reason.model_fields)
    for field in msgspec.structs.fields(DecisionRecord):
        contract = Decision.model_fields[field.name]
        assert field.required == contract.is_required(), field.name
        assert field.required or field.default == contract.default, field.name


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3),
    max_leaves=8)
_figures = st.none() | st.dictionaries(st.text(max_size=12), _json, max_size=6)
_money = st.floats(min_value=0, max_value=1e20, allow_nan=False, allow_infinity=False)
_stamp = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30),
                      timezones=st.just(UTC))


@settings(max_examples=400, deadline=None)
@given(request_id=st.text(min_size=1, max_size=40), ts=_stamp, tenant=st.text(max_size=20),
       action=st.sampled_from(Action), model=st.none() | st.text(max_size=20),
       provider=st.none() | st.text(max_size=20), requested=st.text(max_size=20),
       priority=st.sampled_from(["low", "normal", "high", "critical"]), cost=_money,
       code=st.text(max_size=20), message=st.text(max_size=60),
       retry=st.none() | _money, budget=_figures, forecast=_figures, pacing=_figures)
def test_a_record_reads_back_as_the_decision_with_the_same_fields(
        request_id: str, ts: datetime, tenant: str, action: Action, model: str | None,
        provider: str | None, requested: str, priority: str, cost: float, code: str,
        message: str, retry: float | None, budget: dict[str, Any] | None,
        forecast: dict[str, Any] | None, pacing: dict[str, Any] | None) -> None:
    fields = dict(request_id=request_id, ts=ts, tenant=tenant, action=action, model=model,
                  provider=provider, requested_model=requested, priority=priority,
                  est_cost_usd=cost, retry_after_s=retry, budget=budget, forecast=forecast,
                  pacing=pacing)
    record = DecisionRecord(**fields, reason=ReasonRecord(code, message))
    model_made = Decision(**fields, reason=Reason(code=code, message=message))
    assert read_back(record) == model_made
    assert record.admitted == model_made.admitted
    # the same values whichever encoder wrote them (exponents may be spelt 1e22 or 1e+22)
    assert orjson.loads(encode_decision(record)) == orjson.loads(model_made.model_dump_json())


def test_a_stamp_with_another_zone_reads_back_as_the_same_instant() -> None:
    paris = datetime(2026, 1, 1, 1, tzinfo=timezone(timedelta(hours=1)))
    record = DecisionRecord(request_id="r", ts=paris, tenant="t", action=Action.DEFER,
                            requested_model="m", reason=ReasonRecord("c", "m"))
    assert read_back(record).ts == datetime(2026, 1, 1, tzinfo=UTC)


def test_the_encoding_is_the_struct_as_msgspec_writes_it() -> None:
    record = DecisionRecord(request_id="r", ts=datetime(2026, 1, 1, tzinfo=UTC), tenant="t",
                            action=Action.ALLOW, requested_model="m",
                            reason=ReasonRecord("within_budget", "fits"), est_cost_usd=2.4e-05)
    assert msgspec.json.decode(encode_decision(record))["ts"] == "2026-01-01T00:00:00Z"
    assert b'"est_cost_usd":0.000024' in encode_decision(record)


def test_a_stamp_without_a_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        DecisionRecord(request_id="r", ts=datetime(2026, 1, 1), tenant="t", action=Action.ALLOW,
                       requested_model="m", reason=ReasonRecord("c", "m"))
