from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prsm_events.accounting.pricing import PricedUsage
from prsm_events.accounting.spend import (
    Accepted,
    SpendRow,
    fold_spend,
    is_expired,
    row_keys,
)
from prsm_events.events.usage import UsageEvent


def priced(ts="2026-03-04T05:06:07Z", cost=1.0, tenant="acme", service="chat", model="gpt-4o",
           **kw):
    e = UsageEvent(event_id="e", ts=ts, tenant=tenant, service=service, model=model,
                   cost_usd=cost, **kw)
    return PricedUsage(e, cost, "client", "openai", e.ts.timestamp())


def by_message(items) -> list[Accepted]:
    """(priced event, partition, offset) items grouped by message, as the ingest step gives
    them: consecutive items of one partition and offset (a batch envelope's events)."""
    out: list[Accepted] = []
    for priced, partition, offset in items:
        if out and out[-1][0] == (partition, offset):
            out[-1][1].append(priced)
        else:
            out.append(((partition, offset), [priced]))
    return out


def fold(current, items):
    """``fold_spend`` of (priced event, partition, offset) items, grouped by message as the
    ingest step gives them."""
    return fold_spend(current, by_message(items))


def test_keys_cover_three_scopes_and_five_windows():
    keys = row_keys(priced())
    assert len(keys) == 15
    assert "tenant:acme|minute|2026-03-04T05:06:00Z" in keys
    assert "tenant:acme/service:chat|hour|2026-03-04T05:00:00Z" in keys
    assert "tenant:acme/model:gpt-4o|day|2026-03-04T00:00:00Z" in keys
    assert "tenant:acme|month|2026-03" in keys
    assert "tenant:acme|total|all" in keys


def test_tumbling_windows_split_at_boundaries():
    rows = fold(lambda k: None, [(priced("2026-03-04T05:59:59Z"), 0, 1),
                                 (priced("2026-03-04T06:00:00Z"), 0, 2)])
    assert rows["tenant:acme|hour|2026-03-04T05:00:00Z"].events == 1
    assert rows["tenant:acme|hour|2026-03-04T06:00:00Z"].events == 1
    assert rows["tenant:acme|day|2026-03-04T00:00:00Z"].events == 2


def test_fold_adds_to_stored_rows_without_mutating_them():
    stored = SpendRow(cost_usd=2.0, events=2, partition=0, offset=5)
    rows = fold(lambda k: stored if k == "tenant:acme|total|all" else None,
                [(priced(cost=0.5, input_tokens=10, output_tokens=3, reasoning_tokens=2), 0, 6)])
    total = rows["tenant:acme|total|all"]
    assert (total.cost_usd, total.events, total.input_tokens, total.output_tokens) == (
        2.5, 3, 10, 5)
    assert stored.cost_usd == 2.0


def test_replayed_offsets_are_not_counted_again():
    stored = SpendRow(cost_usd=2.0, events=2, partition=3, offset=10)
    lookup = lambda k: stored if k == "tenant:acme|total|all" else None  # noqa: E731
    rows = fold(lookup, [(priced(), 3, 9), (priced(), 3, 10), (priced(), 3, 11)])
    assert rows["tenant:acme|total|all"].events == 3
    assert "tenant:acme|total|all" in rows
    untouched = fold(lookup, [(priced(), 3, 10)])
    assert "tenant:acme|total|all" not in untouched


@given(st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), max_size=40),
       st.integers(min_value=0, max_value=40))
def test_crash_replay_gives_the_same_totals(costs, crash_at):
    """Process a prefix, 'crash', re-process from an earlier offset: totals stay exact."""
    items = [(priced(cost=c), 0, i) for i, c in enumerate(costs)]
    table: dict[str, SpendRow] = {}
    table.update(fold(table.get, items[:crash_at]))
    table.update(fold(table.get, items[max(0, crash_at - 5):]))
    total = table.get("tenant:acme|total|all")
    assert (total.events if total else 0) == len(costs)
    assert (total.cost_usd if total else 0) == pytest.approx(sum(costs))


def test_row_round_trips_through_a_list():
    row = SpendRow(1.5, 2, 3, 4, 5, 6)
    assert SpendRow.from_list(row.to_list()) == row


