"""usage_record, the ingest hot path's decoder: it gives a record only where UsageEvent, the
contract, accepts the same fields, and then the very same values; anything else goes to
UsageEvent, which says why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from prsm_events.accounting.catalog import Catalog
from prsm_events.accounting.ingest import RawMessage, UsageIngestor
from prsm_events.events.usage import UsageEvent
from prsm_events.events.usage_record import UsageRecord, usage_record
from prsm_events.events.validation import EventLimits

VALID = {"event_id": "e1", "ts": "2026-01-01T00:00:00Z", "tenant": "acme", "service": "chat",
         "model": "gpt-4o", "input_tokens": 1000, "cached_input_tokens": 200,
         "output_tokens": 50}


def as_values(event: UsageEvent | UsageRecord) -> dict[str, Any]:
    """Every field's value with its type (an enum member is not its string)."""
    fields = (event.model_dump() if isinstance(event, UsageEvent)
              else msgspec.structs.asdict(event))
    return {name: (type(value), value, getattr(value, "tzinfo", None))
            for name, value in fields.items()}


def timestamps() -> st.SearchStrategy[Any]:
    def text(at: datetime, sep: str, digits: int, zone: str) -> str:
        fraction = f".{at.microsecond:06d}{at.microsecond % 997:03d}"[:digits + 1] if digits else ""
        return at.strftime(f"%Y-%m-%d{sep}%H:%M:%S") + fraction + zone

    zones = st.sampled_from(["Z", "z", "+00:00", "-00:00", "+01:00", "-05:30", "+23:59", "+24:00",
                             "", "+0100", "UTC"])
    return st.one_of(
        st.builds(text, st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
                  st.sampled_from(["T", "t", " ", "_"]), st.integers(0, 9), zones),
        st.sampled_from(["2026-01-01T00:00:60Z", "2026-02-29T00:00:00Z", "2026-01-01T24:00:00Z",
                         "2026-01-01T00:00:00.Z", "2026-01-01", "0001-01-01T00:00:00+01:00",
                         "2026-01-01T00:00:00Z\n", " 2026-01-01T00:00:00Z", ""]),
        st.integers(), st.none(), st.just(datetime(2026, 1, 1, tzinfo=UTC)),
    )


IDS = st.one_of(st.sampled_from(["acme", "a" * 128, "a" * 129, "", "acme\n", "ac me", "a/b",
                                 "caf\u00e9", "\x7f", "~!\"#", "x\u200b"]),
                st.text(max_size=4), st.integers(0, 3), st.none())
TOKENS = st.one_of(st.integers(-2, 3000), st.sampled_from(
    [True, False, 1.0, "1", None, 10**10, 10**10 + 1, 2**64, -(2**70)]))
NUMBERS = st.one_of(st.floats(), st.integers(-5, 10**7), st.sampled_from(
    [True, "1", None, 1e6, 1e6 + 1e-9, -0.0, 10**400, float("inf")]))
TAG_VALUES = st.one_of(st.sampled_from(["", "v", "x" * 256, "x" * 257, "a\nb", "a\u200bb",
                                        "a\u202eb", "\x85", "ok\u00e9"]), st.text(max_size=3),
                       st.integers())
FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "event_id": IDS, "ts": timestamps(), "tenant": IDS, "service": IDS, "team": IDS,
    "api_key_id": IDS, "request_id": IDS, "provider": IDS,
    "model": st.one_of(st.sampled_from(["gpt-4o", "claude-sonnet-4"]), IDS),
    "input_tokens": TOKENS, "cached_input_tokens": TOKENS, "cache_write_input_tokens": TOKENS,
    "output_tokens": TOKENS, "reasoning_tokens": TOKENS, "cost_usd": NUMBERS,
    "kind": st.sampled_from(["llm", "compute", "storage", "network", "other", "LLM", "gpu", 1]),
    "latency_ms": NUMBERS,
    "status": st.sampled_from(["ok", "error", "timeout", "rate_limited", "OK", None]),
    "tags": st.one_of(st.dictionaries(IDS.filter(lambda k: isinstance(k, str)), TAG_VALUES,
                                      max_size=34), st.just([]), st.just("k=v")),
    "unknown": st.just(1),
}


