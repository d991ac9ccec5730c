"""The hot paths' decoders (usage_record, request_record): each gives a record only where its
contract (UsageEvent, RequestEvent) accepts the same fields, and then the very same values;
anything else goes to the contract's model, which says why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from prsm_events.accounting.budgets import Budget, BudgetBook
from prsm_events.accounting.catalog import Catalog
from prsm_events.accounting.ingest import RawMessage, UsageIngestor
from prsm_events.accounting.ledger import BudgetLedger
from prsm_events.decisions.admission import AdmissionDesk
from prsm_events.errors import InvalidEvent
from prsm_events.events.decision import encode_decision
from prsm_events.events.fast_path import (
    RequestRecord,
    UsageRecord,
    request_record,
    request_records,
    usage_record,
    usage_records,
)
from prsm_events.events.request import RequestEvent
from prsm_events.events.usage import UsageEvent
from prsm_events.events.validation import EventLimits, decode_request, decode_requests
from prsm_events.kafka.partitioning import owner_partition

VALID = {"event_id": "e1", "ts": "2026-01-01T00:00:00Z", "tenant": "acme", "service": "chat",
         "model": "gpt-4o", "input_tokens": 1000, "cached_input_tokens": 200,
         "output_tokens": 50}


REQUEST = {"request_id": "r1", "ts": "2026-01-01T00:00:00Z", "tenant": "acme",
           "service": "chat", "model": "gpt-4o", "est_input_tokens": 1000}


def as_values(event: Any) -> dict[str, Any]:
    """Every field's value with its type (an enum member is not its string)."""
    fields = (event.model_dump() if isinstance(event, UsageEvent | RequestEvent)
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


REQUEST_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "request_id": st.one_of(IDS, st.sampled_from(["a|b", "a/b:c#d"])), "ts": timestamps(),
    "tenant": st.one_of(IDS, st.sampled_from(["a:b", "a|b", "a#b", "a/b", "t" * 128])),
    "service": IDS, "model": IDS, "provider": IDS, "team": IDS, "api_key_id": IDS,
    "est_input_tokens": st.one_of(TOKENS, st.sampled_from([10**8, 10**8 + 1])),
    "est_output_tokens": st.one_of(TOKENS, st.sampled_from([10**8, 10**8 + 1])),
    "priority": st.sampled_from(["low", "normal", "high", "critical", "urgent", "LOW", None, 1]),
    "max_cost_usd": st.one_of(NUMBERS, st.sampled_from([0, 0.0, 1e-12])),
    "min_quality": st.one_of(NUMBERS, st.sampled_from([0, 1, 1.0000001, 0.5])),
    "capabilities": st.one_of(st.lists(IDS, max_size=17), st.just("tools"), st.just({})),
    "unknown": st.just(1),
}


@st.composite
def field_dicts(draw: st.DrawFn, base: dict[str, Any], strategies: dict[str, Any]
                ) -> dict[str, Any]:
    """Mostly valid events with a few fields changed, dropped or hostile."""
    fields = dict(base)
    for name in draw(st.lists(st.sampled_from(sorted(strategies)), max_size=4, unique=True)):
        if draw(st.booleans()) and name in fields:
            del fields[name]
        else:
            fields[name] = draw(strategies[name])
    return fields


def check_against_the_model(fields: dict[str, Any], fast: Any, model: Any) -> None:
    record = fast(dict(fields))
    try:
        event = model.model_validate(fields)
    except (ValidationError, ValueError):
        assert record is None, f"the fast path accepted what {model.__name__} refuses: {fields}"
        return
    if record is not None:
        assert as_values(record) == as_values(event)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field_dicts(VALID, FIELDS))
def test_a_record_only_where_usage_event_accepts_and_then_the_same_values(
        fields: dict[str, Any]) -> None:
    check_against_the_model(fields, usage_record, UsageEvent)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field_dicts(REQUEST, REQUEST_FIELDS))
def test_a_request_record_only_where_request_event_accepts_and_then_the_same_values(
        fields: dict[str, Any]) -> None:
    check_against_the_model(fields, request_record, RequestEvent)


