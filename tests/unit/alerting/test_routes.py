"""Alert routes: which alerts go where; a routes file that cannot work is refused with the
reason before the worker starts."""

from __future__ import annotations

import json

import pytest

from prsm_events.alerting.routes import AlertRoutes, load_routes

ROUTES = AlertRoutes.model_validate({"routes": [
    {"name": "all", "url": "https://h.example/all", "format": "webhook"},
    {"name": "acme", "scope": "tenant:acme", "url": "https://h.example/a", "format": "slack",
     "min_severity": "high"},
    {"name": "global-forecasts", "scope": "global", "url": "https://h.example/g",
     "format": "webhook", "kinds": ["forecast_overrun"]},
]})


@pytest.mark.parametrize(("scope", "kind", "severity", "names"), [
    ("tenant:acme", "anomaly", "high", ["all", "acme"]),
    ("tenant:acme/api_key:k1", "anomaly", "critical", ["all", "acme"]),
    ("tenant:acme", "anomaly", "warning", ["all"]),  # below the route's severity
    ("tenant:acmex", "anomaly", "critical", ["all"]),  # another tenant, same prefix
    ("global", "forecast_overrun", "info", ["all", "global-forecasts"]),
    ("global", "budget_threshold", "info", ["all"]),
])
def test_an_alert_goes_to_every_route_that_matches_it(scope, kind, severity, names):
    assert [r.name for r in ROUTES.matching(scope, kind, severity)] == names


@pytest.mark.parametrize(("routes", "message"), [
    ([{"name": "x", "url": "https://h/x", "format": "email"}], "format"),
    ([{"name": "x", "url": "not a url", "format": "slack"}], "url"),
    ([{"name": "x", "url": "https://h/x", "format": "slack", "scope": "tenant:a/region:eu"}],
     "below a tenant use one of"),
    ([{"name": "x", "url": "https://h/x", "format": "slack", "min_severity": "urgent"}],
     "min_severity"),
    ([{"name": "x", "url": "https://h/x", "format": "slack", "colour": "red"}],
     "Extra inputs are not permitted"),
    ([{"name": "x", "url": "https://h/x", "format": "slack"},
      {"name": "x", "url": "https://h/y", "format": "slack"}], "route names must be unique"),
    ([{"name": "x", "url": "https://h/x", "format": "webhook",
       "secret_env": "PRSM_TEST_NO_SUCH_SECRET"}], r"\$PRSM_TEST_NO_SUCH_SECRET is not set"),
])
def test_a_routes_file_that_cannot_work_is_refused_with_the_reason(tmp_path, routes, message):
    path = tmp_path / "routes.json"
    path.write_text(json.dumps({"routes": routes}))
    with pytest.raises(ValueError, match=message):
        load_routes(path)


def test_a_missing_or_broken_file_is_named(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"cannot read .*nope\.json"):
        load_routes(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{routes: ")
    with pytest.raises(ValueError, match=r"bad\.json is not valid"):
        load_routes(tmp_path / "bad.json")
    assert load_routes(None).routes == []
    monkeypatch.setenv("PRSM_TEST_SECRET", "from-env")
    (tmp_path / "ok.json").write_text(json.dumps({"routes": [
        {"name": "x", "url": "https://h/x", "format": "webhook",
         "secret_env": "PRSM_TEST_SECRET"}]}))
    assert load_routes(tmp_path / "ok.json").routes[0].signing_key() == b"from-env"
    assert "from-env" not in repr(load_routes(tmp_path / "ok.json"))
