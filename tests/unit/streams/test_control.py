"""SpendControl folding a batch of accepted usage into the ledger, the meter and provider
health: the same figures as taking its events one by one, each message once."""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, datetime

import pytest

from prsm_events.accounting.budgets import Budget, BudgetBook
from prsm_events.accounting.catalog import load_catalog
from prsm_events.accounting.ledger import to_nano
from prsm_events.accounting.ledger_view import NANO
from prsm_events.accounting.pricing import PricedUsage
from prsm_events.accounting.scopes import scopes_of
from prsm_events.decisions.provider_health import ProviderHealth
from prsm_events.events.fast_path import UsageRecord
from prsm_events.events.usage import UsageStatus
from prsm_events.settings import Settings
from streams.control import SpendControl
from tests.unit.streams.fake_producer import FakeProducer, app_with


def priced(n: int, tenant: str, provider: str, model: str | None, cost: float, ts: float,
           *, service: str = "chat", status: str = "ok", request_id: str | None = None
           ) -> PricedUsage:
    record = UsageRecord(event_id=f"e{n}", ts=datetime_of(ts), tenant=tenant, service=service,
                         model=model, provider=provider or None, request_id=request_id,
                         cost_usd=cost, status=UsageStatus(status), latency_ms=100.0 + n)
    return PricedUsage(record, cost, "client", provider, record.ts.timestamp())


def datetime_of(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def test_a_batch_settles_meters_and_observes_what_its_events_do_one_by_one() -> None:
    control = SpendControl(app_with(FakeProducer(), "control-test"), Settings(partitions=4),
                           load_catalog(None))
    a_day, b_day = Budget(scope="tenant:a", period="day", limit_usd=100), \
        Budget(scope="tenant:b/service:chat", period="day", limit_usd=100)
    control.book = BudgetBook([a_day, b_day])
    control.ledger.escrow = None
    now = time.time()
    ledger = control.ledger
    ledger.reserve("a", "held", [a_day], to_nano(5), now, ttl_s=60)
    ledger.reserve("a", "done", [a_day], to_nano(1), now, ttl_s=60)
    ledger.settle_message(3, 0, [])  # (nothing)
    assert ledger.view(a_day, "a", now).reserved == 6 * NANO
    control.apply_messages([((3, 1), [priced(0, "a", "openai", "gpt-4o", 0.25, now,
                                             request_id="done")])])
    settled_before = control.stats.settled
    # events alike but for the provider, two groups at one (provider, model) interleaved,
    # reservations held, settled before and unknown, and a message given again
    events = [
        priced(1, "a", "openai", "gpt-4o", 0.5, now + 1, request_id="held"),
        priced(2, "a", "azure", "gpt-4o", 0.25, now + 2, status="timeout"),
        priced(3, "b", "openai", "gpt-4o", 1.0, now + 3, request_id="nobody"),
        priced(4, "a", "openai", "gpt-4o", 0.125, now + 4, service="search"),
        priced(5, "b", "openai", "gpt-4o", 2.0, now + 5, status="rate_limited"),
        priced(6, "a", "", None, 0.75, now + 6, request_id="done"),
    ]
    messages = [((0, 10), events[:3]), ((1, 4), events[3:5]), ((0, 11), events[5:]),
                ((0, 10), events[:3])]  # (0, 10) given again: counted once
    control.apply_messages(messages)
    control.apply_messages([((1, 4), events[3:5])])  # read again in a later batch: likewise

    # "held", "done" (settled before) and "held" again in the message given again
    assert control.stats.settled - settled_before == 3
    assert ledger.view(a_day, "a", now + 6).reserved == 0  # "held" released
    assert ledger.view(a_day, "a", now + 6).spent == sum(
        to_nano(e.cost_usd) for e in [*events[:2], events[3], events[5]]) + to_nano(0.25)
    assert ledger.view(b_day, "b", now + 6).spent == to_nano(1.0) + to_nano(2.0)

    spend: dict[str, float] = defaultdict(float)
    health = ProviderHealth(half_life_s=control.settings.provider_half_life_s)
    health.observe("openai", "gpt-4o", "ok", 100.0, datetime_of(now).timestamp())  # event 0
    for e in [e for _, given in messages[:3] for e in given]:  # each message once
        r = e.event
        for scope in scopes_of(r.tenant, team=r.team, service=r.service,
                               api_key_id=r.api_key_id, model=r.model):
            spend[scope] += e.cost_usd
        if r.model and e.provider:
            health.observe(e.provider, r.model, r.status.value, r.latency_ms,
                           r.ts.timestamp())
    metered = control.meter.take().spend
    assert set(metered) == set(spend) | set(scopes_of("a", service="chat", model="gpt-4o"))
    for scope, usd in spend.items():
        first = 0.25 if scope in scopes_of("a", service="chat", model="gpt-4o") else 0.0
        assert metered[scope] == pytest.approx(usd + first)
    assert control.health.stats == health.stats  # each (provider, model) in event order


def test_answering_is_answers_for_of_each_budget() -> None:
    control = SpendControl(app_with(FakeProducer(), "control-answers"), Settings(partitions=6),
                           load_catalog(None))
    budgets = [Budget(scope=f"tenant:t{i}" + ("/service:chat" if i % 3 else ""), period="day",
                      limit_usd=10) for i in range(300)]
    budgets += [Budget(scope="global", period="month", limit_usd=1000)]
    assert Budget(scope="global", period="month", limit_usd=1).tenant is None
    for owned in (None, frozenset(), frozenset({0}), frozenset({1, 4}), frozenset(range(6)),
                  frozenset({2, 3, 5})):
        control.ledger.owned = owned
        expected = [control.answers_for(b) for b in budgets]
        tenants = [b.tenant for b in budgets]
        assert control.answering(tenants).tolist() == expected
        assert control.answering(tenants).tolist() == expected  # (hashed once, same answers)
    assert 0 < sum(expected) < len(budgets)  # the last set owns some tenants, not all


def test_two_workers_tick_each_tenants_budgets_once_and_every_global_budget() -> None:
    """Split between two workers, the tenants' budgets are each looked at by the one that
    answers for them, and the budgets over tenants by both (each paces its allotment)."""
    settings = Settings(partitions=6)
    controls = [SpendControl(app_with(FakeProducer(), f"control-watched-{i}"), settings,
                             load_catalog(None)) for i in range(2)]
    budgets = [Budget(scope=f"tenant:t{i}", period="day", limit_usd=10) for i in range(200)]
    budgets += [Budget(scope=f"tenant:t{i}/service:chat", period="week", limit_usd=5)
                for i in range(0, 200, 7)]
    over_tenants = [Budget(scope="global", period="month", limit_usd=1000),
                    Budget(scope="global", period="day", limit_usd=100, pacing=True)]
    budgets += over_tenants
    assert all(b.tenant is None for b in over_tenants)
    controls[0].ledger.owned, controls[1].ledger.owned = frozenset({0, 2, 4}), frozenset(
        {1, 3, 5})
    watched = [control.watched(budgets) for control in controls]
    for control, theirs in zip(controls, watched, strict=True):
        assert [b for b in budgets if control.answers_for(b) or b.tenant is None] == theirs
    tenants = [[b.key for b in w if b.tenant is not None] for w in watched]
    assert sorted(tenants[0] + tenants[1]) == sorted(b.key for b in budgets
                                                     if b.tenant is not None)
    assert tenants[0] and tenants[1]  # both have some
    assert all(set(over_tenants) <= set(w) for w in watched)
    controls[0].ledger.owned = frozenset(range(6))  # alone: the whole book, as it is
    assert controls[0].watched(budgets) == budgets
