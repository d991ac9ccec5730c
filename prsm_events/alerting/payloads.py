"""What an alert delivery sends: a signed webhook body, or a Slack incoming-webhook message.

Webhook: ``POST`` of the alert's JSON (the ``prsm.alerts`` contract) with headers
``X-Prsm-Alert-Id`` (deduplicate on it: a delivery retried after a crash comes again with
the same id) and, when the route has a secret, ``X-Prsm-Signature: t=<unix>,v1=<hex>``, the
HMAC-SHA256 of ``<unix>.<body>`` under the secret (Stripe's scheme: check it with
``verify_signature`` and refuse old timestamps).

>>> sig = signature(b"k", b'{"a":1}', at=1700000000)
>>> sig
't=1700000000,v1=1b6ad1bc9bf48c52ce01939866d5877c6cc4e87ddad27e16673cb8c4964394a3'
>>> verify_signature(b"k", b'{"a":1}', sig, now=1700000100, tolerance_s=300)
True
>>> verify_signature(b"k", b'{"a":2}', sig, now=1700000100, tolerance_s=300)
False
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson

from prsm_events.events.alerts import Alert

__all__ = ["signature", "slack_body", "verify_signature", "webhook_body"]


def webhook_body(alert: Alert) -> bytes:
    return alert.model_dump_json().encode()


def signature(key: bytes, body: bytes, at: int) -> str:
    digest = hmac.new(key, str(at).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={digest}"


def verify_signature(key: bytes, body: bytes, header: str, now: float,
                     tolerance_s: float = 300.0) -> bool:
    """True when ``header`` signs ``body`` under ``key`` and is at most ``tolerance_s`` old."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        at = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - at) > tolerance_s:
        return False
    expected = signature(key, body, at).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


_ICON = {"info": ":information_source:", "warning": ":warning:", "high": ":rotating_light:",
         "critical": ":rotating_light:"}


def slack_body(alert: Alert) -> bytes:
    """A Slack incoming-webhook message: a one-line summary, and the figures.

    >>> from datetime import UTC, datetime
    >>> a = Alert(alert_id="a1", ts=datetime(2026, 1, 1, tzinfo=UTC), kind="anomaly",
    ...           scope="tenant:acme", severity="high", observed=12.5, expected=2.0, score=0.9,
    ...           message="spend 6x the forecast", driver="service:chat")
    >>> orjson.loads(slack_body(a))["text"]
    ':rotating_light: *HIGH* anomaly on `tenant:acme`: spend 6x the forecast (driver service:chat)'
    """
    driver = f" (driver {alert.driver})" if alert.driver else ""
    text = (f"{_ICON[alert.severity]} *{alert.severity.upper()}* {alert.kind.replace('_', ' ')} "
            f"on `{alert.scope}`: {alert.message}{driver}")
    fields: list[dict[str, Any]] = [
        {"type": "mrkdwn", "text": f"*observed*\n{alert.observed:,.4f}"},
        {"type": "mrkdwn", "text": f"*expected*\n{alert.expected:,.4f}"},
        {"type": "mrkdwn", "text": f"*score*\n{alert.score:.3f}"},
        {"type": "mrkdwn", "text": f"*alert id*\n{alert.alert_id}"}]
    return orjson.dumps({"text": text, "blocks": [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {"type": "section", "fields": fields}]})
