"""Rolling spend: totals per tenant, service and model over tumbling windows.

Every accepted event adds to one row per (scope, window). A row remembers the source
partition and offset of the last message folded into it, so re-processing a message after a
crash (at-least-once delivery) never counts it twice. Events come message by message
(``Accepted``: one event, or those of a batch envelope), and are folded together.

>>> from prsm_events.events.usage import UsageEvent
>>> from prsm_events.accounting.pricing import PricedUsage
>>> e = UsageEvent(event_id="e1", ts="2026-03-04T05:06:07Z", tenant="acme", service="chat",
...                model="gpt-4o", cost_usd=0.5)
>>> p = PricedUsage(e, 0.5, "client", "openai", e.ts.timestamp())
>>> rows = fold_spend(lambda key: None, [((0, 10), [p, p])])  # two events of message 10
>>> rows["tenant:acme|day|2026-03-04T00:00:00Z"].cost_usd
1.0
>>> fold_spend(rows.get, [((0, 10), [p])])  # message 10 again, after a crash
{}
>>> sorted({key.split("|")[1] for key in rows})
['day', 'hour', 'minute', 'month', 'total']
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from prsm_events.accounting.pricing import PricedUsage

__all__ = [
    "RETENTION",
    "WINDOWS",
    "Accepted",
    "SpendRow",
    "fold_spend",
    "is_expired",
    "row_keys",
    "scopes_of",
]

Accepted = tuple[tuple[int, int], list[PricedUsage]]
"""The accepted events of one message: its (partition, offset), and its events in order
(one, or those of a batch envelope)."""

WINDOWS: dict[str, int] = {"minute": 60, "hour": 3600, "day": 86400}
"""Tumbling window lengths in seconds; ``month`` (calendar, UTC) and ``total`` are added."""

RETENTION: dict[str, timedelta] = {
    "minute": timedelta(hours=3),
    "hour": timedelta(days=3),
    "day": timedelta(days=62),
    "month": timedelta(days=800),
}
"""How long after its end a window's row is kept in the table (ClickHouse keeps everything)."""


@dataclass(slots=True)
class SpendRow:
    """Totals of one (scope, window) plus the watermark of the last folded message."""

    cost_usd: float = 0.0
    events: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    partition: int = -1
    offset: int = -1

    def to_list(self) -> list[float | int]:
        return [self.cost_usd, self.events, self.input_tokens, self.output_tokens,
                self.partition, self.offset]

    @classmethod
    def from_list(cls, raw: list[float | int]) -> SpendRow:
        cost, events, inp, out, partition, offset = raw
        return cls(float(cost), int(events), int(inp), int(out), int(partition), int(offset))

    def copy(self) -> SpendRow:
        return SpendRow(self.cost_usd, self.events, self.input_tokens, self.output_tokens,
                        self.partition, self.offset)


def scopes_of(priced: PricedUsage) -> tuple[str, str, str]:
    """The tenant, tenant/service and tenant/model scopes an event counts towards."""
    e = priced.event
    return _scopes(e.tenant, e.service, e.model or f"({e.kind.value})")


def _scopes(tenant: str, service: str, model: str) -> tuple[str, str, str]:
    scope = f"tenant:{tenant}"
    return scope, f"{scope}/service:{service}", f"{scope}/model:{model}"


@lru_cache(maxsize=4096)
def _window_labels(minute: int) -> tuple[str, ...]:
    """Window labels of every event in the minute starting at epoch second ``minute``."""
    labels = []
    for name, length in WINDOWS.items():
        start = datetime.fromtimestamp(minute - minute % length, UTC)
        labels.append(f"{name}|{start.strftime('%Y-%m-%dT%H:%M:%SZ')}")
    labels.append(f"month|{datetime.fromtimestamp(minute, UTC).strftime('%Y-%m')}")
    labels.append("total|all")
    return tuple(labels)


@lru_cache(maxsize=16384)
def _row_keys(scopes: tuple[str, ...], minute: int) -> tuple[str, ...]:
    """Table keys of every row an event of ``scopes`` in the minute ``minute`` adds to."""
    labels = _window_labels(minute)
    return tuple(f"{scope}|{label}" for scope in scopes for label in labels)


def row_keys(priced: PricedUsage) -> list[str]:
    """Table keys (``scope|window|start``) of every row the event adds to."""
    epoch = int(priced.at)
    return list(_row_keys(scopes_of(priced), epoch - epoch % 60))


