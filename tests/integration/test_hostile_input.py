"""Hostile input of every shape, on the real broker: every message the broker accepted ends
accepted or dead-lettered with a documented code, the worker stays healthy, and the valid
events' totals are exact in the tables and in ClickHouse."""

from __future__ import annotations

import contextlib
import random
from datetime import UTC, datetime

import orjson
import pytest

from tests.integration.conftest import read_to_end, run, send_raw, wait_until

pytestmark = pytest.mark.integration

DLQ_CODES = {
    "empty", "invalid_json", "not_an_object", "unknown_field", "missing_field", "invalid_field",
    "wrong_type", "invalid_timestamp", "invalid_identifier", "duplicate_key", "ts_out_of_range",
    "oversized", "unknown_model", "missing_cost", "cost_over_cap",
}
"""Every code bad input is dead-lettered with (docs/operations.md); ``processing_error``, a
bug's, is left out so that a message that crashes processing fails these tests."""


def _event(event_id: str, tenant: str = "fz", cost: float = 0.25, **kw: object) -> dict:
    return {"event_id": event_id, "ts": datetime.now(UTC).isoformat(), "tenant": tenant,
            "service": "chat", "model": "gpt-4o", "cost_usd": cost, **kw}


def hostile_usage(rng: random.Random) -> tuple[list[tuple[bytes | None, bytes | None]],
                                               list[dict], int]:
    """(key, value) messages, the valid events among them, and how many events they hold
    (a batch envelope holds one per element)."""
    valid = [_event(f"ok-{i}", cost=round(0.01 * (i + 1), 2)) for i in range(20)]
    valid += [  # odd but valid: SQL-looking and quote-heavy ids and tags reach the store intact
        _event("sql-1", tenant="acme';DROP_TABLE_usage;--", cost=1.5),
        _event("sql-2", tenant='x"),(1', cost=0.5, tags={"q": "' OR 1=1 --", "n": "\u00e9t\u00e9"}),
        _event("max-1", cost=1000.0),  # exactly the cap
    ]

    def splice(fragment: bytes, event_id: str) -> bytes:
        return orjson.dumps(_event(event_id))[:-1] + b", " + fragment + b"}"

    bad: list[bytes | None] = [
        None, b"", b"   ", b"null", b"true", b"42", b'"text"', b"[]",
        b"{" * 50_000, b"[" * 200_000, b'{"a":' * 3000 + b"1" + b"}" * 3000,
        b"\xef\xbb\xbf" + orjson.dumps(_event("bom")),
        orjson.dumps(_event("ctl")) + b"\x00",
        splice(b'"latency_ms": NaN', "nan"), splice(b'"latency_ms": Infinity', "inf"),
        splice(b'"latency_ms": -Infinity', "ninf"),
        orjson.dumps(_event("big-cost", cost=1e300)), splice(b'"input_tokens": 1e400', "e400"),
        splice(b'"input_tokens": 123456789012345678901234567890', "bigint"),
        orjson.dumps(_event("over-cap", cost=1000.01)),
        orjson.dumps(_event("neg", cost=-0.01)),
        splice(b'"input_tokens": true', "bool"), splice(b'"input_tokens": 10.0', "float"),
        orjson.dumps({**_event("str-cost"), "cost_usd": "0.01"}),
        orjson.dumps({**_event("epoch"), "ts": 1780315200}),
        orjson.dumps({**_event("epoch-s"), "ts": "1780315200"}),
        orjson.dumps({**_event("naive"), "ts": "2026-06-01T12:00:00"}),
        splice(b'"cost_usd": 0.02', "dup"),  # cost_usd twice
        *[orjson.dumps(_event(f"id-{i}", tenant=f"t{c}x"))
          for i, c in enumerate(["\x00", "\x1b", "\x7f", "\u200b", "\ufeff", " ", "\n"])],
        orjson.dumps({**_event("tagctl"), "tags": {"k": "a\x1b[31mred"}}),
        orjson.dumps(_event("sp ace")),
        b'{"event_id": "bad-utf8", "tenant": "\xff\xfe"}',
        splice(b'"service": "\\ud800"', "surrogate"),
        orjson.dumps({**_event("nested"), "tags": {"k": {"deep": [1, 2, 3]}}}),
        orjson.dumps({**_event("unknown"), "colour": "red"}),
        orjson.dumps({k: v for k, v in _event("no-tenant").items() if k != "tenant"}),
        orjson.dumps({**_event("nomodel"), "cost_usd": None, "model": "no-such-model"}),
        orjson.dumps({**_event("future"), "ts": "2099-01-01T00:00:00Z"}),
        orjson.dumps({**_event("huge-tag"), "tags": {"pad": "x" * 70_000}}),
        orjson.dumps({**_event("sql-ws"), "tenant": "a'; DROP TABLE usage; --"}),
    ]
    bad += [rng.randbytes(rng.randint(1, 3000)) for _ in range(40)]
    # batch envelopes: each element is judged alone, valid ones among bad ones are kept
    in_batches = [_event("arr-1", cost=0.03), _event("arr-2", cost=0.07), _event("arr-3")]
    envelopes = [
        orjson.dumps([in_batches[0]]),
        b"[" + orjson.dumps(in_batches[1]) + b', "x", null, [1], {"event_id": "e"}, '
        + splice(b'"cost_usd": 0.02', "arr-dup") + b"]",  # 1 valid, 5 bad
        b"[" + orjson.dumps(in_batches[2]) + b", " + b"{" * 3000 + b"]",  # not JSON: one letter
        orjson.dumps([_event("arr-neg", cost=-1), _event("arr-cap", cost=5000.0)]),
    ]
    events = len(bad) + len(valid) + 1 + 6 + 1 + 2
    bad += envelopes
    messages: list[tuple[bytes | None, bytes | None]] = []
    keys = [None, b"fz", b"k" * 5000, rng.randbytes(16)]
    for value in bad:  # a record needs a key or a value
        messages.append((rng.choice(keys[1:] if value is None else keys), value))
    for event in valid:
        messages.append((event["tenant"].encode(), orjson.dumps(event)))
    rng.shuffle(messages)
    return messages, valid + in_batches[:2], events


