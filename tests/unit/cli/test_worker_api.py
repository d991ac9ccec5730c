"""The CLI asks every worker of a group over HTTP (``GET /group`` of the configured one names
them): until their answers are one view of the group (``group_get``), or to find the one
that runs the sink (``sink_worker``, reports). Workers are played by local HTTP servers
answering from a script per path."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pytest

from prsm_events.cli.worker_api import fetch_report, group_get, sink_worker
from prsm_events.errors import PrsmError
from prsm_events.settings import Settings

REBALANCING = (503, {"error": "rebalancing: ask again shortly"})


class Worker:
    """A worker's HTTP API answering each GET of a path with the next (status, body) of that
    path's script (the last one again once the script is spent), and recording the bearer
    tokens it got."""

    def __init__(self) -> None:
        self.scripts: dict[str, list[tuple[int, dict]]] = {}
        self.tokens: list[str | None] = []
        worker = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                worker.tokens.append(self.headers.get("Authorization"))
                script = worker.scripts[self.path.split("?")[0]]
                status, body = script.pop(0) if len(script) > 1 else script[0]
                data = orjson.dumps(body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def pair() -> Iterator[tuple[Worker, Worker]]:
    workers = Worker(), Worker()
    yield workers
    for w in workers:
        w.close()


def group(*members: Worker, sink: bool = False) -> tuple[int, dict]:
    """The group as a worker names it: partition i is the i-th member's."""
    return 200, {"partitions": [], "generation": 1, "sink": sink,
                 "workers": [{"url": w.url, "partitions": [i]} for i, w in enumerate(members)]}


def budgets(generation: int, partitions: list[int], key: str) -> tuple[int, dict]:
    return 200, {"budgets": [{"key": key}], "partitions": partitions, "generation": generation}


def settings(worker: Worker) -> Settings:
    """The CLI's settings: its PRSM_PARTITIONS (4) need not be the group's (2)."""
    return Settings(web_host="127.0.0.1", web_port=worker.port, web_token="s3cret")


def test_every_worker_is_asked_again_until_one_generation_holds_each_partition_once(pair):
    a, b = pair
    a.scripts["/group"] = [REBALANCING, group(a, b)]
    # a round: each worker once; first both in generation 4 (b still holding partition 0),
    # then both in generation 5, each holding its own
    a.scripts["/budgets"] = [budgets(4, [0], "tenant:a|day"), budgets(5, [0], "tenant:a|day")]
    b.scripts["/budgets"] = [budgets(4, [0, 1], "tenant:x|day"), budgets(5, [1], "tenant:b|day")]
    answers = group_get(settings(a), "/budgets", why="start one", wait_s=10, pause_s=0.01)
    assert [x["budgets"][0]["key"] for x in answers] == ["tenant:a|day", "tenant:b|day"]
    assert {x["generation"] for x in answers} == {5}
    assert set(a.tokens) == set(b.tokens) == {"Bearer s3cret"}  # each worker got the token


def test_a_group_that_never_answers_whole_is_an_error_saying_why(pair):
    a, b = pair
    a.scripts["/group"] = [group(a, b)]
    a.scripts["/budgets"] = [budgets(4, [0], "tenant:a|day")]
    b.scripts["/budgets"] = [REBALANCING]
    with pytest.raises(PrsmError, match=r"no whole answer .* rebalancing: ask again"):
        group_get(settings(a), "/budgets", why="start one", wait_s=0.2, pause_s=0.01)
    b.close()  # b is gone: a worker of the group that does not answer
    gone = re.escape(f"the worker of the group at {b.url} does not answer")
    with pytest.raises(PrsmError, match=gone):
        group_get(settings(a), "/budgets", why="start one", wait_s=0.2, pause_s=0.01)


def test_no_configured_worker_or_another_refusal_is_an_error_at_once(pair):
    a, b = pair
    a.scripts["/group"] = [(401, {"error": "missing or wrong bearer token (PRSM_WEB_TOKEN)"})]
    with pytest.raises(PrsmError, match=r"answered 401: .*PRSM_WEB_TOKEN"):
        group_get(settings(a), "/budgets", why="start one", wait_s=30)
    gone = settings(b)
    b.close()
    with pytest.raises(PrsmError, match=r"no worker at .*; start one"):
        group_get(gone, "/budgets", why="start one", wait_s=30)


def test_a_report_asked_of_a_worker_without_the_sink_comes_from_the_one_with_it(pair):
    a, b = pair
    a.scripts["/group"] = [group(a, b)]
    b.scripts["/group"] = [REBALANCING, group(a, b, sink=True)]  # b: restoring, then found
    a.scripts["/reports/spend"] = [(409, {"error": "this worker does not run the sink"})]
    b.scripts["/reports/spend"] = [(200, {"report": "spend", "options": {"by": "tenant"},
                                          "columns": ["tenant"], "rows": [{"tenant": "t1"}]})]
    assert sink_worker(settings(a), why="start one", wait_s=10, pause_s=0.01) == b.url
    result = fetch_report(settings(a), "spend", {"by": "tenant"})
    assert (result.name, result.records) == ("spend", [{"tenant": "t1"}])
    b.scripts["/group"] = [group(a, b)]  # no worker runs it
    with pytest.raises(PrsmError, match=r"none of the workers .* runs the ClickHouse sink"):
        sink_worker(settings(a), why="start one", wait_s=0.2, pause_s=0.01)
