from datetime import UTC, datetime, timedelta

import orjson
import pytest

from prsm_events.errors import InvalidEvent
from prsm_events.validation import EventLimits, decode_usage

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
        (orjson.dumps({**GOOD, "input_tokens": "many"}), "invalid_field"),
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
