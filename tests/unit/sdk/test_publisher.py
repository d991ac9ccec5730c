"""UsagePublisher.publish_many's messages: batch envelopes per tenant, within the limits."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from prsm_events.events.envelope import decode_envelope
from prsm_events.events.usage import UsageEvent
from prsm_events.events.validation import EventLimits
from prsm_events.sdk.publisher import UsagePublisher
from tests.factories import usage


def messages(pub: UsagePublisher, events) -> list[tuple[bytes, list[str]]]:
    """(key, event ids) per message, as the worker decodes them."""
    out = []
    for key, value, count in pub.envelopes(events):
        got = decode_envelope(value, UsageEvent, EventLimits(), datetime.now(UTC))
        assert len(got) == count and all(e.error is None for e in got)
        assert len(value) <= pub.batch_bytes
        out.append((key, [e.event.event_id for e in got]))
    return out


def test_events_are_grouped_by_tenant_in_order_up_to_batch_events():
    pub = UsagePublisher("127.0.0.1:1", batch_events=3)
    events = [usage(f"{t}{i}", tenant=t) for i in range(5) for t in ("a", "b")]
    assert messages(pub, events) == [
        (b"a", ["a0", "a1", "a2"]), (b"b", ["b0", "b1", "b2"]),
        (b"a", ["a3", "a4"]), (b"b", ["b3", "b4"])]


def test_a_lone_event_is_a_plain_object_and_batch_events_1_sends_one_per_message():
    key, value, _ = next(UsagePublisher("127.0.0.1:1").envelopes([usage("x", tenant="solo")]))
    assert key == b"solo"
    assert orjson.loads(value)["event_id"] == "x"
    one = UsagePublisher("127.0.0.1:1", batch_events=1)
    assert [ids for _, ids in messages(one, [usage("p"), usage("q")])] == [["p"], ["q"]]
    with pytest.raises(ValueError, match="batch_events"):
        UsagePublisher("127.0.0.1:1", batch_events=0)


def test_messages_stay_within_the_byte_budget():
    pub = UsagePublisher("127.0.0.1:1", batch_events=10_000)
    pub.batch_bytes = 2_000
    events = [usage(f"e{i}", tags={"note": "x" * 100}) for i in range(100)]
    got = messages(pub, events)
    assert len(got) > 5 and [i for _, ids in got for i in ids] == [f"e{i}" for i in range(100)]
