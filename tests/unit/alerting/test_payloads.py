"""What deliveries send: the alert's contract JSON, signed; a Slack message with the figures."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from prsm_events.alerting.payloads import signature, slack_body, verify_signature, webhook_body
from prsm_events.events.alerts import Alert

ALERT = Alert(alert_id="a9", ts=datetime(2026, 3, 1, tzinfo=UTC), kind="forecast_overrun",
              scope="tenant:acme", severity="warning", observed=120.0, expected=100.0,
              score=1.2, message="forecast $120 by month end")


def test_the_webhook_body_is_the_alert_as_on_the_topic():
    assert Alert.model_validate_json(webhook_body(ALERT)) == ALERT


def test_a_signature_holds_only_for_its_body_key_and_time():
    body = webhook_body(ALERT)
    header = signature(b"k", body, at=1_000)
    assert verify_signature(b"k", body, header, now=1_100)
    assert not verify_signature(b"k", body + b" ", header, now=1_100)
    assert not verify_signature(b"other", body, header, now=1_100)
    assert not verify_signature(b"k", body, header, now=1_000 + 301)  # too old: a replay
    assert not verify_signature(b"k", body, "v1=abc", now=1_000)
    assert not verify_signature(b"k", body, "t=x,v1=abc", now=1_000)


def test_slack_gets_a_summary_line_and_the_figures():
    msg = orjson.loads(slack_body(ALERT))
    assert msg["text"] == (":warning: *WARNING* forecast overrun on `tenant:acme`: "
                           "forecast $120 by month end")
    fields = [f["text"] for f in msg["blocks"][1]["fields"]]
    assert fields == ["*observed*\n120.0000", "*expected*\n100.0000", "*score*\n1.200",
                      "*alert id*\na9"]
