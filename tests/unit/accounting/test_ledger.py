"""The ledger and admission: hard budgets are never exceeded, reservations never leak."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from prsm_events.accounting.budgets import Budget, BudgetBook
from prsm_events.accounting.catalog import Catalog
from prsm_events.accounting.escrow import Escrow, Share
from prsm_events.accounting.ledger import BudgetLedger, Reservation, Settlement, to_nano
from prsm_events.accounting.ledger_view import NANO
from prsm_events.accounting.scopes import scopes_of
from prsm_events.decisions.admission import AdmissionDesk
from prsm_events.decisions.policy import PolicyConfig
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


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b"]),
                          st.integers(min_value=-2 * 86400, max_value=2 * 86400),
                          st.integers(min_value=0, max_value=10**9)),
                min_size=1, max_size=12),
       st.integers(min_value=0, max_value=2))
def test_a_message_folded_at_once_equals_its_events_one_by_one(
        events: list[tuple[str, int, int]], stored_days: int) -> None:
    """An envelope's events, folded together (each row read and stored once, a calendar
    row adding its latest period's sum), leave every row as folding them one at a time
    does, in their order: events of a later period start a row again, of an earlier one
    count nothing, rolling buckets are pruned at each event's time; whatever the row held."""
    budgets = [budget("tenant:a", "day", 10), budget("tenant:b", "month", 10),
               budget("global", "day", 100), budget("tenant:a", "1h", 10)]
    start = T0.timestamp() - stored_days * 86400

    def folded(at_once: bool) -> list[Any]:
        ledger = BudgetLedger({}, {}, partitions=2, partition_of=owner_partition)
        ledger.settle("a", None, 5, start, 0, 1, budgets)  # what the rows held before
        ledger.settle("b", None, 7, start, 1, 1, budgets)
        message = [Settlement(t, None, cost, T0.timestamp() + shift,
                              [b for b in budgets if b.tenant in (None, t)])
                   for t, shift, cost in events]
        if at_once:
            assert ledger.settle_message(0, 5, message) == len(message)
        else:  # the ledger before: event by event, each row marked once for the message
            marks: dict[str, int] = {}
            for usage in message:
                for b in usage.budgets:
                    row = ledger.row_key(b, usage.tenant)
                    state = ledger._state(row)
                    if marks.setdefault(row, state.applied.get(0, -1)) >= 5:
                        continue
                    state.applied[0] = 5
                    ledger._add_to_buckets(state, b.period, [usage]) if b.period == "1h" \
                        else ledger._add_to_period(state, b, [usage])
                    ledger._store(row, state, usage.tenant)
        return sorted((k, s.period_start, s.spent, sorted(s.buckets.items()),
                       sorted(s.applied.items())) for k, s in ledger._rows.items())

    assert folded(True) == folded(False)


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