def test_every_hostile_message_ends_accepted_or_dead_lettered(start_worker, kafka):
    worker = start_worker("it-hostile")
    messages, valid, events = hostile_usage(random.Random(13))

    send_raw(kafka, worker.topic("usage"), messages)
    wait_until(lambda: worker.processed() >= events, timeout=90,
               what="every event accepted or dead-lettered",
               details=lambda: worker.get("/stats"))
    stats = worker.get("/stats")
    assert stats["accepted"] == len(valid)
    assert stats["accepted"] + stats["dead_lettered"] + stats["duplicates"] == events
    assert stats["duplicates"] == 0
    assert set(stats["dead_letter_codes"]) <= DLQ_CODES

    letters = [orjson.loads(r.value) for r in run(read_to_end(kafka, worker.topic("dlq")))]
    assert len(letters) == stats["dead_lettered"]
    assert all(letter["code"] in DLQ_CODES and letter["reason"].startswith(letter["code"])
               for letter in letters)
    by_id = {}
    for letter in letters:
        if letter["original"]:
            with contextlib.suppress(orjson.JSONDecodeError, TypeError, KeyError):
                by_id[orjson.loads(letter["original"])["event_id"]] = letter["code"]
    assert by_id["over-cap"] == "cost_over_cap" and by_id["dup"] == "duplicate_key"
    assert by_id["arr-dup"] == "duplicate_key" and by_id["arr-cap"] == "cost_over_cap"
    assert by_id["arr-neg"] == "invalid_field"
    indexed = sorted(letter["source_index"] for letter in letters
                     if letter["source_index"] is not None)
    assert indexed == [0, 1, 1, 2, 3, 4, 5]  # the bad elements of two envelopes
    assert by_id["str-cost"] == "wrong_type" and by_id["epoch"] == "invalid_timestamp"

    health = worker.get("/health")
    assert health["status"] == "ok", health
    expected = sum(e["cost_usd"] for e in valid)
    rows = {r["tenant"]: r for r in worker.stored("tenant", len(valid))}
    assert sum(r["cost_usd"] for r in rows.values()) == pytest.approx(expected, abs=1e-9)
    assert rows["acme';DROP_TABLE_usage;--"]["cost_usd"] == pytest.approx(1.5)
    tables = sum(worker.spend(f"tenant:{t}")["cost_usd"] for t in {e["tenant"] for e in valid})
    assert tables == pytest.approx(expected, abs=1e-9)


def test_every_hostile_request_is_decided_or_dead_lettered(start_worker, kafka):
    worker = start_worker("it-hostile-req")
    rng = random.Random(17)

    def req(request_id: str, **kw: object) -> dict:
        return {"request_id": request_id, "ts": datetime.now(UTC).isoformat(), "tenant": "hq",
                "service": "chat", "model": "gpt-4o", **kw}

    good = [orjson.dumps(req(f"ok-{i}", est_input_tokens=100 * (i + 1))) for i in range(10)]
    bad = [
        b"", b"[]", b"{" * 20_000, rng.randbytes(500),
        orjson.dumps(req("bool", est_input_tokens=True)),
        orjson.dumps(req("float", est_output_tokens=12.0)),
        orjson.dumps(req("strcost", max_cost_usd="0.5")),
        orjson.dumps(req("epoch", ts=1780315200)),
        orjson.dumps(req("zw", tenant="h\u200bq")), orjson.dumps(req("colon", tenant="a:b")),
        orjson.dumps(req("pipe|id")),
        orjson.dumps(req("dup"))[:-1] + b', "priority": "low", "priority": "critical"}',
        orjson.dumps(req("nan"))[:-1] + b', "min_quality": NaN}',
    ]
    messages = [(b"hq", v) for v in good + bad]
    rng.shuffle(messages)

    send_raw(kafka, worker.topic("requests"), messages)

    def decided() -> int:
        d = worker.get("/stats")["decisions"]
        return d["requests"] + d["dead_lettered"]

    wait_until(lambda: decided() >= len(messages), timeout=60,
               what="every request decided or dead-lettered",
               details=lambda: worker.get("/stats")["decisions"])
    stats = worker.get("/stats")["decisions"]
    assert (stats["requests"], stats["dead_lettered"]) == (len(good), len(bad))
    letters = [orjson.loads(r.value) for r in run(read_to_end(kafka, worker.topic("dlq")))]
    assert len(letters) == len(bad)
    assert {letter["code"] for letter in letters} <= DLQ_CODES
    assert worker.get("/health")["status"] == "ok"
