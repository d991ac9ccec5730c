"""Alert delivery: routes per scope (``routes``) and what is sent (``payloads``); the
service that delivers is ``streams.alert_delivery``."""

from prsm_events.alerting.payloads import signature, slack_body, verify_signature, webhook_body
from prsm_events.alerting.routes import AlertRoute, AlertRoutes, load_routes

__all__ = ["AlertRoute", "AlertRoutes", "load_routes", "signature", "slack_body",
           "verify_signature", "webhook_body"]