@pytest.mark.parametrize("change", [
    {"tenant": "acme\n"}, {"tenant": "a:b"}, {"request_id": "a|b"}, {"request_id": ""},
    {"est_input_tokens": 10**8 + 1}, {"est_input_tokens": 1.0}, {"priority": "urgent"},
    {"max_cost_usd": 0}, {"max_cost_usd": "1"}, {"min_quality": 1.5}, {"model": None},
    {"capabilities": [f"c{i}" for i in range(17)]}, {"capabilities": ["a b"]}, {"x": 1},
    {"ts": "2026-01-01T00:00:00"},
])
def test_what_request_event_refuses_goes_to_request_event(change: dict[str, Any]) -> None:
    fields = {**REQUEST, **change}
    assert request_record(fields) is None
    with pytest.raises((ValidationError, ValueError)):
        RequestEvent.model_validate(fields)


def test_a_request_is_decided_alike_whichever_decoder_took_it() -> None:
    """The same requests decoded by request_record and by RequestEvent (a seventh fraction
    digit sends them there) get the same decisions and reservations."""
    now = datetime(2026, 1, 1, 0, 0, 10, tzinfo=UTC)

    def run(suffix: str) -> tuple[list[str], int]:
        book = BudgetBook([Budget(scope="tenant:acme", period="day", limit_usd=0.03),
                           Budget(scope="global", period="month", limit_usd=1.0)])
        desk = AdmissionDesk(book, BudgetLedger({}, {}, 4, owner_partition), Catalog.shipped())
        raws = [msgspec.json.encode({
            **REQUEST, "request_id": f"r{i}", "ts": f"2026-01-01T00:00:0{i}.000001{suffix}Z",
            "priority": ["low", "normal", "high"][i % 3], "capabilities": ["tools"],
            "est_output_tokens": 500}) for i in range(6)]
        answers = []
        for raw in [*raws, raws[0]]:  # the first again: already decided
            request = decode_request(raw, EventLimits(), now)
            assert type(request) is (RequestRecord if not suffix else RequestEvent)
            answers.append(encode_decision(desk.admit(request, now)).decode())
        held = desk.ledger.view(book.get("tenant:acme|day"), "acme", now.timestamp()).reserved
        return answers, held

    fast, slow = run(""), run("0")
    assert fast == slow
    reasons = [msgspec.json.decode(a)["reason"]["code"] for a in fast[0]]
    assert reasons[-1] == "already_decided" and len(set(reasons)) >= 3, reasons


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
    assert all(type(p.event) is UsageRecord for p, _, _ in fast.accepted_events())
    assert all(type(p.event) is UsageEvent for p, _, _ in slow.accepted_events())
    assert [(p.cost_usd, p.priced_by, p.provider, s, o)
            for p, s, o in fast.accepted_events()] == [
        (p.cost_usd, p.priced_by, p.provider, s, o) for p, s, o in slow.accepted_events()]
    assert {k: v.to_list() for k, v in fast.spend.items()} == {
        k: v.to_list() for k, v in slow.spend.items()}
    assert fast.seen == slow.seen


def test_a_zone_offset_is_normalised_to_utc_like_usage_event() -> None:
    record = usage_record({**VALID, "ts": "2026-01-01T05:30:00+05:30"})
    assert record is not None and record.ts == datetime(2026, 1, 1, tzinfo=UTC)
    assert record.ts.tzinfo is UTC and record.ts.utcoffset() == timedelta(0)
    assert UTC is UTC


GOOD_IDS = st.sampled_from(["acme", "a" * 128, "~!\"#", "x.y-z_1", "A:B|C#D"])
GOOD_USAGE: dict[str, st.SearchStrategy[Any]] = {
    "event_id": st.sampled_from(["e1", "a/b c"[:3], "~" * 128, "e|1"]),
    "ts": st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-01t01:00:00.5+01:00",
                           "2025-12-31 19:00:00.123456-05:00", "0001-01-01T00:00:00+01:00"]),
    "tenant": GOOD_IDS, "service": GOOD_IDS, "team": st.one_of(GOOD_IDS, st.none()),
    "provider": st.one_of(GOOD_IDS, st.none()), "model": st.one_of(GOOD_IDS, st.none()),
    "tags": st.dictionaries(GOOD_IDS, st.sampled_from(["", "v", "ok\u00e9", "x" * 256]),
                            max_size=3),
    "latency_ms": st.sampled_from([0, 1.5, None]),
}


