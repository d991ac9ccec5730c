"""Whether a worker is healthy, from what it observed: one verdict and the reasons.

``/health`` answers 200 only when the worker is ready (partitions assigned, tables
recovered, budgets and catalog read) and nothing is degraded: the broker answers, the
ClickHouse sink accepts writes, and no partition has held unprocessed messages without
progress for longer than PRSM_STALL_AFTER_S. Otherwise it answers 503 with the problems.

>>> facts = HealthFacts(ready=True, broker_down_s=None, sink_blocked_s=12.0,
...                     clickhouse_up=False, stalls=())
>>> assess(facts)
['ClickHouse sink blocked for 12s (rows are retried; offsets are not committed meanwhile)']
>>> assess(HealthFacts(ready=True, broker_down_s=None, sink_blocked_s=None,
...                    clickhouse_up=True, stalls=()))
[]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["HealthFacts", "Stall", "assess", "verdict"]


@dataclass(frozen=True, slots=True)
class Stall:
    """A partition holding messages the worker has not moved past for ``for_s`` seconds."""

    topic: str
    partition: int
    next_offset: int
    end_offset: int
    for_s: float


@dataclass(frozen=True, slots=True)
class HealthFacts:
    ready: bool
    broker_down_s: float | None
    """Seconds since the broker stopped answering, None while it answers."""
    sink_blocked_s: float | None
    """Seconds the ClickHouse sink has been failing to write a batch, None when it is not."""
    clickhouse_up: bool
    stalls: Sequence[Stall]


def assess(facts: HealthFacts) -> list[str]:
    """The problems, worst first; an empty list means healthy."""
    problems = []
    if facts.broker_down_s is not None:
        problems.append(f"Kafka broker unreachable for {facts.broker_down_s:.0f}s")
    if facts.sink_blocked_s is not None:
        problems.append(f"ClickHouse sink blocked for {facts.sink_blocked_s:.0f}s (rows are "
                        "retried; offsets are not committed meanwhile)")
    elif not facts.clickhouse_up:
        problems.append("ClickHouse unavailable")
    for s in facts.stalls:
        problems.append(f"{s.topic}[{s.partition}] stalled for {s.for_s:.0f}s at offset "
                        f"{s.next_offset} ({s.end_offset - s.next_offset} messages waiting)")
    if not facts.ready and not problems:
        problems.append("not ready: partitions being assigned, tables recovered, or budgets "
                        "and catalog read")
    return problems


def verdict(facts: HealthFacts) -> tuple[str, list[str]]:
    """``ok``, ``starting`` (not ready, nothing else wrong) or ``degraded``, with the problems.

    >>> verdict(HealthFacts(ready=False, broker_down_s=None, sink_blocked_s=None,
    ...                     clickhouse_up=True, stalls=()))[0]
    'starting'
    """
    problems = assess(facts)
    if not problems:
        return "ok", problems
    degraded = (facts.broker_down_s is not None or facts.sink_blocked_s is not None
                or not facts.clickhouse_up or bool(facts.stalls))
    return ("degraded" if degraded else "starting"), problems