def test_a_global_budget_is_admitted_on_each_partition_against_its_allotment():
    ledger = BudgetLedger({}, {}, partitions=4, partition_of=owner_partition)
    now = datetime(2026, 12, 3, 12, tzinfo=UTC).timestamp()
    tenants = {owner_partition(f"t{i}", 4): f"t{i}" for i in range(40)}  # one per partition
    assert ledger.admission_view(GLOBAL, "t0", now).limit == NANO  # no escrow: the limit
    ledger.escrow = Escrow(4)
    ledger.owned = frozenset({0, 1})
    view = ledger.admission_view(GLOBAL, tenants[0], now)
    assert (view.limit, view.allotment, view.room) == (NANO // 4, NANO // 4, NANO)
    ledger.reserve(tenants[0], "r1", [GLOBAL], NANO // 5, now, 60)
    ledger.reserve(tenants[1], "r2", [GLOBAL], NANO // 10, now, 60)
    view = ledger.admission_view(GLOBAL, tenants[0], now)
    assert (view.reserved, view.remaining, view.room) == (
        NANO // 5, NANO // 4 - NANO // 5, NANO - 3 * NANO // 10)
    assert view.fits(NANO // 20) and not view.fits(NANO // 20 + 1)
    assert view.figures()["reserved_usd"] == 0.3  # a decision reports the whole budget
    # what another worker's partitions published counts in the whole, not in the allotment
    ledger.escrow.learn_share(GLOBAL.key, 2, Share(spent=NANO // 10, held=NANO // 10))
    ledger.forget_views()
    assert ledger.view(GLOBAL, tenants[0], now).remaining == NANO // 2
    assert ledger.admission_view(GLOBAL, tenants[0], now).remaining == NANO // 20
    assert ledger.partition_taken(GLOBAL, 0, now) == (0, NANO // 5)


def test_a_global_budget_read_by_one_of_several_workers_says_its_share():
    """The part of a global budget's spend that the reading worker's own partitions hold
    (its forecast of its share, scaled, is one of the whole budget): the part of the
    partitions it owns while they hold nothing; 1 for a worker that owns every one."""
    ledger = BudgetLedger({}, {}, partitions=4, partition_of=owner_partition)
    now = datetime(2026, 12, 3, 12, tzinfo=UTC).timestamp()
    tenants = {owner_partition(f"t{i}", 4): f"t{i}" for i in range(40)}
    ledger.escrow = Escrow(4)
    ledger.owned = frozenset(range(4))
    ledger.settle(tenants[0], None, NANO // 10, now, 0, 1, [GLOBAL])
    assert ledger.view(GLOBAL, "", now).share == 1.0
    ledger.owned = frozenset({0, 1})
    ledger.forget_views()
    ledger.escrow.learn_share(GLOBAL.key, 2, Share(spent=3 * NANO // 10, held=0))
    view = ledger.view(GLOBAL, "", now)
    assert (view.spent, view.share) == (4 * NANO // 10, 0.25)
    assert ledger.figures([GLOBAL], now).share.tolist() == [0.25]
    ledger.owned = frozenset({1})  # owns one partition, which spent nothing yet
    ledger.forget_views()
    assert ledger.view(GLOBAL, "", now).share == 0.25
    tenant = Budget(scope=f"tenant:{tenants[1]}", period="day", limit_usd=1.0)
    assert ledger.figures([tenant, GLOBAL], now).shares().tolist() == [1.0, 0.25]


@settings(max_examples=60, deadline=None)
@given(owners=st.lists(st.integers(0, 2), min_size=6, max_size=6),
       amounts=st.lists(st.integers(NANO // 50, NANO // 5), min_size=60, max_size=80),
       tenants=st.lists(st.integers(0, 29), min_size=80, max_size=80),
       handover=st.integers(0, 79))
def test_workers_owning_disjoint_partitions_never_admit_more_than_a_global_limit(
        owners, amounts, tenants, handover):
    """Six partitions split among up to three workers, each with its own ledger: whatever
    each admits greedily, together they stay within the limit, also when at ``handover``
    every partition moves to one worker (which reads the rows from the shared tables):
    a partition's row never holds more than its allotment, wherever it is read."""
    now = datetime(2026, 12, 3, 12, tzinfo=UTC).timestamp()
    states: dict[str, Any] = {}
    reservations: dict[str, Any] = {}
    ledgers: dict[int, BudgetLedger] = {}
    for w in sorted(set(owners)):
        ledgers[w] = BudgetLedger(states, reservations, partitions=6,
                                  partition_of=owner_partition)
        ledgers[w].escrow = Escrow(6)
        ledgers[w].owned = frozenset(p for p, o in enumerate(owners) if o == w)
    admitted = 0
    for i, amount in enumerate(amounts):
        if i == handover:
            for ledger in ledgers.values():
                ledger.take_dirty()
            one = BudgetLedger(states, reservations, partitions=6, partition_of=owner_partition)
            one.escrow, one.owned = Escrow(6), frozenset(range(6))
            ledgers = dict.fromkeys(range(3), one)
        tenant = f"t{tenants[i]}"
        ledger = ledgers[owners[owner_partition(tenant, 6)]]
        if ledger.admission_view(GLOBAL, tenant, now).fits(amount):
            ledger.reserve(tenant, f"r{i}", [GLOBAL], amount, now, 60)
            admitted += amount
    assert admitted <= NANO


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
    ledger.escrow = Escrow(4)
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
                if b.tenant is None:
                    row = ledger.row_key(b, tenant)
                    fresh = ledger._read_admission_view(b, row, ledger._read_view(b, now),
                                                        now)
                    assert ledger.admission_view(b, tenant, now) == fresh, op


def test_a_request_short_of_its_partitions_allotment_waits_while_the_budget_has_room():
    """One worker owning every partition, a global $0.02 budget: a partition's allotment
    ($0.005) takes no $0.0075 request, which is deferred (``awaiting_allotment``) with the
    retry of the escrow round; once the round has moved the others' allotment (and the
    move is durable) the same request is allowed. When the budget itself has no room left,
    the answer is a refusal, not a deferral."""
    book = BudgetBook([Budget(scope="global", period="day", limit_usd=0.02)])
    ledger = BudgetLedger({}, {}, partitions=4, partition_of=owner_partition)
    ledger.escrow, ledger.owned = Escrow(4), frozenset(range(4))
    desk = AdmissionDesk(book, ledger, CATALOG, config=PolicyConfig(allotment_retry_s=0.2))
    now = datetime(2026, 12, 3, 12, tzinfo=UTC)
    ask = RequestEvent(request_id="r1", ts=now, tenant="acme", service="chat",
                       model="gpt-4o", est_input_tokens=1000, est_output_tokens=500)
    first = desk.admit(ask, now)
    assert (first.action.value, first.reason.code, first.retry_after_s) == (
        "defer", "awaiting_allotment", 0.2)
    assert first.budget is not None and first.budget["remaining_usd"] == 0.02  # the whole
    assert not ledger.reservations  # nothing held
    key, p = "global|day", owner_partition("acme", 4)
    taken = {q: ledger.partition_taken(book.get(key), q, now.timestamp()) for q in range(4)}
    moves = ledger.escrow.step(key, to_nano(0.02), taken, now.timestamp(), grantor=True)
    assert ledger.escrow.allotment(key, to_nano(0.02), p) == to_nano(0.005)  # not durable
    assert desk.admit(ask, now).reason.code == "awaiting_allotment"
    ledger.escrow.commit(key, moves)
    ledger.forget_views()
    assert desk.admit(ask, now).action.value == "allow"
    for i in range(2, 9):  # the rest of the budget, then a refusal
        last = desk.admit(ask.model_copy(update={"request_id": f"r{i}"}), now)
        if last.reason.code == "awaiting_allotment":
            taken = {q: ledger.partition_taken(book.get(key), q, now.timestamp())
                     for q in range(4)}
            ledger.escrow.commit(key, ledger.escrow.step(key, to_nano(0.02), taken,
                                                         now.timestamp() + i, True))
            ledger.forget_views()
        elif last.action.value != "allow":
            break
    # gpt-4o no longer fits the whole budget: a cheaper model, not a wait
    assert last.reason.code == "routed_cheaper_model"
    assert ledger.view(book.get(key), "acme", now.timestamp()).remaining < to_nano(0.0075)
    assert sum(r[0] for r in ledger.reservations.values()) <= to_nano(0.02)
