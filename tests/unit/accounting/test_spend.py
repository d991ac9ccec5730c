from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prsm_events.accounting.pricing import PricedUsage
from prsm_events.accounting.spend import SpendRow, fold_spend, is_expired, row_keys
from prsm_events.events.usage import UsageEvent


def priced(ts="2026-03-04T05:06:07Z", cost=1.0, tenant="acme", service="chat", model="gpt-4o",
           **kw):
    e = UsageEvent(event_id="e", ts=ts, tenant=tenant, service=service, model=model,
                   cost_usd=cost, **kw)
    return PricedUsage(e, cost, "client", "openai")


def test_keys_cover_three_scopes_and_five_windows():
    keys = row_keys(priced())
    assert len(keys) == 15
    assert "tenant:acme|minute|2026-03-04T05:06:00Z" in keys
    assert "tenant:acme/service:chat|hour|2026-03-04T05:00:00Z" in keys
    assert "tenant:acme/model:gpt-4o|day|2026-03-04T00:00:00Z" in keys
    assert "tenant:acme|month|2026-03" in keys
    assert "tenant:acme|total|all" in keys


def test_tumbling_windows_split_at_boundaries():
    rows = fold_spend(lambda k: None, [(priced("2026-03-04T05:59:59Z"), 0, 1),
                                       (priced("2026-03-04T06:00:00Z"), 0, 2)])
    assert rows["tenant:acme|hour|2026-03-04T05:00:00Z"].events == 1
    assert rows["tenant:acme|hour|2026-03-04T06:00:00Z"].events == 1
    assert rows["tenant:acme|day|2026-03-04T00:00:00Z"].events == 2


def test_fold_adds_to_stored_rows_without_mutating_them():
    stored = SpendRow(cost_usd=2.0, events=2, partition=0, offset=5)
    rows = fold_spend(lambda k: stored if k == "tenant:acme|total|all" else None,
                      [(priced(cost=0.5, input_tokens=10, output_tokens=3,
                               reasoning_tokens=2), 0, 6)])
    total = rows["tenant:acme|total|all"]
    assert (total.cost_usd, total.events, total.input_tokens, total.output_tokens) == (
        2.5, 3, 10, 5)
    assert stored.cost_usd == 2.0


def test_replayed_offsets_are_not_counted_again():
    stored = SpendRow(cost_usd=2.0, events=2, partition=3, offset=10)
    lookup = lambda k: stored if k == "tenant:acme|total|all" else None  # noqa: E731
    rows = fold_spend(lookup, [(priced(), 3, 9), (priced(), 3, 10), (priced(), 3, 11)])
    assert rows["tenant:acme|total|all"].events == 3
    assert "tenant:acme|total|all" in rows
    untouched = fold_spend(lookup, [(priced(), 3, 10)])
    assert "tenant:acme|total|all" not in untouched


@given(st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), max_size=40),
       st.integers(min_value=0, max_value=40))
def test_crash_replay_gives_the_same_totals(costs, crash_at):
    """Process a prefix, 'crash', re-process from an earlier offset: totals stay exact."""
    items = [(priced(cost=c), 0, i) for i, c in enumerate(costs)]
    table: dict[str, SpendRow] = {}
    table.update(fold_spend(table.get, items[:crash_at]))
    table.update(fold_spend(table.get, items[max(0, crash_at - 5):]))
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
