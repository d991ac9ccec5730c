"""Scopes, periods, budgets and the budget book."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from prsm_events.accounting.budgets import Budget, BudgetBook
from prsm_events.accounting.periods import calendar_bounds
from prsm_events.accounting.scopes import Scope, scopes_of


@pytest.mark.parametrize("text", ["global", "tenant:acme", "tenant:acme/team:ml",
                                  "tenant:acme/service:chat", "tenant:acme/api_key:k-1",
                                  "tenant:acme/model:gpt-4o"])
def test_scopes_round_trip(text: str) -> None:
    assert str(Scope.parse(text)) == text


@given(st.sampled_from(["global", "tenant:{}", "tenant:{}/team:x", "tenant:{}/service:s-1",
                        "tenant:{}/api_key:k", "tenant:{}/model:gpt-4o"]),
       st.from_regex(r"[\x21\x22\x24-\x2e\x30-\x39\x3b-\x7b\x7d\x7e]{1,128}",
                     fullmatch=True))
def test_a_budgets_tenant_is_its_scopes(template: str, tenant: str) -> None:
    scope = template.format(tenant)
    assert Budget(scope=scope, period="day", limit_usd=1.0).tenant == Scope.parse(scope).tenant


@pytest.mark.parametrize(("text", "message"), [
    ("acme", "expected 'global'"), ("tenant:", "expected 'global'"),
    ("tenant:a b", "expected 'global'"), ("tenant:acme/region:eu", "one of team"),
    ("tenant:acme/service:", "needs an id"), ("tenant:acme/service:a|b", "needs an id"),
])
def test_bad_scopes_are_explained(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Scope.parse(text)


def test_scopes_of_lists_every_level() -> None:
    assert scopes_of("acme", team="ml", service="chat", api_key_id="k1", model="gpt-4o") == [
        "global", "tenant:acme", "tenant:acme/team:ml", "tenant:acme/service:chat",
        "tenant:acme/api_key:k1", "tenant:acme/model:gpt-4o"]


@pytest.mark.parametrize(("period", "tz", "now", "start", "end"), [
    ("day", "UTC", "2026-03-10T23:59:59", "2026-03-10T00:00:00", "2026-03-11T00:00:00"),
    ("week", "UTC", "2026-03-15T12:00:00", "2026-03-09T00:00:00", "2026-03-16T00:00:00"),
    ("month", "UTC", "2026-12-31T12:00:00", "2026-12-01T00:00:00", "2027-01-01T00:00:00"),
    ("month", "Europe/Berlin", "2026-03-31T23:30:00", "2026-03-31T22:00:00",
     "2026-04-30T22:00:00"),
    # the day DST starts in New York has 23 hours
    ("day", "America/New_York", "2026-03-08T12:00:00", "2026-03-08T05:00:00",
     "2026-03-09T04:00:00"),
])
def test_calendar_bounds(period: str, tz: str, now: str, start: str, end: str) -> None:
    got = calendar_bounds(period, tz, datetime.fromisoformat(now).replace(tzinfo=UTC))
    assert [t.isoformat() for t in got] == [f"{start}+00:00", f"{end}+00:00"]


@pytest.mark.parametrize(("fields", "message"), [
    ({"scope": "acme"}, "expected 'global'"),
    ({"period": "quarter"}, "period must be one of"),
    ({"limit_usd": -1}, "greater than or equal to 0"),
    ({"alert_at": [0.5, 1.5]}, r"alert_at fractions must be in \(0, 1\]"),
    ({"timezone": "Mars/Olympus"}, "unknown time zone"),
    ({"colour": "red"}, "Extra inputs are not permitted"),
])
def test_budget_validation(fields: dict, message: str) -> None:
    base = {"scope": "tenant:acme", "period": "month", "limit_usd": 100}
    with pytest.raises(ValidationError, match=message):
        Budget.model_validate({**base, **fields})


def test_book_holds_several_budgets_per_scope() -> None:
    book = BudgetBook()
    day = Budget(scope="tenant:acme", period="day", limit_usd=50)
    month = Budget(scope="tenant:acme", period="month", limit_usd=1000, alert_at=(0.8, 0.5))
    svc = Budget(scope="tenant:acme/service:chat", period="24h", limit_usd=5)
    for b in (day, month, svc):
        book.apply(b.key.encode(), b.model_dump_json().encode())
    assert month.alert_at == (0.5, 0.8)
    keys = {b.key for b in book.applicable(scopes_of("acme", service="chat"))}
    assert keys == {"tenant:acme|day", "tenant:acme|month", "tenant:acme/service:chat|24h"}
    assert book.applicable(scopes_of("other")) == []
    book.apply(b"tenant:acme|day", None)
    assert {b.key for b in book} == {"tenant:acme|month", "tenant:acme/service:chat|24h"}
    with pytest.raises(ValueError, match="does not match"):
        book.apply(b"tenant:x|day", day.model_dump_json().encode())
    with pytest.raises(ValueError, match="no key"):
        book.apply(None, day.model_dump_json().encode())


def test_the_book_index_follows_any_sequence_of_puts_and_removes() -> None:
    import random

    rng = random.Random(5)
    book = BudgetBook()
    reference: dict[str, Budget] = {}
    scopes = ["tenant:a", "tenant:a/service:chat", "tenant:b", "global"]
    for _ in range(2000):
        scope, period = rng.choice(scopes), rng.choice(["day", "month", "24h"])
        if rng.random() < 0.3:
            key = f"{scope}|{period}"
            assert (book.remove(key) is None) == (reference.pop(key, None) is None)
        else:
            b = Budget(scope=scope, period=period, limit_usd=rng.choice([1.0, 2.0, 3.0]))
            book.put(b)
            reference[b.key] = b
        assert {b.key: b for b in book} == reference
        for s in scopes:  # in the order the keys were first put, as a fresh book has them
            assert book.applicable([s]) == BudgetBook(reference.values()).applicable([s])


_SCOPES = ["global", "tenant:a", "tenant:b", "tenant:a/model:m", "tenant:a/service:s",
           "tenant:b/team:t"]
_FIELDS = [("a", None, None, None, "m"), ("a", None, "s", None, "m"), ("b", "t", None, None, "m"),
           ("b", None, None, "k", "x")]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["put", "remove", "ask"]), st.sampled_from(_SCOPES),
                          st.sampled_from(["day", "month"]), st.integers(1, 9),
                          st.sampled_from(_FIELDS)), max_size=40))
def test_scoped_budgets_always_equal_the_books_budgets_read_afresh(steps) -> None:
    """``scoped`` keeps what it found; whatever the book's changes, it answers as a fresh
    reading of the book would."""
    book = BudgetBook()
    for op, scope, period, limit, (tenant, team, service, key, model) in steps:
        if op == "put":
            book.put(Budget(scope=scope, period=period, limit_usd=limit))
        elif op == "remove":
            book.remove(f"{scope}|{period}")
        scopes, budgets = book.scoped(tenant, team=team, service=service, api_key_id=key,
                                      model=model)
        fresh = scopes_of(tenant, team=team, service=service, api_key_id=key, model=model)
        assert list(scopes) == fresh
        assert list(budgets) == book.applicable(fresh)


def test_scoped_keeps_a_bounded_number_of_answers(monkeypatch) -> None:
    monkeypatch.setattr("prsm_events.accounting.budgets.SCOPED_KEPT", 3)
    book = BudgetBook([Budget(scope="global", period="day", limit_usd=1)])
    for i in range(10):
        assert [b.key for b in book.scoped(f"t{i}")[1]] == ["global|day"]
        assert len(book._scoped) <= 3