def fold_spend(
    current: Callable[[str], SpendRow | None],
    messages: Iterable[Accepted],
) -> dict[str, SpendRow]:
    """Fold the accepted events of messages into rows; return the changed rows. A message
    seen more than once must be given once (``UsageIngestor`` drops repeats).

    ``current(key)`` gives a row's stored value (or None). Rows are copied, never mutated.
    A row counts a message unless it last counted a message of the same partition at that
    offset or later (it was counted before a restart); it then remembers the message. As if
    messages were folded one by one in order, but a run of consecutive messages of one
    partition (offsets rising, as a batch has them) is folded per (scope, minute) at once.
    """
    changed: dict[str, SpendRow] = {}
    modified: set[str] = set()
    for partition, groups in _runs(messages):
        before: dict[str, tuple[int, int]] = {}  # row -> its (partition, offset) before the run
        for (scope, minute), sums in _by_scope(groups).items():
            first, last = sums[0][0], sums[-1][0]
            whole = _total(sums)
            for key in _row_keys((scope,), minute):
                row = changed.get(key)
                if row is None:
                    stored = current(key)
                    row = SpendRow() if stored is None else stored.copy()
                    changed[key] = row
                mark_partition, mark = before.setdefault(key, (row.partition, row.offset))
                if mark_partition != partition or first > mark:
                    add, top = whole, last  # none of the run was counted before
                else:  # counted up to ``mark`` before a restart: the rest only
                    later = [entry for entry in sums if entry[0] > mark]
                    if not later:
                        continue
                    add, top = _total(later), later[-1][0]
                row.cost_usd += add[0]
                row.events += add[1]
                row.input_tokens += add[2]
                row.output_tokens += add[3]
                if row.partition != partition or row.offset < top:
                    row.partition, row.offset = partition, top
                modified.add(key)
    return {key: changed[key] for key in modified}


_Sums = list[list[Any]]
"""[offset, cost, events, input tokens, output tokens] per message of a run, in order."""


def _by_scope(groups: dict[tuple[str, str, str, int], _Sums]
              ) -> dict[tuple[str, int], _Sums]:
    """A run's sums per (scope, minute): each group's sums added to those of its three
    scopes (a tenant's rows take every group of the tenant), message by message in order.
    Each row is then read and written once per run, not once per group it takes."""
    merged: dict[tuple[str, int], dict[int, list[Any]]] = {}
    for (tenant, service, model, minute), sums in groups.items():
        for scope in _scopes(tenant, service, model):
            at = merged.get((scope, minute))
            if at is None:
                merged[(scope, minute)] = {entry[0]: entry.copy() for entry in sums}
                continue
            for o, c, n, i, out in sums:
                held = at.get(o)
                if held is None:
                    at[o] = [o, c, n, i, out]
                else:
                    held[1] += c
                    held[2] += n
                    held[3] += i
                    held[4] += out
    return {place: sorted(at.values()) for place, at in merged.items()}


def _total(sums: _Sums) -> tuple[float, int, int, int]:
    cost, events, inp, out = 0.0, 0, 0, 0
    for _, c, n, i, o in sums:
        cost += c
        events += n
        inp += i
        out += o
    return cost, events, inp, out


def _runs(messages: Iterable[Accepted]
          ) -> list[tuple[int, dict[tuple[str, str, str, int], _Sums]]]:
    """Runs of consecutive messages of one partition at rising offsets, each as its
    messages' sums per (tenant, service, model or ``(kind)``, minute): per the event's
    scopes (``scopes_of``, one to one) and minute, message by message."""
    runs: list[tuple[int, dict[tuple[str, str, str, int], _Sums]]] = []
    groups: dict[tuple[str, str, str, int], _Sums] = {}
    previous = -1
    for (partition, offset), events in messages:
        if not runs or runs[-1][0] != partition or offset < previous:
            groups = {}
            runs.append((partition, groups))
        previous = offset
        for priced in events:
            e = priced.event
            epoch = int(priced.at)
            group = (e.tenant, e.service, e.model or f"({e.kind.value})", epoch - epoch % 60)
            sums = groups.get(group)
            if sums is None:
                groups[group] = [[offset, priced.cost_usd, 1, e.input_tokens,
                                  e.output_tokens + e.reasoning_tokens]]
            elif (last := sums[-1])[0] == offset:  # another event of the message
                last[1] += priced.cost_usd
                last[2] += 1
                last[3] += e.input_tokens
                last[4] += e.output_tokens + e.reasoning_tokens
            else:
                sums.append([offset, priced.cost_usd, 1, e.input_tokens,
                             e.output_tokens + e.reasoning_tokens])
    return runs


def is_expired(key: str, now: datetime) -> bool:
    """True when the key's window ended longer ago than its retention.

    >>> is_expired("tenant:a|minute|2026-01-01T00:00:00Z", datetime(2026, 1, 1, 4, tzinfo=UTC))
    True
    >>> is_expired("tenant:a|total|all", datetime(2099, 1, 1, tzinfo=UTC))
    False
    """
    _scope, window, start = key.rsplit("|", 2)
    if window == "total":
        return False
    if window == "month":
        begin = datetime.strptime(start, "%Y-%m").replace(tzinfo=UTC)
        end = (begin + timedelta(days=32)).replace(day=1)
    else:
        end = datetime.fromisoformat(start) + timedelta(seconds=WINDOWS[window])
    return now - end > RETENTION[window]