@st.composite
def field_dicts(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly valid events with a few fields changed, dropped or hostile."""
    fields = dict(VALID)
    for name in draw(st.lists(st.sampled_from(sorted(FIELDS)), max_size=4, unique=True)):
        if draw(st.booleans()) and name in fields:
            del fields[name]
        else:
            fields[name] = draw(FIELDS[name])
    return fields


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field_dicts())
def test_a_record_only_where_usage_event_accepts_and_then_the_same_values(
        fields: dict[str, Any]) -> None:
    record = usage_record(dict(fields))
    try:
        event = UsageEvent.model_validate(fields)
    except (ValidationError, ValueError, OverflowError):
        assert record is None, f"the fast path accepted what UsageEvent refuses: {fields}"
        return
    if record is not None:
        assert as_values(record) == as_values(event)


@pytest.mark.parametrize("change", [
    {"tenant": "acme\n"}, {"event_id": "e1\n"}, {"tags": {"k": "v\n"}}, {"tags": {"k\n": "v"}},
    {"input_tokens": True}, {"input_tokens": 10.0}, {"input_tokens": "10"},
    {"input_tokens": 10**10 + 1}, {"cost_usd": "0.1"}, {"cost_usd": True}, {"cost_usd": -0.1},
    {"cost_usd": 1e6 + 1}, {"latency_ms": float("inf")}, {"ts": "2026-01-01T00:00:00"},
    {"ts": 1767225600}, {"kind": "LLM"}, {"unknown": 1}, {"cached_input_tokens": 2000},
    {"kind": "compute"}, {"tags": {f"k{i}": "v" for i in range(33)}}, {"team": None, "x": 1},
])
def test_what_usage_event_refuses_goes_to_usage_event(change: dict[str, Any]) -> None:
    fields = {**VALID, **change}
    assert usage_record(fields) is None
    with pytest.raises((ValidationError, ValueError)):
        UsageEvent.model_validate(fields)


@pytest.mark.parametrize("ts", [
    "2026-01-01T00:00:00Z", "2026-01-01t00:00:00z", "2026-01-01 00:00:00.5Z",
    "2026-01-01T01:00:00.123456+01:00", "2025-12-31T19:00:00-05:00", "2026-01-01T00:00:00-00:00",
])
def test_the_usual_shapes_take_the_fast_path(ts: str) -> None:
    fields = {**VALID, "ts": ts, "tags": {"env": "prod"}, "cost_usd": 0.5, "kind": "compute",
              "latency_ms": 12, "status": "error", "team": "t", "request_id": "r 1"[:1]}
    record = usage_record(fields)
    assert record is not None
    assert as_values(record) == as_values(UsageEvent.model_validate(fields))
    assert record.ts.tzinfo is UTC


def test_more_than_six_fraction_digits_go_to_usage_event_which_truncates() -> None:
    fields = {**VALID, "ts": "2026-01-01T00:00:00.9999999Z"}
    assert usage_record(fields) is None
    assert UsageEvent.model_validate(fields).ts == datetime(2026, 1, 1, 0, 0, 0, 999999,
                                                            tzinfo=UTC)


def test_ingest_gives_the_same_figures_whichever_decoder_took_an_event() -> None:
    """The same events once on the fast path and once through UsageEvent (a seventh fraction
    digit sends them there) are priced, counted and folded alike."""
    now = datetime(2026, 1, 1, 1, tzinfo=UTC)
    ingest = UsageIngestor(Catalog.shipped(), EventLimits())

    def run(suffix: str) -> Any:
        batch = [RawMessage("u", 0, i, b"acme", msgspec.json.encode(
            {**VALID, "event_id": f"e{i}", "ts": f"2026-01-01T00:00:0{i}.000001{suffix}Z",
             "tags": {"i": str(i)}, "output_tokens": i})) for i in range(5)]
        return ingest.process(batch, lambda k: None, lambda k: None, now)

    fast, slow = run(""), run("0")
    assert all(type(p.event) is UsageRecord for p, _, _ in fast.accepted)
    assert all(type(p.event) is UsageEvent for p, _, _ in slow.accepted)
    assert [(p.cost_usd, p.priced_by, p.provider, s, o) for p, s, o in fast.accepted] == [
        (p.cost_usd, p.priced_by, p.provider, s, o) for p, s, o in slow.accepted]
    assert {k: v.to_list() for k, v in fast.spend.items()} == {
        k: v.to_list() for k, v in slow.spend.items()}
    assert fast.seen == slow.seen


def test_a_zone_offset_is_normalised_to_utc_like_usage_event() -> None:
    record = usage_record({**VALID, "ts": "2026-01-01T05:30:00+05:30"})
    assert record is not None and record.ts == datetime(2026, 1, 1, tzinfo=UTC)
    assert record.ts.tzinfo is UTC and record.ts.utcoffset() == timedelta(0)
    assert timezone.utc is UTC
