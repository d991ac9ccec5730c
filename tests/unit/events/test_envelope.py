"""Batch envelopes: every element judged alone, bad ones named by index, whole-message
failures as one dead letter."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prsm_events.events.envelope import (
    decode_envelope,
    decode_envelopes,
    encode_envelope,
    split_array,
)
from prsm_events.events.fast_path import UsageRecord, usage_array, usage_json, usage_records
from prsm_events.events.usage import UsageEvent
from prsm_events.events.validation import EventLimits
from tests.unit.events.test_fast_path import FIELDS, GOOD_USAGE, VALID, field_dicts, valid_dicts

NOW = datetime(2026, 1, 1, 0, 5, tzinfo=UTC)


def event(event_id: str, **kw: object) -> dict[str, object]:
    return {"event_id": event_id, "ts": "2026-01-01T00:00:00Z", "tenant": "acme",
            "service": "chat", **kw}


def decode(raw: bytes, limits: EventLimits | None = None):
    return decode_envelope(raw, UsageEvent, limits or EventLimits(), NOW)


def codes(elements) -> list[tuple[int | None, str | None]]:
    return [(e.index, e.error.code if e.error else None) for e in elements]


def test_a_json_object_is_one_event_and_an_array_is_many():
    one = decode(orjson.dumps(event("a")))
    assert codes(one) == [(None, None)] and one[0].event.event_id == "a"
    many = decode(encode_envelope([orjson.dumps(event(f"e{i}")) for i in range(3)]))
    assert codes(many) == [(0, None), (1, None), (2, None)]
    assert [e.event.event_id for e in many] == ["e0", "e1", "e2"]


def test_each_bad_element_is_named_by_index_and_carries_its_own_json():
    raw = orjson.dumps([event("ok"), event("neg", cost_usd=-1), "text", event("x", extra=1),
                        event("late", ts="2020-01-01T00:00:00Z"), event("ok2")])
    got = decode(raw, EventLimits(max_age=EventLimits().max_age / 100))
    assert codes(got) == [(0, None), (1, "invalid_field"), (2, "not_an_object"),
                          (3, "unknown_field"), (4, "ts_out_of_range"), (5, None)]
    assert got[1].error.detail.startswith("event 1 of the batch: cost_usd")
    assert orjson.loads(got[1].original) == event("neg", cost_usd=-1)
    assert got[2].original == b'"text"'
    assert orjson.loads(got[0].original) == event("ok")  # for a rejection after decoding


def test_a_repeated_key_in_one_element_fails_that_element_alone():
    raw = (b'[{"event_id": "a", "ts": "2026-01-01T00:00:00Z", "tenant": "t", "service": "s"},'
           b' {"event_id": "b", "cost_usd": -1, "cost_usd": 0.5, "ts": "2026-01-01T00:00:00Z",'
           b' "tenant": "t", "service": "s"}]')
    got = decode(raw)
    assert codes(got) == [(0, None), (1, "duplicate_key")]
    assert got[1].original.startswith(b'{"event_id": "b", "cost_usd": -1, "cost_usd": 0.5')


@pytest.mark.parametrize(("raw", "code"), [
    (b"[", "invalid_json"),
    (b"[{}, ", "invalid_json"),
    (b"[]", "empty"),
    (b"  [ ]  ", "empty"),
    (b'[{"a": 1, "a": 2},]', "invalid_json"),  # a repeated key, and not an array either
])
def test_a_batch_that_is_not_an_array_of_json_is_one_dead_letter(raw, code):
    got = decode(raw)
    assert codes(got) == [(None, code)] and got[0].original == raw


def test_elements_over_the_event_limit_and_batches_over_the_message_limit():
    limits = EventLimits(max_bytes=300, max_batch_bytes=2000)
    small, big = event("s"), event("b", tags={"note": "x" * 400})
    got = decode(orjson.dumps([small, big, small]), limits)
    assert codes(got) == [(0, None), (1, "oversized"), (2, None)]
    assert "event is" in got[1].error.detail
    too_many = decode(orjson.dumps([small] * 40), limits)
    assert codes(too_many) == [(None, "oversized")]
    assert "batch is" in too_many[0].error.detail


def test_an_element_is_measured_as_re_encoded_not_as_written():
    """Numbers grow when encoded again (``1e15`` is ``1000000000000000.0``): an element
    written small enough can still be too large, and a roomy one written with much
    whitespace is not."""
    limits = EventLimits(max_bytes=300, max_batch_bytes=4000)
    grows = b"[" + b",".join([b"1e15"] * 30) + b"]"  # 151 bytes written, 571 re-encoded
    roomy = b'{"event_id": "a"' + b" " * 400 + b"}"
    got = decode(b"[" + b",".join([orjson.dumps(event("s")), grows, roomy]) + b"]" + b" " * 300,
                 limits)
    assert [c for c, _ in codes(got)] == [0, 1, 2]
    assert codes(got)[1] == (1, "oversized") and "571 bytes" in got[1].error.detail
    assert codes(got)[2][1] != "oversized"


def test_a_batch_of_too_many_elements_is_one_dead_letter():
    """A megabyte of tiny bad elements would otherwise be half a million dead letters."""
    got = decode(b"[" + b",".join([b"1"] * 11) + b"]", EventLimits(max_batch_events=10))
    assert codes(got) == [(None, "oversized")] and "11 events" in got[0].error.detail
    assert len(decode(b"[" + b",".join([b"1"] * 10) + b"]", EventLimits(max_batch_events=10))) == 10


def test_an_integer_beyond_64_bits_is_dead_lettered_with_its_digits():
    got = decode(b'[{"event_id": "a", "input_tokens": 123456789012345678901234567890}]')
    assert got[0].error is not None
    assert b"123456789012345678901234567890" in got[0].original


def test_split_array_finds_elements_as_written():
    assert split_array(b' [ {"a": "],[\\"{"} , 2,[3,[4]] ] ') == [
        b'{"a": "],[\\"{"}', b"2", b"[3,[4]]"]
    assert split_array(b"[1,,2]") is None
    assert split_array(b"[1]]") is None
    assert split_array(b'["open]') is None
    assert split_array(b"{}") is None


ELEMENTS = st.one_of(
    st.builds(lambda i, kw: orjson.dumps(event(f"e{i}", **kw)), st.integers(0, 5),
              st.fixed_dictionaries({}, optional={
                  "ts": st.sampled_from([
                      "2026-01-01T01:00:00+01:00", "2026-01-01T00:00:00.1234567Z",
                      "2025-01-01T00:00:00Z", "2026-01-01T00:00:00"]),
                  "tenant": st.sampled_from(["acme", "ac me", "a/b", ""]),
                  "tags": st.sampled_from([{}, {"k": "v"}, {"k": "a\u200bb"}, {"k k": "v"}]),
                  "input_tokens": st.sampled_from([10, -1, True, 10.0]),
                  "cost_usd": st.sampled_from([0.5, 1e7, "1"]),
                  "extra": st.just(1)})),
    st.sampled_from([b"7", b'"text"', b"[]", b"null", b'{"event_id": "d", "event_id": "d"}',
                     b'{"event_id":"x","ts":"2026-01-01T00:00:00Z","tenant":"t","service":"s",'
                     b'"tags":{"a":"1","a":"2"}}']))


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    """One event, an envelope of several, or hostile bytes."""
    kind = draw(st.sampled_from(["one", "many", "bytes"]))
    if kind == "one":
        return draw(ELEMENTS)
    if kind == "many":
        return encode_envelope(draw(st.lists(ELEMENTS, min_size=1, max_size=6)))
    return draw(st.sampled_from([b"", b"   ", b"{oops", b"[", b"[1,]", b"\xff", b"[]"]))


def judged(elements) -> list[tuple[object, ...]]:
    """Each element's index, verdict and values (whichever decoder made the event)."""
    def values(e: object) -> object:
        if e is None:
            return None
        return msgspec.structs.asdict(e) if isinstance(e, msgspec.Struct) else e.model_dump()
    return [(e.index, e.error and (e.error.code, e.error.detail), values(e.event), e.original)
            for e in elements]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(messages(), min_size=1, max_size=5),
       st.sampled_from([EventLimits(), EventLimits(max_bytes=160)]))
