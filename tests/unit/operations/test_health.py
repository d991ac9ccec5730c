import logging

import pytest

from prsm_events.operations.health import HealthFacts, Stall, assess
from prsm_events.operations.log_limits import RepeatLimiter

HEALTHY = dict(ready=True, broker_down_s=None, sink_blocked_s=None, clickhouse_up=True,
               stalls=())
STALL = Stall("prsm.usage", 2, 100, 160, 75.0)


@pytest.mark.parametrize(("change", "problems"), [
    ({}, []),
    ({"ready": False}, ["not ready: partitions being assigned, tables recovered, or budgets "
                        "and catalog read"]),
    ({"broker_down_s": 21.0}, ["Kafka broker unreachable for 21s"]),
    ({"clickhouse_up": False}, ["ClickHouse unavailable"]),
    ({"sink_blocked_s": 5.0, "clickhouse_up": False},
     ["ClickHouse sink blocked for 5s (rows are retried; offsets are not committed meanwhile)"]),
    ({"stalls": (STALL,)}, ["prsm.usage[2] stalled for 75s at offset 100 (60 messages waiting)"]),
    ({"ready": False, "broker_down_s": 3.0}, ["Kafka broker unreachable for 3s"]),
])
def test_assess_names_every_problem(change, problems):
    assert assess(HealthFacts(**{**HEALTHY, **change})) == problems


def record(msg: str, level: int = logging.ERROR, name: str = "aiokafka") -> logging.LogRecord:
    return logging.LogRecord(name, level, "", 0, msg, ("x",), None)


def test_repeats_pass_once_per_interval_per_cause():
    now = [0.0]
    limiter = RepeatLimiter(interval_s=10.0, clock=lambda: now[0])
    passed = []
    for i in range(3000):  # 3,000 reconnect errors a second, two causes, for 20 s
        now[0] = i / 150
        for msg in ("Unable connect to %s", "Unable to update metadata from %s"):
            rec = record(msg)
            if limiter.filter(rec):
                passed.append(rec.getMessage())
    assert len(passed) == 4
    assert passed[2] == "Unable connect to x (1499 more like this in the last 10.0s)"
    assert limiter.held == 6000 - 4


def test_info_lines_and_other_loggers_are_not_held():
    limiter = RepeatLimiter(interval_s=10.0, clock=lambda: 0.0)
    assert all(limiter.filter(record("progress %s", logging.INFO)) for _ in range(5))
    assert limiter.filter(record("same text", name="a"))
    assert limiter.filter(record("same text", name="b"))
    assert not limiter.filter(record("same text", name="a"))


def test_two_handlers_each_count_a_cause_once():
    now = [0.0]
    first = RepeatLimiter(interval_s=10.0, clock=lambda: now[0])
    second = RepeatLimiter(interval_s=10.0, clock=lambda: now[0])
    results = []
    for t in (0.0, 1.0, 11.0):
        now[0] = t
        rec = record("Unable connect to %s")
        results.append((first.filter(rec), second.filter(rec)))
    assert results == [(True, True), (False, False), (True, True)]


@pytest.mark.parametrize(("change", "status"), [
    ({}, "ok"),
    ({"ready": False}, "starting"),
    ({"ready": False, "clickhouse_up": False}, "degraded"),
    ({"stalls": (STALL,)}, "degraded"),
    ({"broker_down_s": 1.0}, "degraded"),
])
def test_verdict(change, status):
    from prsm_events.operations.health import verdict

    assert verdict(HealthFacts(**{**HEALTHY, **change}))[0] == status
