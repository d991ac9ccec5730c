"""The worker's HTTP API with PRSM_WEB_TOKEN: every endpoint but /health needs the token; the
CLI sends it; Faust's own table and router views are off."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from tests.integration.conftest import free_port

pytestmark = pytest.mark.integration


def status(url: str, token: str | None = None) -> int:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                    timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_token_guards_every_endpoint_but_health(start_worker):
    port = free_port()  # its API advertised under another name of the same address
    worker = start_worker("it-token", web_token="s3cret-t0ken", web_port=port,
                          web_advertised_url=f"http://localhost:{port}")
    base = worker.settings.web_url  # the handle sends the token
    assert status(f"{base}/health") == 200
    for path in ("/stats", "/budgets", "/providers", "/spend", "/group",
                 "/reports/spend?by=model", "/metrics"):
        assert status(f"{base}{path}") == 401, path
        assert status(f"{base}{path}", "wrong") == 401, path
        assert status(f"{base}{path}", "s3cret-t0ken") == 200, path
    for path in ("/router/", "/table/spend/", "/router/spend/"):  # Faust's views: table data
        assert status(f"{base}{path}", "s3cret-t0ken") == 404, path
    assert "s3cret" not in repr(worker.settings)
    # every parameter is checked before anything reaches a query
    token = "s3cret-t0ken"
    for bad in ("/reports/spend?by=model;DROP%20TABLE%20usage", "/reports/spend?since=yesterday",
                "/reports/spend?by=model&by=tenant", "/reports/spend?by=model&limit=5",
                "/spend?scope=global&sql=1", "/stats?x=1", "/group?x=1", "/health?verbose=1",
                "/metrics?name=prsm_ready"):
        assert status(f"{base}{bad}", token) == 400, bad
    assert status(f"{base}/reports/spend?by=model&since=2026-01-01T00:00:00", token) == 200

    env = {**os.environ, **worker.settings.as_env()}
    report = [sys.executable, "-m", "prsm_events", "report", "spend", "--by", "model"]
    done = subprocess.run(report, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    # the group's answer names each worker as it advertises itself; `prsm budget outlook`
    # asks each there, with the token
    assert worker.process.get_steady("/group")["workers"] == [
        {"url": f"http://localhost:{port}", "partitions": [0, 1, 2]}]
    outlook = [sys.executable, "-m", "prsm_events", "budget", "outlook", "--format", "json"]
    done = subprocess.run(outlook, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and json.loads(done.stdout) == [], done.stderr
    env.pop("PRSM_WEB_TOKEN")
    refused = subprocess.run(report, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "401" in refused.stderr + refused.stdout
    assert "s3cret" not in refused.stderr + refused.stdout