def test_messages_decoded_together_get_what_each_gets_alone(raws, limits):
    """decode_envelopes hands every message's events to the fast path at once: each message
    still gets what it gets alone, and what the model alone gives it."""
    together = decode_envelopes(raws, UsageEvent, limits, NOW, usage_records)
    alone = [decode_envelope(raw, UsageEvent, limits, NOW, usage_records) for raw in raws]
    model = [decode_envelope(raw, UsageEvent, limits, NOW) for raw in raws]
    assert [judged(m) for m in together] == [judged(m) for m in alone]
    assert [judged(m) for m in together] == [judged(m) for m in model]


def canonical(fields: dict) -> str:
    """An event as the SDK writes it (``usage_json``), where it can be one."""
    try:
        return usage_json(msgspec.convert(fields, UsageRecord)).decode()
    except (msgspec.ValidationError, TypeError):
        return json.dumps(fields, default=str, separators=(",", ":"), ensure_ascii=False)


@st.composite
def written_batches(draw: st.DrawFn) -> bytes:
    """Batches as clients write them: as the SDK does, compact, spaced, pretty or with
    escapes; now and then with a key of an event or of its tags written twice."""
    events = draw(st.lists(st.one_of(valid_dicts(VALID, GOOD_USAGE), st.just(VALID),
                                     field_dicts(VALID, FIELDS)), min_size=1, max_size=6))
    layout = draw(st.sampled_from(["canonical"] * 4 + [
        {"separators": (",", ":"), "ensure_ascii": False},
        {"separators": (", ", ": "), "ensure_ascii": False}, {"separators": (",", " :")},
        {"indent": 1}, {"separators": (",", ":")}]))
    texts = [canonical(e) if layout == "canonical" else json.dumps(e, default=str, **layout)
             for e in events]
    i = draw(st.integers(0, len(texts) - 1))
    repeat = draw(st.sampled_from(["none", "none", "key", "tag"]))
    if repeat == "key" and events[i]:
        key = draw(st.sampled_from(sorted(events[i])))
        value = draw(st.sampled_from([events[i][key], 1, "x", None]))
        texts[i] = texts[i][:-1] + f',"{key}":{json.dumps(value)}}}'
    elif repeat == "tag" and isinstance(events[i].get("tags"), dict) and events[i]["tags"]:
        key = draw(st.sampled_from(sorted(events[i]["tags"])))
        texts[i] = texts[i].replace('"tags":{', f'"tags":{{{json.dumps(key)}:"again",', 1)
    return ("[" + ",".join(texts) + "]").encode()


