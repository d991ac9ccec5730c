from datetime import UTC, datetime, timedelta

import orjson
import pytest

from prsm_events.errors import InvalidEvent
from prsm_events.events.validation import EventLimits, decode_request, decode_usage

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
GOOD = {"event_id": "e1", "ts": "2026-06-01T12:00:00Z", "tenant": "acme", "service": "chat",
        "model": "gpt-4o"}


def decode(raw: bytes, limits: EventLimits | None = None):
    return decode_usage(raw, limits or EventLimits(), NOW)


def code_of(raw: bytes, limits: EventLimits | None = None) -> str:
    with pytest.raises(InvalidEvent) as info:
        decode(raw, limits)
    return info.value.code


def test_accepts_a_good_event():
    assert decode(orjson.dumps(GOOD)).tenant == "acme"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"", "empty"),
        (None, "empty"),
        (b"not json", "invalid_json"),
        (b"\xff\xfe\x00", "invalid_json"),
        (b"[1, 2]", "not_an_object"),
        (orjson.dumps({**GOOD, "colour": "red"}), "unknown_field"),
        (orjson.dumps({k: v for k, v in GOOD.items() if k != "tenant"}), "missing_field"),
        (orjson.dumps({**GOOD, "input_tokens": -5}), "invalid_field"),
        (orjson.dumps({**GOOD, "input_tokens": "many"}), "wrong_type"),
        (orjson.dumps({**GOOD, "ts": "2027-06-01T12:00:00Z"}), "ts_out_of_range"),
        (orjson.dumps({**GOOD, "ts": "2020-01-01T00:00:00Z"}), "ts_out_of_range"),
    ],
)
def test_rejections_carry_a_stable_code(raw, code):
    assert code_of(raw) == code


def test_reason_names_the_field():
    with pytest.raises(InvalidEvent) as info:
        decode(orjson.dumps({**GOOD, "output_tokens": -1}))
    assert "output_tokens" in info.value.reason


def test_oversized_messages_are_rejected_before_parsing():
    limits = EventLimits(max_bytes=300)
    raw = orjson.dumps({**GOOD, "tags": {"pad": "x" * 400}})
    assert code_of(raw, limits) == "oversized"


def test_future_skew_limit_is_configurable():
    raw = orjson.dumps({**GOOD, "ts": "2026-06-01T12:30:00Z"})
    assert decode(raw).event_id == "e1"
    assert code_of(raw, EventLimits(max_future_skew=timedelta(minutes=5))) == "ts_out_of_range"


def _with(fragment: bytes) -> bytes:
    """GOOD with raw JSON ``fragment`` spliced in (to write what orjson would not)."""
    return orjson.dumps(GOOD)[:-1] + b", " + fragment + b"}"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        # lenient input that used to cost money: booleans, strings and floats as numbers
        (_with(b'"input_tokens": true'), "wrong_type"),
        (_with(b'"cost_usd": true'), "wrong_type"),
        (_with(b'"cost_usd": "0.01"'), "wrong_type"),
        (_with(b'"input_tokens": 10.0'), "wrong_type"),
        (_with(b'"input_tokens": 1e3'), "wrong_type"),
        (_with(b'"latency_ms": "12"'), "wrong_type"),
        (_with(b'"tags": {"team": 7}'), "wrong_type"),
        # times: RFC 3339 strings with a zone only
        (orjson.dumps({**GOOD, "ts": 1780315200}), "invalid_timestamp"),
        (orjson.dumps({**GOOD, "ts": "1780315200"}), "invalid_timestamp"),
        (orjson.dumps({**GOOD, "ts": "2026-06-01T12:00:00"}), "invalid_timestamp"),
        (orjson.dumps({**GOOD, "ts": "2026-06-01"}), "invalid_timestamp"),
        (orjson.dumps({**GOOD, "ts": "June 1st"}), "invalid_timestamp"),
        # a repeated key would pass one value to the checks and count another
        (_with(b'"cost_usd": -1, "cost_usd": 0.02'), "duplicate_key"),
        (_with(b'"tags": {"a": "x", "a": "y"}'), "duplicate_key"),
        # ids that look alike or break terminals and logs
        *[(orjson.dumps({**GOOD, "tenant": f"ac{c}me"}), "invalid_identifier")
          for c in ("\x00", "\x1b", "\x7f", "\u200b", "\ufeff", " ", "/", "\u00e9")],
        (orjson.dumps({**GOOD, "service": "\ufeffchat"}), "invalid_identifier"),
        (orjson.dumps({**GOOD, "event_id": "e\n1"}), "invalid_identifier"),
        (orjson.dumps({**GOOD, "tags": {"k": "v\x00"}}), "invalid_identifier"),
        (orjson.dumps({**GOOD, "tags": {"k\u200b": "v"}}), "invalid_identifier"),
        # not JSON as the contract has it
        (_with(b'"cost_usd": NaN'), "invalid_json"),
        (_with(b'"cost_usd": Infinity'), "invalid_json"),
        (b"\xef\xbb\xbf" + orjson.dumps(GOOD), "invalid_json"),
        (_with(b'"tags": {"k": "\\ud800"}'), "invalid_json"),
        (b"[" * 5000 + b"]" * 5000, "invalid_json"),
        (_with(b'"cost_usd": 1e400'), "invalid_field"),
        (_with(b'"input_tokens": 123456789012345678901234567890'), "invalid_field"),
    ],
)
def test_strict_contract_rejections(raw, code):
    assert code_of(raw) == code


def test_strict_contract_keeps_what_is_valid():
    event = decode(_with(b'"cost_usd": 1, "latency_ms": 12, "tags": {"k": "\\u00e9t\\u00e9"}'))
    assert (event.cost_usd, event.latency_ms, event.tags) == (1.0, 12.0, {"k": "été"})
    for ts in ("2026-06-01 12:00:00Z", "2026-06-01t12:00:00z", "2026-06-01T14:00:00.5+02:00"):
        assert decode(orjson.dumps({**GOOD, "ts": ts})).ts.hour == 12


def test_reasons_say_what_is_allowed():
    with pytest.raises(InvalidEvent) as info:
        decode(orjson.dumps({**GOOD, "tenant": "ac\u200bme"}))
    assert info.value.reason == (
        "invalid_identifier: tenant: characters allowed: printable ASCII (0x21-0x7E) except '/'")
    with pytest.raises(InvalidEvent) as info:
        decode(_with(b'"cost_usd": -1, "cost_usd": 0.02'))
    assert info.value.reason.startswith('duplicate_key: message repeats key "cost_usd"')


@pytest.mark.parametrize("ts", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_time_beyond_the_years_utc_can_hold_is_an_invalid_timestamp(ts):
    """Not a processing error: normalising it to UTC overflows."""
    raw = orjson.dumps({"request_id": "r1", "ts": ts, "tenant": "acme", "service": "chat",
                        "model": "gpt-4o"})
    with pytest.raises(InvalidEvent) as exc:
        decode_request(raw, EventLimits(), datetime(2026, 1, 1, tzinfo=UTC))
    assert exc.value.code == "invalid_timestamp" and "out of range" in exc.value.detail
