"""The ledger and admission: hard budgets are never exceeded, reservations never leak."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from prsm_events.accounting.budgets import Budget, BudgetBook
from prsm_events.accounting.catalog import Catalog
from prsm_events.accounting.ledger import BudgetLedger, Reservation, Settlement, to_nano
from prsm_events.accounting.ledger_view import NANO
from prsm_events.accounting.scopes import scopes_of
from prsm_events.decisions.admission import AdmissionDesk
from prsm_events.events.request import RequestEvent
from prsm_events.kafka.partitioning import owner_partition

CATALOG = Catalog.shipped()
T0 = datetime(2026, 3, 10, 12, tzinfo=UTC)
MODELS = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "gpt-5-nano", "o3"]


def budget(scope: str, period: str = "day", limit: float = 1.0, hard: bool = True) -> Budget:
    return Budget(scope=scope, period=period, limit_usd=limit, hard=hard)


def test_the_events_of_one_message_are_folded_together_all_or_none() -> None:
    """A batch envelope: its events share one offset; a row counts them all once."""
    ledger = BudgetLedger({}, {}, partitions=4, partition_of=owner_partition)
    b, g = budget("tenant:a", limit=10), budget("global", limit=100)
    now = T0.timestamp()
    ledger.reserve("a", "r1", [b, g], to_nano(2), now, ttl_s=60)
    message = [Settlement("a", "r1", to_nano(1), now, [b, g]),
               Settlement("a", None, to_nano(2), now, [b, g]),
               Settlement("c", None, to_nano(4), now, [g])]
    assert ledger.settle_message(0, 9, message) == 3
    assert ledger.view(b, "a", now).spent == 3 * NANO and ledger.view(b, "a", now).reserved == 0
    assert ledger.view(g, "a", now).spent == 7 * NANO  # a global view sums its shards
    assert ledger.settle_message(0, 9, message) == 0  # re-delivered after a crash
    assert ledger.settle_message(0, 8, message[:1]) == 0  # an earlier message
    assert ledger.view(b, "a", now).spent == 3 * NANO
    assert ledger.settle_message(1, 9, message[1:2]) == 1  # another partition's offset 9
    assert ledger.view(b, "a", now).spent == 5 * NANO


def test_reserve_settle_expire_round_trip() -> None:
    ledger = BudgetLedger({}, {}, partitions=4, partition_of=owner_partition)
    b = budget("tenant:a", limit=10)
    now = T0.timestamp()
    ledger.reserve("a", "r1", [b], to_nano(2), now, ttl_s=60)
    ledger.reserve("a", "r2", [b], to_nano(3), now, ttl_s=30)
    with pytest.raises(ValueError, match="already holds"):
        ledger.reserve("a", "r1", [b], 1, now, ttl_s=60)
    assert ledger.view(b, "a", now).reserved == 5 * NANO
    assert ledger.settle("a", "r1", to_nano(1.5), now, partition=0, offset=7, budgets=[b])
    assert not ledger.settle("a", "r1", to_nano(1.5), now, partition=0, offset=7, budgets=[b])
    view = ledger.view(b, "a", now)
    assert (view.spent, view.reserved) == (int(1.5 * NANO), 3 * NANO)
    assert ledger.expire(now + 29) == []
    expired = ledger.expire(now + 31)
    assert [k for k, _ in expired] == ["a|r2"]
    assert ledger.view(b, "a", now).reserved == 0
    # the settled reservation is kept (marked) until its TTL, then forgotten
    settled = ledger.reservation("a", "r1")
    assert isinstance(settled, Reservation) and settled.settled
    ledger.expire(now + 61)
    assert ledger.reservation("a", "r1") is None
    assert ledger.view(b, "a", now).reserved == 0


def test_dirty_keys_name_changelog_partitions() -> None:
    ledger = BudgetLedger({}, {}, partitions=4, partition_of=owner_partition)
    tenant_b, global_b = budget("tenant:a"), budget("global")
    ledger.reserve("a", "r1", [tenant_b, global_b], 10, T0.timestamp(), 60)
    states, reservations = ledger.take_dirty()
    assert states == {}  # a hold lives in its reservation record only
    ledger.settle("a", "r1", 8, T0.timestamp(), 0, 1, [tenant_b, global_b])
    states, settled = ledger.take_dirty()
    shard = next(k for k in states if k.startswith("global|day#p"))
    assert set(states) == {"tenant:a|day", shard}
    assert states[shard] == int(shard.rsplit("#p", 1)[1])
    assert states["tenant:a|day"] == reservations["a|r1"] == settled["a|r1"]  # tenant's
    assert ledger.take_dirty() == ({}, {})


def test_calendar_period_rolls_and_late_usage_is_not_counted() -> None:
    ledger = BudgetLedger({}, {}, partitions=1, partition_of=owner_partition)
    b = budget("tenant:a", "day", 10)
    day1 = T0.timestamp()
    ledger.settle("a", None, to_nano(4), day1, 0, 1, [b])
    next_day = day1 + 86400
    assert ledger.view(b, "a", next_day).spent == 0  # a new period starts empty
    ledger.settle("a", None, to_nano(1), next_day, 0, 2, [b])
    ledger.settle("a", None, to_nano(9), day1, 0, 3, [b])  # late usage of yesterday
    assert ledger.view(b, "a", next_day).spent == to_nano(1)


def test_time_zone_decides_where_the_day_starts() -> None:
    ledger = BudgetLedger({}, {}, partitions=1, partition_of=owner_partition)
    tokyo = Budget(scope="tenant:a", period="day", limit_usd=10, timezone="Asia/Tokyo")
    late = datetime(2026, 3, 10, 14, 30, tzinfo=UTC).timestamp()  # 23:30 in Tokyo
    ledger.settle("a", None, to_nano(3), late, 0, 1, [tokyo])
    after_midnight = late + 3600  # 00:30 the next day in Tokyo, still the same UTC day
    assert ledger.view(tokyo, "a", late).spent == to_nano(3)
    assert ledger.view(tokyo, "a", after_midnight).spent == 0


def test_rolling_window_releases_old_spend() -> None:
    ledger = BudgetLedger({}, {}, partitions=1, partition_of=owner_partition)
    b = budget("tenant:a", "1h", 10)
    t = T0.timestamp()
    ledger.settle("a", None, to_nano(6), t, 0, 1, [b])
    ledger.settle("a", None, to_nano(3), t + 1800, 0, 2, [b])
    view = ledger.view(b, "a", t + 1800)
    assert view.spent == to_nano(9)
    wait, basis = view.seconds_until_fits(to_nano(4))  # needs the first $6 to leave
    assert basis == "window" and 1800 <= wait <= 1800 + 60
    assert ledger.view(b, "a", t + 3600 + 61).spent == to_nano(3)


def test_global_budget_sums_every_tenant_shard() -> None:
    ledger = BudgetLedger({}, {}, partitions=4, partition_of=owner_partition)
    g = budget("global", limit=10)
    for i, tenant in enumerate(["a", "b", "c", "d", "e"]):
        ledger.settle(tenant, None, to_nano(1), T0.timestamp(), 0, i, [g])
    assert ledger.view(g, "anyone", T0.timestamp()).spent == to_nano(5)


def test_holds_and_expiries_are_rebuilt_from_restored_reservations() -> None:
    states: dict = {}
    reservations: dict = {}
    first = BudgetLedger(states, reservations, partitions=2, partition_of=owner_partition)
    b = budget("tenant:a")
    first.reserve("a", "r1", [b], 5, T0.timestamp(), 10)
    first.take_dirty()
    restored = BudgetLedger(dict(states), dict(reservations), partitions=2,
                            partition_of=owner_partition)
    assert restored.view(b, "a", T0.timestamp()).reserved == 5  # holds re-summed
    assert [k for k, _ in restored.expire(T0.timestamp() + 11)] == ["a|r1"]
    assert restored.view(b, "a", T0.timestamp()).reserved == 0


# --- properties ----------------------------------------------------------------------------
step = st.one_of(
    st.tuples(st.just("request"), st.sampled_from(MODELS), st.integers(0, 20_000),
              st.integers(0, 4_000), st.sampled_from(["low", "normal", "high", "critical"]),
              st.sampled_from(["chat", "search"]), st.sampled_from(["a", "b"])),
    st.tuples(st.just("settle"), st.integers(0, 10_000), st.floats(0, 1)),
    st.tuples(st.just("redeliver"), st.integers(0, 10_000)),
    st.tuples(st.just("advance"), st.integers(1, 400)),
)


@settings(max_examples=150, deadline=None)
@example(  # usage for a request whose hold expired while a new request took the room
    steps=[("request", "gpt-4o", 0, 1, "low", "chat", "a"), ("advance", 150), ("advance", 150),
           ("request", "gpt-4o", 0, 100, "low", "chat", "a"), ("settle", 0, 1.0)],
    limits=(0.125, 0.001, 0.25))
@given(steps=st.lists(step, min_size=1, max_size=80),
       limits=st.tuples(st.floats(0.001, 0.2), st.floats(0.001, 0.2), st.floats(0.001, 0.3)))
def test_any_interleaving_never_exceeds_a_hard_budget(steps: list, limits: tuple) -> None:
    """Requests, settlements (actual <= estimate), re-deliveries and expiries, in any order:
    spent + reserved <= limit for every hard budget, reservations never go negative and
    always equal the outstanding holds; after every TTL has passed nothing stays reserved.
    Usage that arrives after its reservation expired is still counted (the money was spent),
    so a budget may be passed by exactly such late usage and by nothing else."""
    budgets = [budget("tenant:a", limit=limits[0]),
               budget("tenant:a/service:chat", "1h", limit=limits[1]),
               budget("global", limit=limits[2]),
               budget("tenant:b", limit=0.05, hard=False)]
    book = BudgetBook(budgets)
    ledger = BudgetLedger({}, {}, partitions=3, partition_of=owner_partition)
    desk = AdmissionDesk(book, ledger, CATALOG, reservation_ttl_s=300)
    now = T0
    admitted: list[tuple[str, str, int, str]] = []  # (tenant, request, amount, service)
    usage: list[tuple[str, str, int, int, str]] = []  # (tenant, request, cost, offset, service)
    offset = 0
    late: dict[str, int] = {}  # budget key -> usage settled after its hold expired
    for i, s in enumerate(steps):
        if s[0] == "request":
            _, model, tin, tout, prio, service, tenant = s
            req = RequestEvent(request_id=f"r{i}", ts=now, tenant=tenant, service=service,
                               model=model, est_input_tokens=tin, est_output_tokens=tout,
                               priority=prio)
            d = desk.admit(req, now)
            if d.admitted and ledger.reservation(tenant, req.request_id) is not None:
                admitted.append((tenant, req.request_id, to_nano(d.est_cost_usd), service))
        elif s[0] == "settle" and admitted:
            # each admitted request is used (and settled) once; re-deliveries are below
            tenant, rid, amount, service = admitted.pop(s[1] % len(admitted))
            offset += 1
            cost = int(amount * s[2])
            usage.append((tenant, rid, cost, offset, service))
            if ledger.reservation(tenant, rid) is None:  # expired: nothing held it any more
                for b in book.applicable(scopes_of(tenant, service=service)):
                    late[b.key] = late.get(b.key, 0) + cost
            ledger.settle(tenant, rid, cost, now.timestamp(), 0, offset,
                          book.applicable(scopes_of(tenant, service=service)))
        elif s[0] == "redeliver" and usage:
            tenant, rid, cost, off, service = usage[s[1] % len(usage)]
            ledger.settle(tenant, rid, cost, now.timestamp(), 0, off,
                          book.applicable(scopes_of(tenant, service=service)))
        elif s[0] == "advance":
            now += timedelta(seconds=s[1])
            ledger.expire(now.timestamp())
        clock = now.timestamp()
        ledger.take_dirty()  # what the worker does after every batch: rows -> mapping
        outstanding: dict[str, int] = {}
        for raw in ledger.reservations.values():
            r = Reservation.from_list(raw)
            if not r.settled:
                for row in r.keys:
                    outstanding[row] = outstanding.get(row, 0) + r.amount
        for key in set(outstanding) | set(ledger.holds()):
            assert ledger.reserved(key) >= 0, "reserved went negative"
            assert ledger.reserved(key) == outstanding.get(key, 0), f"reserved of {key} leaked"
        for b in budgets:
            if b.hard:
                for tenant in ("a", "b"):
                    view = ledger.view(b, tenant, clock)
                    assert view.spent + view.reserved <= view.limit + late.get(b.key, 0), b.key
    ledger.expire((now + timedelta(seconds=301)).timestamp())
    ledger.take_dirty()
    assert ledger.holds() == {}
    assert not ledger.reservations


GLOBAL = Budget(scope="global", period="day", limit_usd=1.0)


def test_a_worker_owning_some_partitions_admits_against_their_share_of_a_global_budget():
    ledger = BudgetLedger({}, {}, partitions=4, partition_of=owner_partition)
    now = datetime(2026, 12, 3, 12, tzinfo=UTC).timestamp()
    tenants = {owner_partition(f"t{i}", 4): f"t{i}" for i in range(40)}  # one per partition
    assert ledger.view(GLOBAL, "t0", now).limit == NANO  # None: every partition
    ledger.owned = frozenset({0, 1})
    view = ledger.view(GLOBAL, tenants[0], now)
    assert (view.limit, view.allotment) == (NANO // 2, NANO // 2)
    ledger.reserve(tenants[0], "r1", [GLOBAL], NANO // 4, now, 60)
    ledger.reserve(tenants[2], "r2", [GLOBAL], NANO // 4, now, 60)  # a shard it does not own
    view = ledger.view(GLOBAL, tenants[1], now)
    assert (view.reserved, view.remaining) == (NANO // 4, NANO // 4)
    assert view.fits(NANO // 4) and not view.fits(NANO // 4 + 1)
    ledger.owned = frozenset(range(4))  # every partition again: the whole limit
    assert ledger.view(GLOBAL, tenants[0], now).allotment is None


@settings(max_examples=60, deadline=None)
@given(owners=st.lists(st.integers(0, 2), min_size=6, max_size=6),
       amounts=st.lists(st.integers(NANO // 50, NANO // 5), min_size=60, max_size=80),
       tenants=st.lists(st.integers(0, 29), min_size=80, max_size=80))
def test_workers_owning_disjoint_partitions_never_admit_more_than_a_global_limit(
        owners, amounts, tenants):
    """Six partitions split among up to three workers, each with its own ledger (the tables
    of its partitions): whatever each admits greedily, together they stay within the limit
    (the requests ask several times the limit, so each worker fills its share)."""
    now = datetime(2026, 12, 3, 12, tzinfo=UTC).timestamp()
    workers = sorted(set(owners))
    ledgers = {}
    for w in workers:
        ledgers[w] = BudgetLedger({}, {}, partitions=6, partition_of=owner_partition)
        ledgers[w].owned = frozenset(p for p, o in enumerate(owners) if o == w)
    admitted = 0
    for i, amount in enumerate(amounts):
        tenant = f"t{tenants[i]}"
        ledger = ledgers[owners[owner_partition(tenant, 6)]]
        if ledger.view(GLOBAL, tenant, now).fits(amount):
            ledger.reserve(tenant, f"r{i}", [GLOBAL], amount, now, 60)
            admitted += amount
    assert admitted <= NANO
    if len(workers) == 1:  # one worker owns every partition: the whole limit is usable
        assert all(lg.view(GLOBAL, "t0", now).allotment is None for lg in ledgers.values())


_op = st.one_of(
    st.tuples(st.just("reserve"), st.sampled_from("abcde"), st.integers(1, 40),
              st.integers(0, 3)),
    st.tuples(st.just("settle"), st.sampled_from("abcde"), st.integers(0, 40),
              st.integers(0, 3)),
    st.tuples(st.just("expire"), st.integers(0, 3)),
    st.tuples(st.just("own"), st.sets(st.integers(0, 3)) | st.none()),
    st.tuples(st.just("reload")),
    st.tuples(st.just("tick"), st.integers(0, 3)),
)


@settings(max_examples=300, deadline=None)
@given(ops=st.lists(_op, min_size=1, max_size=60))
def test_views_kept_for_an_instant_equal_views_read_from_the_rows(ops: list) -> None:
    """``view`` keeps the views of one instant and moves them with each reservation; after
    any sequence of reservations, settlements, expiries, ownership changes and reloads they
    equal views read afresh from the rows."""
    ledger = BudgetLedger({}, {}, partitions=4, partition_of=owner_partition)
    budgets = [budget("tenant:a", limit=5), budget("tenant:b", "1h", limit=5),
               budget("global", "month", limit=20), budget("global", "24h", limit=20)]
    now, offset, request = T0.timestamp(), 0, 0
    for op in ops:
        match op:
            case ("reserve", tenant, cents, ttl):
                request += 1
                mine = [b for b in budgets if b.tenant in (None, tenant)]
                ledger.reserve(tenant, f"r{request}", mine, cents * NANO // 100, now, ttl + 0.5)
            case ("settle", tenant, cents, back):
                offset += 1
                mine = [b for b in budgets if b.tenant in (None, tenant)]
                ledger.settle(tenant, f"r{request - back}", cents * NANO // 100, now,
                              partition=back, offset=offset, budgets=mine)
            case ("expire", seconds):
                ledger.expire(now + seconds)
            case ("own", owned):
                ledger.owned = None if owned is None else frozenset(owned)
            case ("reload",):
                ledger.take_dirty()
                ledger.reload()
            case ("tick", seconds):
                now += seconds
        for tenant in "abcde":
            for b in budgets:
                assert ledger.view(b, tenant, now) == ledger._read_view(b, now), op
