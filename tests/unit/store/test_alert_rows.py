"""An alert record as an ``alerts`` row; anything else is refused with the reason."""

from __future__ import annotations

import msgspec
import pytest

from prsm_events.events.alerts import Alert
from prsm_events.store.alert_rows import ALERT_COLUMNS, alert_row


def test_an_alert_as_the_worker_sends_it_is_one_row() -> None:
    alert = Alert(alert_id="anomaly:x:1", ts="2026-03-01T12:00:00Z", kind="anomaly",
                  scope="tenant:acme", severity="high", observed=12.5, expected=3.0, score=9.1,
                  message="spend 4x the usual", driver="service:chat",
                  details={"window_s": 60.0, "model": "gpt-4o"})
    row = msgspec.json.decode(alert_row(alert.model_dump_json().encode()))
    assert tuple(row) == ALERT_COLUMNS
    assert (row["kind"], row["severity"], row["driver"], row["period"]) == (
        "anomaly", "high", "service:chat", None)
    assert msgspec.json.decode(row["details"]) == {"window_s": 60.0, "model": "gpt-4o"}


@pytest.mark.parametrize("value", [
    None, b"{", b'"alert"', b'{"alert_id":"a"}',
    b'{"alert_id":"a","ts":"2026-01-01T00:00:00Z","kind":"anomaly","scope":"s",'
    b'"severity":"apocalyptic","observed":1,"expected":1,"score":1,"message":"m"}',
    b'{"alert_id":"a","ts":"2026-01-01T00:00:00","kind":"anomaly","scope":"s",'
    b'"severity":"high","observed":1,"expected":1,"score":1,"message":"m"}',
])
def test_what_is_not_an_alert_is_refused_with_the_reason(value: bytes | None) -> None:
    with pytest.raises(ValueError, match="not an alert"):
        alert_row(value)
