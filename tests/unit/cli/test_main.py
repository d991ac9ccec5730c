"""CLI input errors are caught before anything is sent, with a clear message and exit code 2."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from prsm_events.cli.main import main
from tests.integration.conftest import free_port


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.setenv("PRSM_HOME", str(tmp_path))
    monkeypatch.setenv("PRSM_KAFKA_BOOTSTRAP", f"127.0.0.1:{free_port()}")  # nothing listens
    monkeypatch.setenv("PRSM_WEB_PORT", str(free_port()))


def test_publish_rejects_a_bad_jsonl_line_before_sending(env, tmp_path):
    good = ('{"event_id": "e1", "ts": "2026-01-01T00:00:00Z", "tenant": "a", "service": "s", '
            '"cost_usd": 1, "kind": "other"}')
    path = tmp_path / "events.jsonl"
    path.write_text(f'{good}\n{{"event_id": "e2", "tenant": "a"}}\n')
    result = CliRunner().invoke(main, ["publish", "--file", str(path)])
    assert result.exit_code == 2
    assert "line 2" in result.output and "nothing was sent" in result.output


@pytest.mark.parametrize(("line", "code"), [
    ('"cost_usd": -1, "cost_usd": 1', "duplicate_key"),
    ('"cost_usd": "1"', "wrong_type"),
])
def test_publish_holds_a_file_to_the_workers_strict_contract(env, tmp_path, line, code):
    path = tmp_path / "events.jsonl"
    path.write_text('{"event_id": "e1", "ts": "2026-01-01T00:00:00Z", "tenant": "a", '
                    f'"service": "s", "kind": "other", {line}}}\n')
    result = CliRunner().invoke(main, ["publish", "--file", str(path)])
    assert result.exit_code == 2
    assert f"line 1: {code}: " in result.output and "nothing was sent" in result.output


def test_publish_needs_tenant_and_service(env):
    result = CliRunner().invoke(main, ["publish", "--model", "gpt-4o"])
    assert result.exit_code == 2
    assert "--tenant and --service" in result.output


def test_report_without_a_worker_says_what_to_do(env):
    result = CliRunner().invoke(main, ["report", "spend", "--by", "model"])
    assert result.exit_code == 2
    assert "start `prsm worker`" in result.output


def test_report_rejects_a_bad_since(env):
    result = CliRunner().invoke(main, ["report", "spend", "--since", "last tuesday"])
    assert result.exit_code == 2
    assert "ISO 8601" in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["spend", "--by", "colour"], "'colour' is not a dimension"),
    (["spend", "--every", "week"], "'week' is not one of"),
    (["spend", "--since", "2026-02-01", "--until", "2026-01-01"], "must be before until"),
    (["top-movers", "--limit", "lots"], "limit: 'lots'"),
    (["top-movers", "--plot", "x.png"], "No such option: --plot"),
    (["anomalies", "--every", "day"], "No such option: --every"),
    (["spend", "--plot", "x.pdf", "--every", "day", "--sql"], ".png or .html"),
    (["forecasts"], "No such command 'forecasts'"),
])
def test_a_report_with_bad_options_is_refused_before_any_worker_is_asked(env, args, message):
    result = CliRunner().invoke(main, ["report", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "start `prsm worker`" not in result.output


def test_report_sql_prints_the_query_and_its_parameters_without_a_worker(env):
    result = CliRunner().invoke(main, ["report", "spend", "--every", "day", "--by",
                                       "service,tag:team", "--tenant", "acme", "--sql"])
    assert result.exit_code == 0, result.output
    sql, *params = result.output.splitlines()
    assert sql.startswith("SELECT toStartOfDay(ts) AS period, service AS dim_0, "
                          "tags[{tag_1:String}] AS dim_1") and "FROM prsm.usage FINAL" in sql
    assert params == ["-- {tenant} = 'acme'", "-- {tag_1} = 'team'"]


def test_budget_outlook_without_a_worker_says_what_to_do(env):
    result = CliRunner().invoke(main, ["budget", "outlook"])
    assert result.exit_code == 2
    assert "no worker at" in result.output and "prsm worker" in result.output


def test_pacing_on_a_rolling_window_is_refused_before_anything_is_sent(env):
    result = CliRunner().invoke(main, ["budget", "set", "tenant:a", "--period", "24h",
                                       "--limit", "5", "--pacing"])
    assert result.exit_code == 2 and "pacing needs a calendar period" in result.output


def test_a_worker_with_an_alert_routes_file_that_cannot_work_does_not_start(env, tmp_path,
                                                                           monkeypatch):
    routes = tmp_path / "routes.json"
    routes.write_text('{"routes": [{"name": "x", "url": "https://h/x", "format": "email"}]}')
    monkeypatch.setenv("PRSM_ALERT_ROUTES", str(routes))
    result = CliRunner().invoke(main, ["worker"])
    assert result.exit_code == 2
    assert "PRSM_ALERT_ROUTES" in result.output and "routes.json is not valid" in result.output