def as_written(elements) -> list[tuple[object, ...]]:
    """judged, with each element's JSON as its value (as written or re-encoded alike)."""
    return [(*j[:3], None if j[3] is None else json.loads(j[3])) for j in judged(elements)]


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(written_batches(), min_size=1, max_size=3),
       st.sampled_from([EventLimits(), EventLimits(max_bytes=400)]))
def test_a_batch_decoded_whole_gets_what_each_element_gets_alone(raws, limits):
    """usage_array decodes a batch straight from its bytes where it can prove it reads what a
    careful parse would (no key repeated, every event valid): every event gets what the model
    gives it element by element, a repeated key or a bad event anywhere leaving the batch to
    that path."""
    whole = decode_envelopes(raws, UsageEvent, limits, NOW, usage_records, usage_array)
    model = [decode_envelope(raw, UsageEvent, limits, NOW) for raw in raws]
    assert [as_written(m) for m in whole] == [as_written(m) for m in model]


def test_a_batch_the_sdk_writes_is_decoded_whole_each_event_as_written():
    events = [UsageEvent.model_validate(event(f"e{i}", input_tokens=i, tags={"k": f"{i}"}))
              for i in range(3)]
    raw = encode_envelope([usage_json(e) for e in events])
    found = usage_array(raw)
    assert found is not None
    records, written = found
    assert [msgspec.structs.asdict(r) for r in records] == [e.model_dump() for e in events]
    [elements] = decode_envelopes([raw], UsageEvent, EventLimits(), NOW, usage_records,
                                  usage_array)
    assert [e.original for e in elements] == list(written) == [usage_json(e) for e in events]
    assert written[1:] == [usage_json(e) for e in events[1:]] and len(written) == 3
    assert [json.loads(w) for w in written] == [
        json.loads(e.model_dump_json(exclude_defaults=True)) for e in events]
    # written another way (spaced, the defaults written out), the batch is parsed element
    # by element, and each event is the same
    for other in (encode_envelope([e.model_dump_json().encode() for e in events]),
                  raw.replace(b'","', b'", "')):
        assert usage_array(other) is None
        [again] = decode_envelopes([other], UsageEvent, EventLimits(), NOW, usage_records,
                                   usage_array)
        assert [e.event for e in again] == records
    # written twice, a key leaves the batch to the careful parse, which names it
    again = raw.replace(b'"tenant":"acme"', b'"tenant":"acme","tenant":"other"', 1)
    assert usage_array(again) is None
    [elements] = decode_envelopes([again], UsageEvent, EventLimits(), NOW, usage_records,
                                  usage_array)
    assert codes(elements) == [(0, "duplicate_key"), (1, None), (2, None)]


@pytest.mark.parametrize(("field", "value", "valid"), [
    ("tenant", "a/b", False), ("tenant", "a b", False), ("tenant", "a\x7fb", False),
    ("tenant", "caf\u00e9", False), ("tenant", "a\u200bb", False),
    ("tags", {"k": "a b/c \u00e9"}, True), ("tags", {"k": "a\x7fb"}, False),
    ("tags", {"k": "a\u200bb"}, False), ("event_id", "a/b c"[:3], True)])
def test_a_batch_decoded_whole_checks_every_string_as_the_model_does(field, value, valid):
    """Strings of plain ASCII are taken as they are; any other character has its string
    checked against the model's pattern, decoded whole or not."""
    fields = [event("e1"), {**event("e2"), field: value}]
    raw = encode_envelope([usage_json(msgspec.convert(f, UsageRecord)) for f in fields])
    [elements] = decode_envelopes([raw], UsageEvent, EventLimits(), NOW, usage_records,
                                  usage_array)
    assert (usage_array(raw) is not None) == valid
    assert codes(elements) == [(0, None), (1, None if valid else "invalid_identifier")]
