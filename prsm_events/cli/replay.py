"""Turn a request trace (CSV) into usage events, deterministically spread over tenants.

Reads traces in the Azure LLM inference trace layout (``TIMESTAMP, ContextTokens,
GeneratedTokens``; the Azure Public Dataset, CC-BY 4.0). Each row becomes one usage event;
tenant, service and model are drawn from a seeded generator so that the same seed gives the
same events. Time is rebased to ``start`` and compressed by ``speed``.

>>> from datetime import UTC
>>> rows = [TraceRow(0.0, 1000, 10), TraceRow(30.0, 2000, 20)]
>>> spread = WorkloadSpread(tenants=2, seed=7)
>>> events = list(trace_events(rows, spread, start=datetime(2026, 1, 1, tzinfo=UTC), speed=60))
>>> [(round(at, 3), e.ts.isoformat()) for at, e in events]
[(0.0, '2026-01-01T00:00:00+00:00'), (0.5, '2026-01-01T00:00:00.500000+00:00')]
>>> events == list(trace_events(rows, spread, start=datetime(2026, 1, 1, tzinfo=UTC), speed=60))
True
"""

from __future__ import annotations

import asyncio
import csv
import random
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prsm_events.events.usage import UsageEvent
from prsm_events.settings import Settings

__all__ = [
    "TraceRow",
    "WorkloadSpread",
    "read_trace",
    "replay_trace",
    "synthetic_trace",
    "trace_events",
]

DEFAULT_SERVICES = ("chat", "search", "summarize", "agent")
DEFAULT_MODELS = ("gpt-4o-mini", "gpt-4.1", "claude-sonnet-4", "gemini-2.5-flash",
                  "deepseek-chat", "gpt-5-mini")


@dataclass(frozen=True, slots=True)
class TraceRow:
    offset_s: float
    input_tokens: int
    output_tokens: int


def read_trace(path: Path) -> list[TraceRow]:
    """Rows of an Azure-LLM-trace-style CSV, with offsets from its first timestamp."""
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"TIMESTAMP", "ContextTokens", "GeneratedTokens"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing columns {sorted(missing)}")
        raw = [(datetime.fromisoformat(r["TIMESTAMP"][:26]), int(r["ContextTokens"]),
                int(r["GeneratedTokens"])) for r in reader]
    if not raw:
        return []
    t0 = min(r[0] for r in raw)
    rows = [TraceRow((t - t0).total_seconds(), i, o) for t, i, o in raw]
    return sorted(rows, key=lambda r: r.offset_s)


def synthetic_trace(rows: int = 2000, seconds: float = 600.0, seed: int = 0) -> list[TraceRow]:
    """A made-up trace (log-normal token counts) for when no real trace is at hand."""
    rng = random.Random(seed)
    offsets = sorted(rng.uniform(0, seconds) for _ in range(rows))
    return [TraceRow(t, int(rng.lognormvariate(7.0, 1.0)), int(rng.lognormvariate(4.5, 1.0)))
            for t in offsets]


@dataclass(frozen=True)
class WorkloadSpread:
    """How trace rows are attributed to tenants, services and models."""

    tenants: int = 5
    services: tuple[str, ...] = DEFAULT_SERVICES
    models: tuple[str, ...] = DEFAULT_MODELS
    seed: int = 0


def trace_events(
    rows: Iterable[TraceRow], spread: WorkloadSpread, start: datetime, speed: float = 1.0,
    id_prefix: str = "replay",
) -> Iterator[tuple[float, UsageEvent]]:
    """(seconds after start to send it, event) for each row; ``speed`` compresses time.

    Event ids are ``{id_prefix}-{seed}-{row}``: replaying with the same prefix and seed
    re-sends the same events, which the worker de-duplicates.
    """
    if speed <= 0:
        raise ValueError("speed must be positive")
    rng = random.Random(spread.seed)
    tenant_weights = [1.0 / (i + 1) for i in range(spread.tenants)]  # a few big tenants
    for n, row in enumerate(rows):
        at = row.offset_s / speed
        tenant = rng.choices(range(spread.tenants), tenant_weights)[0]
        yield at, UsageEvent(
            event_id=f"{id_prefix}-{spread.seed}-{n}",
            ts=start + timedelta(seconds=at),
            tenant=f"tenant-{tenant:02d}",
            service=rng.choice(spread.services),
            model=rng.choice(spread.models),
            input_tokens=row.input_tokens,
            output_tokens=row.output_tokens,
            request_id=f"{id_prefix}-{spread.seed}-{n}",
        )


def replay_trace(s: Settings, trace: Path | None, *, speed: float, seed: int, tenants: int,
                 limit: int | None, run_id: str | None, max_rate: float | None = None) -> int:
    """Publish a trace (or the synthetic one) as usage events at ``speed``, with progress;
    return how many were sent."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from prsm_events.sdk.publisher import UsagePublisher

    rows = read_trace(trace) if trace else synthetic_trace(seed=seed)
    rows = rows[:limit] if limit else rows
    prefix = run_id or f"replay-{uuid.uuid4().hex[:8]}"

    async def run() -> int:
        start = datetime.now(UTC)
        t0 = time.monotonic()
        events = trace_events(rows, WorkloadSpread(tenants=tenants, seed=seed), start, speed,
                              id_prefix=prefix)
        sent = 0
        pending: list[Any] = []
        async with UsagePublisher(s.kafka, topic=s.topic("usage")) as pub:
            producer = pub.producer
            with Progress(TextColumn("replay"), BarColumn(), TextColumn("{task.completed}/"
                          "{task.total} events"), TimeRemainingColumn(),
                          transient=False) as progress:
                task = progress.add_task("replay", total=len(rows))
                for at, event in events:
                    due = max(at, sent / max_rate if max_rate else 0.0)
                    wait = due - (time.monotonic() - t0)
                    if wait > 0.002:
                        await asyncio.sleep(wait)
                    pending.append(await producer.send(
                        pub.topic, key=event.tenant.encode(),
                        value=event.model_dump_json(exclude_none=True).encode()))
                    sent += 1
                    if len(pending) >= 1000:
                        await asyncio.gather(*pending)
                        pending.clear()
                    progress.update(task, completed=sent)
                await asyncio.gather(*pending)
        return sent

    return asyncio.run(run())
