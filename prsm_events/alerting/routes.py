"""Where alerts go: routes per scope, from a JSON file (``PRSM_ALERT_ROUTES``).

A route sends the alerts of its ``scope`` (``*``: every scope; ``tenant:acme``: the tenant's
scope and every scope below it; ``global``) of the kinds it names (all by default) and at
least ``min_severity`` to ``url``, as a signed ``webhook`` or a Slack-compatible incoming
webhook (``slack``). An alert goes to every route that matches it.

>>> routes = AlertRoutes.model_validate({"routes": [
...     {"name": "acme-oncall", "scope": "tenant:acme", "url": "https://hooks.example/acme",
...      "format": "webhook", "secret": "s3cret", "min_severity": "high"},
...     {"name": "finance", "scope": "*", "url": "https://hooks.slack.com/services/T/B/X",
...      "format": "slack", "kinds": ["forecast_overrun"]}]})
>>> [r.name for r in routes.matching("tenant:acme/service:chat", "anomaly", "critical")]
['acme-oncall']
>>> [r.name for r in routes.matching("tenant:acmex", "forecast_overrun", "warning")]
['finance']
>>> AlertRoutes.model_validate({"routes": [{"name": "x", "url": "ftp://a", "format": "webhook"}]})
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for AlertRoutes
...
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, SecretStr, field_validator

from prsm_events.accounting.scopes import Scope

__all__ = ["SEVERITIES", "AlertRoute", "AlertRoutes", "load_routes"]

SEVERITIES = ("info", "warning", "high", "critical")


class AlertRoute(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=128, description="Names the route in logs and "
                      "dead letters.")
    scope: str = Field("*", description="'*', 'global', or a scope: its alerts and those of "
                       "every scope below it.")
    url: HttpUrl
    format: Literal["webhook", "slack"]
    kinds: list[Literal["anomaly", "budget_threshold", "forecast_overrun"]] | None = None
    min_severity: Literal["info", "warning", "high", "critical"] = "info"
    secret: SecretStr | None = Field(None, description="Signs webhook bodies (HMAC-SHA256).")
    secret_env: str | None = Field(None, description="Or: the environment variable holding "
                                   "the secret.")

    @field_validator("scope")
    @classmethod
    def _scope(cls, value: str) -> str:
        if value != "*":
            Scope.parse(value)
        return value

    @field_validator("url")
    @classmethod
    def _http(cls, value: HttpUrl) -> HttpUrl:
        if value.scheme not in ("http", "https"):
            raise ValueError("url must be http(s)")
        return value

    def signing_key(self) -> bytes | None:
        """The secret to sign with (``secret``, else the ``secret_env`` variable)."""
        if self.secret is not None:
            return self.secret.get_secret_value().encode()
        if self.secret_env:
            value = os.environ.get(self.secret_env)
            if not value:
                raise ValueError(f"route {self.name}: ${self.secret_env} is not set")
            return value.encode()
        return None

    def matches(self, scope: str, kind: str, severity: str) -> bool:
        if self.kinds is not None and kind not in self.kinds:
            return False
        if SEVERITIES.index(severity) < SEVERITIES.index(self.min_severity):
            return False
        return self.scope in ("*", scope) or scope.startswith(self.scope + "/")


class AlertRoutes(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    routes: list[AlertRoute] = Field(default_factory=list)

    @field_validator("routes")
    @classmethod
    def _unique(cls, routes: list[AlertRoute]) -> list[AlertRoute]:
        names = [r.name for r in routes]
        if len(set(names)) != len(names):
            raise ValueError("route names must be unique")
        return routes

    def matching(self, scope: str, kind: str, severity: str) -> list[AlertRoute]:
        return [r for r in self.routes if r.matches(scope, kind, severity)]


def load_routes(path: Path | None) -> AlertRoutes:
    """The routes in ``path`` (none when it is None); a clear ValueError when the file is
    unreadable or invalid, or a route's secret variable is unset."""
    if path is None:
        return AlertRoutes()
    try:
        routes = AlertRoutes.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise ValueError(f"PRSM_ALERT_ROUTES: cannot read {path}: {exc}") from None
    except ValueError as exc:
        raise ValueError(f"PRSM_ALERT_ROUTES: {path} is not valid: {exc}") from None
    for route in routes.routes:
        route.signing_key()
    return routes
