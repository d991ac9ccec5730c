"""``group_get``: the CLI asks every worker of a group, over HTTP, until the answers are one
view of it (workers played by local HTTP servers answering from a script)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pytest

from prsm_events.cli.worker_api import group_get
from prsm_events.errors import PrsmError
from prsm_events.settings import Settings


class Worker:
    """A worker's HTTP API answering each GET with the next (status, body) of its script
    (the last one again once the script is spent), and recording the headers it got."""

    def __init__(self) -> None:
        self.script: list[tuple[int, dict]] = []
        self.tokens: list[str | None] = []
        worker = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                worker.tokens.append(self.headers.get("Authorization"))
                status, body = (worker.script.pop(0) if len(worker.script) > 1
                                else worker.script[0])
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


@pytest.fixture
def pair() -> Iterator[tuple[Worker, Worker]]:
    workers = Worker(), Worker()
    yield workers
    for w in workers:
        w.server.shutdown()
        w.server.server_close()


def answer(generation: int, partitions: list[int], group: list[Worker], key: str) -> dict:
    return {"budgets": [{"key": key}], "partitions": partitions, "generation": generation,
            "workers": [{"url": w.url, "partitions": []} for w in group]}


def settings(worker: Worker) -> Settings:
    return Settings(web_host="127.0.0.1", web_port=worker.port, partitions=2,
                    web_token="s3cret")


def test_every_worker_is_asked_again_until_one_generation_holds_each_partition_once(pair):
    a, b = pair
    rebalancing = (503, {"error": "rebalancing: ask again shortly"})
    # a: 503, then the group in generation 4 (asked twice a round: to find the group, then
    # as a member), then in generation 5; b: still in generation 4 once, then 5
    a.script = [rebalancing, (200, answer(4, [0], [a, b], "tenant:a|day")),
                (200, answer(4, [0], [a, b], "tenant:a|day")),
                (200, answer(5, [0], [a, b], "tenant:a|day"))]
    b.script = [(200, answer(4, [0, 1], [a, b], "tenant:x|day")),
                (200, answer(5, [1], [a, b], "tenant:b|day"))]
    answers = group_get(settings(a), "/budgets", why="start one", wait_s=10, pause_s=0.01)
    assert [x["budgets"][0]["key"] for x in answers] == ["tenant:a|day", "tenant:b|day"]
    assert {x["generation"] for x in answers} == {5}
    assert set(a.tokens) == set(b.tokens) == {"Bearer s3cret"}  # each worker got the token


def test_a_group_that_never_answers_whole_is_an_error_saying_why(pair):
    a, b = pair
    a.script = [(200, answer(4, [0], [a, b], "tenant:a|day"))]
    b.script = [(503, {"error": "rebalancing: ask again shortly"})]
    with pytest.raises(PrsmError, match=r"no whole answer .* rebalancing: ask again"):
        group_get(settings(a), "/budgets", why="start one", wait_s=0.2, pause_s=0.01)
    b.server.shutdown()
    b.server.server_close()  # b is gone: a worker of the group that does not answer
    gone = re.escape(f"the worker of the group at {b.url} does not answer")
    with pytest.raises(PrsmError, match=gone):
        group_get(settings(a), "/budgets", why="start one", wait_s=0.2, pause_s=0.01)


def test_no_configured_worker_or_another_refusal_is_an_error_at_once(pair):
    a, b = pair
    a.script = [(401, {"error": "missing or wrong bearer token (PRSM_WEB_TOKEN)"})]
    with pytest.raises(PrsmError, match=r"answered 401: .*PRSM_WEB_TOKEN"):
        group_get(settings(a), "/budgets", why="start one", wait_s=30)
    gone = settings(b)
    b.server.shutdown()
    b.server.server_close()
    with pytest.raises(PrsmError, match=r"no worker at .*; start one"):
        group_get(gone, "/budgets", why="start one", wait_s=30)
