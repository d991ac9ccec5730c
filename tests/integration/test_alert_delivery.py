"""Alert delivery on the real broker to a local HTTP receiver: each alert reaches each
matching route exactly once (a re-sent alert is not sent again), webhooks are signed, Slack
gets its message, a failing receiver is retried, and an alert that cannot be delivered is
dead-lettered with the reason, while the pipeline goes on."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pytest

from prsm_events.alerting.payloads import verify_signature
from prsm_events.events.alerts import Alert
from tests.factories import usage
from tests.integration.conftest import free_port, read_to_end, run, send_raw, wait_until

pytestmark = pytest.mark.integration


class Receiver:
    """An HTTP server recording every POST; ``/flaky`` answers 500 twice then 200, ``/gone``
    410, every other path 200."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    receiver.requests.append((self.path, dict(self.headers), body))
                    tries = sum(p == self.path for p, _, _ in receiver.requests)
                status = (410 if self.path == "/gone" else
                          500 if self.path == "/flaky" and tries <= 2 else 200)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def at(self, path: str) -> list[tuple[dict[str, str], bytes]]:
        with self.lock:
            return [(h, b) for p, h, b in self.requests if p == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def alert(alert_id: str, scope: str, severity: str, kind: str = "anomaly",
          age: timedelta = timedelta(0)) -> Alert:
    return Alert(alert_id=alert_id, ts=datetime.now(UTC) - age, kind=kind, scope=scope,
                 severity=severity, observed=9.0, expected=2.0, score=0.9,
                 message=f"alert {alert_id}", driver="service:chat")


def test_each_alert_reaches_each_matching_route_once_signed_retried_or_dead_lettered(
        start_worker, kafka, tmp_path, receiver):
    down = f"http://127.0.0.1:{free_port()}/down"  # nothing listens
    routes = tmp_path / "routes.json"
    routes.write_text(json.dumps({"routes": [
        {"name": "acme-hook", "scope": "tenant:acme", "url": f"{receiver.url}/hook",
         "format": "webhook", "secret": "s3cret"},
        {"name": "all-slack", "scope": "*", "url": f"{receiver.url}/slack", "format": "slack",
         "min_severity": "warning"},
        {"name": "beta-flaky", "scope": "tenant:beta", "url": f"{receiver.url}/flaky",
         "format": "webhook"},
        {"name": "gamma-gone", "scope": "tenant:gamma", "url": f"{receiver.url}/gone",
         "format": "webhook"},
        {"name": "delta-down", "scope": "tenant:delta", "url": down, "format": "webhook"}]}))
    worker = start_worker("it-alerts", alert_routes=routes, alert_retry_for_s=6.0)
    wait_until(lambda: worker.get("/health")["ready"], 60, "the worker ready")
    sent = [alert("a1", "tenant:acme/service:chat", "high"),
            alert("a1", "tenant:acme/service:chat", "high"),  # the scorer sent it again
            alert("a2", "tenant:beta", "warning", kind="budget_threshold"),
            alert("a3", "tenant:gamma", "info"),
            alert("a4", "tenant:delta", "warning"),
            alert("a5", "tenant:acme", "high", age=timedelta(hours=2)),  # too old to send
            alert("a6", "tenant:acme", "info")]
    send_raw(kafka, worker.topic("alerts"),
             [(a.scope.encode(), a.model_dump_json().encode()) for a in sent])
    # the pipeline goes on meanwhile: usage is counted while deliveries are retried
    send_raw(kafka, worker.topic("usage"), [(b"acme", usage("u1").model_dump_json().encode())])
    wait_until(lambda: worker.get("/stats")["accepted"] == 1, 30, "usage counted")

    def delivery() -> dict:
        return worker.get("/stats")["alert_delivery"]

    def settled() -> tuple[int, ...]:
        d = delivery()
        return (d["delivered"], d["undelivered"], d["duplicates"], d["too_old"],
                d["in_flight"])

    # hook a1 a6, slack a1 a2 a4, flaky a2; gone a3 and down a4 given up
    wait_until(lambda: settled() == (6, 2, 1, 1, 0), 60, "every delivery done or given up",
               details=delivery)

    hook = receiver.at("/hook")
    assert sorted(orjson.loads(b)["alert_id"] for _, b in hook) == ["a1", "a6"]
    for headers, body in hook:
        assert headers["X-Prsm-Alert-Id"] == orjson.loads(body)["alert_id"]
        assert verify_signature(b"s3cret", body, headers["X-Prsm-Signature"], time.time())
        assert not verify_signature(b"wrong", body, headers["X-Prsm-Signature"], time.time())
    slack = [orjson.loads(b) for _, b in receiver.at("/slack")]
    assert sorted(m["blocks"][1]["fields"][3]["text"].split("\n")[1] for m in slack) == [
        "a1", "a2", "a4"]
    assert "*HIGH* anomaly on `tenant:acme/service:chat`" in next(
        m["text"] for m in slack if "alert a1" in m["text"])
    flaky = receiver.at("/flaky")
    assert len(flaky) == 3 and {orjson.loads(b)["alert_id"] for _, b in flaky} == {"a2"}
    assert len(receiver.at("/gone")) == 1  # a 4xx is not retried

    letters = [orjson.loads(r.value) for r in run(read_to_end(kafka, worker.topic("dlq")))]
    undelivered = {orjson.loads(d["original"])["alert_id"]: d["reason"] for d in letters
                   if d["code"] == "alert_undelivered"}
    assert set(undelivered) == {"a3", "a4"}
    assert "route gamma-gone: HTTP 410 after 1 attempt(s)" in undelivered["a3"]
    assert "route delta-down" in undelivered["a4"]