@pytest.mark.parametrize(
    ("key", "now", "expired"),
    [
        ("t|minute|2026-01-01T00:00:00Z", datetime(2026, 1, 1, 3, 0, 59, tzinfo=UTC), False),
        ("t|minute|2026-01-01T00:00:00Z", datetime(2026, 1, 1, 3, 2, tzinfo=UTC), True),
        ("t|hour|2026-01-01T00:00:00Z", datetime(2026, 1, 3, tzinfo=UTC), False),
        ("t|day|2026-01-01T00:00:00Z", datetime(2026, 3, 1, tzinfo=UTC), False),
        ("t|day|2026-01-01T00:00:00Z", datetime(2026, 3, 10, tzinfo=UTC), True),
        ("t|month|2026-01", datetime(2027, 1, 1, tzinfo=UTC), False),
        ("t|total|all", datetime(2100, 1, 1, tzinfo=UTC), False),
    ],
)
def test_expiry_by_window(key, now, expired):
    assert is_expired(key, now) is expired


def fold_one_by_one(current, items):
    """The rule ``fold_spend`` keeps, message by message: a row counts a message unless its
    last counted message is of the same partition at that offset or later."""
    changed: dict[str, SpendRow] = {}
    modified: set[str] = set()
    for (partition, offset), events in by_message(items):
        before: dict[str, tuple[int, int]] = {}
        for p in events:
            for key in row_keys(p):
                row = changed.get(key)
                if row is None:
                    stored = current(key)
                    row = changed[key] = SpendRow() if stored is None else stored.copy()
                mark = before.setdefault(key, (row.partition, row.offset))
                if mark[0] == partition and offset <= mark[1]:
                    continue
                row.cost_usd += p.cost_usd
                row.events += 1
                row.input_tokens += p.event.input_tokens
                row.output_tokens += p.event.output_tokens + p.event.reasoning_tokens
                row.partition, row.offset = partition, offset
                modified.add(key)
    return {key: changed[key] for key in modified}


_message = st.tuples(
    st.integers(0, 2),  # partition
    st.integers(0, 3),  # offset step: 0 repeats the offset (another message of the batch)
    st.lists(st.tuples(st.sampled_from(["a", "b"]), st.sampled_from(["chat", "rag"]),
                       st.sampled_from(["05:06:07", "05:06:59", "05:07:00", "06:00:00"]),
                       st.integers(0, 9)), min_size=1, max_size=3),  # events: an envelope
)


@given(st.lists(_message, max_size=30), st.booleans(),
       st.dictionaries(st.sampled_from(["tenant:a|total|all", "tenant:b|total|all",
                                        "tenant:a/service:chat|month|2026-03",
                                        "tenant:b|hour|2026-03-04T05:00:00Z"]),
                       st.tuples(st.integers(0, 2), st.integers(-1, 12)), max_size=4))
def test_folding_runs_at_once_counts_as_folding_message_by_message(messages, sorted_, stored):
    """Batches as the agent gives them (each partition's offsets rising, partitions
    interleaved, envelopes) and any order at all, over rows counted up to some offset
    before a restart: the same rows, counts and marks as one message at a time."""
    items, offsets = [], {0: 0, 1: 0, 2: 0}
    for partition, step, events in messages:
        offsets[partition] += step
        for tenant, service, clock, tokens in events:
            items.append((priced(f"2026-03-04T{clock}Z", cost=tokens / 7, tenant=tenant,
                                 service=service, input_tokens=tokens), partition,
                          offsets[partition]))
    if not sorted_:
        items.reverse()
    rows = {k: SpendRow(cost_usd=1.5, events=3, input_tokens=4, output_tokens=0,
                        partition=p, offset=o) for k, (p, o) in stored.items()}
    fast, slow = fold(rows.get, items), fold_one_by_one(rows.get, items)
    assert fast.keys() == slow.keys()
    for key, row in slow.items():
        got = fast[key]
        assert (got.events, got.input_tokens, got.output_tokens, got.partition, got.offset) == (
            row.events, row.input_tokens, row.output_tokens, row.partition, row.offset), key
        assert got.cost_usd == pytest.approx(row.cost_usd)