@st.composite
def valid_dicts(draw: st.DrawFn, base: dict[str, Any], strategies: dict[str, Any]
                ) -> dict[str, Any]:
    """Valid events: some fields set to other valid values."""
    names = draw(st.lists(st.sampled_from(sorted(strategies)), max_size=5, unique=True))
    return {**base, **{name: draw(strategies[name]) for name in names}}


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.lists(valid_dicts(VALID, GOOD_USAGE), min_size=1, max_size=6),
    st.lists(st.one_of(field_dicts(VALID, GOOD_USAGE), field_dicts(VALID, FIELDS)),
             min_size=1, max_size=6)))
def test_a_batch_of_usage_gets_what_each_event_would_alone(batch: list[dict[str, Any]]) -> None:
    """usage_records checks a batch's strings by one match per pattern: each event still gets
    exactly what usage_record (and UsageEvent) gives it alone."""
    together = usage_records(batch)
    alone = [usage_record(dict(fields)) for fields in batch]
    assert [r and as_values(r) for r in together] == [r and as_values(r) for r in alone]
    for fields in batch:
        check_against_the_model(fields, usage_record, UsageEvent)


GOOD_REQUEST: dict[str, st.SearchStrategy[Any]] = {
    "request_id": st.sampled_from(["r1", "a/b:c#d", "~" * 128]),
    "ts": GOOD_USAGE["ts"], "tenant": st.sampled_from(["acme", "t" * 128, "a.b-c~"]),
    "service": GOOD_IDS, "model": GOOD_IDS, "provider": st.one_of(GOOD_IDS, st.none()),
    "capabilities": st.lists(GOOD_IDS, max_size=3),
}


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.lists(valid_dicts(REQUEST, GOOD_REQUEST), min_size=1, max_size=6),
    st.lists(st.one_of(field_dicts(REQUEST, GOOD_REQUEST), field_dicts(REQUEST, REQUEST_FIELDS)),
             min_size=1, max_size=6)))
def test_a_batch_of_requests_gets_what_each_would_alone(batch: list[dict[str, Any]]) -> None:
    together = request_records(batch)
    alone = [request_record(dict(fields)) for fields in batch]
    assert [r and as_values(r) for r in together] == [r and as_values(r) for r in alone]
    for fields in batch:
        check_against_the_model(fields, request_record, RequestEvent)


@pytest.mark.parametrize("change", [
    {"tenant": "ac me"}, {"tags": {"k": "a\u200bb"}}, {"event_id": "e\u00e9"},
    {"ts": "2026-01-01T00:00:00Z\n2026-01-01T00:00:00Z"}, {"cached_input_tokens": 5000},
    {"ts": "2026-01-01T00:00:00.1234567Z"},
])
def test_one_bad_event_in_a_batch_leaves_the_others_on_the_fast_path(
        change: dict[str, Any]) -> None:
    batch = [{**VALID, "event_id": f"e{i}"} for i in range(4)]
    batch[2] = {**batch[2], **change}
    got = usage_records(batch)
    assert [r is None for r in got] == [False, False, True, False]
    assert [r.event_id for r in got if r is not None] == ["e0", "e1", "e3"]


def _decoded_alone(raw: bytes) -> Any:
    try:
        return decode_request(raw, EventLimits(max_bytes=400), datetime(2026, 1, 1, tzinfo=UTC))
    except InvalidEvent as exc:
        return exc


def _verdict(got: Any) -> Any:
    if isinstance(got, InvalidEvent):
        return ("invalid", got.code, got.detail)
    return as_values(got)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(
    st.builds(msgspec.json.encode, valid_dicts(REQUEST, GOOD_REQUEST)),
    st.builds(lambda f: msgspec.json.encode(f, order="deterministic"),
              field_dicts(REQUEST, REQUEST_FIELDS).filter(
                  lambda f: not any(isinstance(v, int) and abs(v) >= 2**64 for v in f.values()))),
    st.sampled_from([b"", b"{oops", b"[]", b"7", b'{"request_id": "r", "request_id": "s"}',
                     b'{"request_id": "' + b"r" * 500 + b'"}'])), min_size=1, max_size=6))
def test_requests_decoded_together_get_what_each_gets_alone(raws: list[bytes]) -> None:
    together = decode_requests(raws, EventLimits(max_bytes=400), datetime(2026, 1, 1, tzinfo=UTC))
    assert [_verdict(g) for g in together] == [_verdict(_decoded_alone(r)) for r in raws]
