"""Escrow of a global budget: never more held than the limit, whatever the interleaving of
steps, late or lost records, crashes and rebalances; and unused allotment reaches the
partitions that ask for it."""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from prsm_events.accounting.escrow import Escrow, Grants, Moves, Share, base_allotment

KEY = "global|day"
P = 6


class Pending(Moves):
    """A step's moves on their way to the tables: what has not landed yet, and what has."""

    def __init__(self, moves: Moves) -> None:
        super().__init__(dict(moves.shares), moves.grants)
        self.landed = Moves(dict(moves.shares), moves.grants)


@dataclass
class Worker:
    escrow: Escrow
    owned: set[int]
    pending: list[Pending] = field(default_factory=list)
    cursor: int = 0  # how much of the published log it has read


@dataclass
class Cluster:
    """Brokers and workers as the escrow sees them: each partition's share durable in its
    ledger table, the grants in partition 0's, a published log read late by each worker."""

    limit: int
    workers: list[Worker]
    table: dict[int, Share] = field(default_factory=dict)
    grants: Grants = field(default_factory=Grants)
    log: list[tuple[int | None, Share | Grants]] = field(default_factory=list)
    taken: dict[int, int] = field(default_factory=lambda: dict.fromkeys(range(P), 0))
    clock: float = 0.0

    def step(self, w: Worker, after_s: float = 0.25) -> Moves:
        """A round of ``w``, ``after_s`` after the last round of any worker."""
        self.clock += after_s
        return w.escrow.step(KEY, self.limit, {q: (self.taken[q], 0) for q in w.owned},
                             self.clock, grantor=0 in w.owned)

    def owner(self, p: int) -> Worker:
        return next(w for w in self.workers if p in w.owned)

    def true_allotment(self, p: int) -> int:
        """The allotment by the durable records: what the invariant is about."""
        received = sum(s.given.get(p, 0) for q, s in self.table.items() if q != p)
        share = self.table.get(p, Share())
        return (base_allotment(self.limit, p, P) + self.grants.granted.get(p, 0) + received
                - share.out)

    def join(self, w: Worker, partitions: set[int]) -> None:
        """``w`` takes ``partitions``: it reads their shares (and the grants with partition
        0) from the tables, as Faust restores them."""
        for p in partitions:
            if p in self.table:
                w.escrow.learn_share(KEY, p, self.table[p])
        if 0 in partitions:
            w.escrow.learn_grants(KEY, self.grants)
        w.owned |= partitions

    def durable(self, w: Worker, which: int = -1) -> None:
        """Records of the oldest pending moves of ``w`` reach the tables (only rows of
        partitions it still owns: Faust would not write a lost partition's table); the
        records of one step go to different partitions, so any of them may land before a
        crash (``which``: a bit per record, -1 all). Once all have landed they are
        committed and published."""
        moves = w.pending[0]
        records: list[int | None] = [*moves.shares, *([None] if moves.grants else [])]
        for i, p in enumerate(records):
            if which != -1 and not (which >> i) & 1:
                continue
            if p is None:
                if 0 in w.owned and moves.grants is not None:
                    self.grants = self.grants.merged(moves.grants)
                moves.grants = None
            else:
                share = moves.shares.pop(p)
                if p in w.owned:
                    self.table[p] = self.table.get(p, Share()).merged(share)
        if moves:
            return
        done = w.pending.pop(0)
        w.escrow.commit(KEY, done.landed)
        for p, share in done.landed.shares.items():
            self.log.append((p, share))
        if done.landed.grants is not None:
            self.log.append((None, done.landed.grants))

    def read(self, w: Worker, n: int) -> None:
        for p, record in self.log[w.cursor:w.cursor + n]:
            if p is None:
                assert isinstance(record, Grants)
                w.escrow.learn_grants(KEY, record)
            else:
                assert isinstance(record, Share)
                w.escrow.learn_share(KEY, p, record)
        w.cursor = min(len(self.log), w.cursor + n)

    def check(self) -> None:
        assert sum(self.true_allotment(p) for p in range(P)) <= self.limit
        for p in range(P):
            assert self.taken[p] <= self.true_allotment(p), p
        assert sum(self.taken.values()) <= self.limit


def spread(count: int, limit: int = 1000) -> Cluster:
    """``count`` workers owning the partitions in turn."""
    workers = [Worker(Escrow(P), set()) for _ in range(count)]
    c = Cluster(limit, workers)
    for p in range(P):
        c.join(workers[p % count], {p})
    return c


actions = st.lists(st.tuples(
    st.sampled_from(["admit", "ask", "step", "durable", "read", "crash", "move", "free"]),
    st.integers(0, 2), st.integers(0, P - 1), st.integers(1, 300)), max_size=80)


@settings(max_examples=400, deadline=None)
@given(actions, st.integers(1, 3))
def test_never_more_held_than_the_limit(steps, count):
    c = spread(count)
    limit, workers = c.limit, c.workers
    for kind, wi, p, amount in steps:
        w = workers[wi % count]
        if kind in ("admit", "ask"):
            w = c.owner(p)
        if kind == "admit":
            if c.taken[p] + amount <= w.escrow.allotment(KEY, limit, p):
                c.taken[p] += amount
            else:
                w.escrow.ask(KEY, p, amount)
        elif kind == "ask":
            w.escrow.ask(KEY, p, amount)
        elif kind == "step":
            moves = c.step(w)
            if moves:
                w.pending.append(Pending(moves))
        elif kind == "durable" and w.pending:
            c.durable(w, amount)
        elif kind == "read":
            c.read(w, amount % 5 + 1)
        elif kind == "crash":  # its pending moves are lost; it knows only its tables again
            fresh = Worker(Escrow(P), set())
            workers[wi % count] = fresh
            c.workers = workers
            c.join(fresh, w.owned)
        elif kind == "move" and count > 1 and p in w.owned:  # a rebalance moves p
            other = workers[(wi + 1) % count]
            w.owned.discard(p)
            c.join(other, {p})
        elif kind == "free":  # spend leaves a rolling window / a reservation expires
            c.taken[p] = max(0, c.taken[p] - amount)
        c.check()


def settle(c: Cluster, rounds: int = 1, after_s: float = 0.25) -> None:
    """A round of steps, durable writes and reads on every worker (time passing)."""
    for _ in range(rounds):
        for w in c.workers:
            moves = c.step(w, after_s)
            if moves:
                w.pending.append(Pending(moves))
            while w.pending:
                c.durable(w)
        for w in c.workers:
            c.read(w, len(c.log))


ticks = st.lists(st.tuples(
    st.lists(st.tuples(st.sampled_from(["admit", "admit", "free"]), st.integers(0, P - 1),
                       st.integers(1, 400)), max_size=8),
    st.sampled_from([0.001, 0.05, 0.25, 0.6, 2.0])), max_size=40)


@settings(max_examples=300, deadline=None)
@given(ticks, st.integers(1, 3))
def test_never_more_held_than_the_limit_round_after_round(ticks, count):
    """A steady group: between whole rounds (every worker steps, its records land and are
    read), requests on any partition are admitted or wait, and holds are freed; rounds come
    close together or seconds apart (demand fades by time). No partition ever holds more
    than its allotment."""
    c = spread(count)
    for requests, after_s in ticks:
        for kind, p, amount in requests:
            w = c.owner(p)
            if kind == "free":
                c.taken[p] = max(0, c.taken[p] - amount)
            elif c.taken[p] + amount <= w.escrow.allotment(KEY, c.limit, p):
                c.taken[p] += amount
            else:
                w.escrow.ask(KEY, p, amount)
            c.check()
        settle(c, after_s=after_s)
        c.check()


@given(st.integers(1, 3), st.integers(0, P - 1), st.integers(5, 80))
@settings(max_examples=60, deadline=None)
def test_unused_allotment_reaches_the_partition_that_asks(count, busy, size):
    """All demand on one partition, requests of ``size``: it ends up admitting all but less
    than one request of the limit, with 1, 2 or 3 workers."""
    c = spread(count)
    limit = c.limit
    owner = c.owner(busy)
    for _ in range(4 * limit // size + 60):
        if c.taken[busy] + size <= owner.escrow.allotment(KEY, limit, busy):
            c.taken[busy] += size
        else:
            owner.escrow.ask(KEY, busy, size)
            settle(c)
        c.check()
        if limit - c.taken[busy] < size:
            break
    assert c.taken[busy] > limit - size


@given(st.integers(1, 3), st.integers(3, 40))
@settings(max_examples=40, deadline=None)
def test_no_fragments_stranded_when_every_partition_asks(count, size):
    """Every partition asks in turn: what is left at the end is less than one request."""
    c = spread(count)
    limit = c.limit
    for _ in range(400):
        progressed = False
        for p in range(P):
            w = c.owner(p)
            if c.taken[p] + size <= w.escrow.allotment(KEY, limit, p):
                c.taken[p] += size
                progressed = True
            else:
                w.escrow.ask(KEY, p, size)
        c.check()
        if not progressed:
            settle(c)
        if limit - sum(c.taken.values()) < size:
            break
    assert sum(c.taken.values()) > limit - size


def test_a_share_read_late_or_twice_never_goes_back():
    old = Share(returned=5, given={1: 3}, spent=9, held=1, want=0)
    new = Share(returned=7, given={1: 3, 2: 1}, spent=4, held=0, want=2)
    assert old.merged(new) == new
    assert new.merged(old) == new
    assert Share.from_list(new.to_list()) == new
    assert Grants.from_list(Grants({0: 4, 3: 1}).to_list()) == Grants({0: 4, 3: 1})
    # counters only grow: past 64 bits they still go through JSON
    huge = Share(returned=10 ** 30, given={1: 2 ** 70})
    assert Share.from_list(orjson.loads(orjson.dumps(huge.to_list()))) == huge


def two_workers() -> tuple[Cluster, Worker, Worker]:
    a, b = Worker(Escrow(P), set()), Worker(Escrow(P), set())
    c = Cluster(1000, [a, b])
    c.join(a, {0, 1, 2})
    c.join(b, {3, 4, 5})
    return c, a, b


def step(c: Cluster, w: Worker) -> Pending:
    pending = Pending(c.step(w))
    w.pending.append(pending)
    return pending


def test_a_gift_counts_only_once_durable():
    """Partition 0 is short and 1 has surplus (one worker): 1's gift to 0 is not usable
    until 1's share has landed, so a crash in between leaves nothing overspent."""
    c, a, _ = two_workers()
    a.escrow.ask(KEY, 0, 300)
    assert step(c, a).shares[1].given == {0: 300 - 166}
    assert a.escrow.allotment(KEY, c.limit, 0) == 166  # not yet
    assert a.escrow.allotment(KEY, c.limit, 1) == 167 - 134  # already
    c.durable(a)
    assert a.escrow.allotment(KEY, c.limit, 0) == 300
    c.check()


def test_the_grantor_grants_only_returns_that_landed():
    """Partition 3 (worker b) wants; the grantor's own idle partitions return their
    allotment in the same step, but it cannot grant it before those returns have landed:
    were the grant to land and the returns be lost in a crash, the limit would be passed."""
    c, a, b = two_workers()
    b.escrow.ask(KEY, 3, 700)  # more than b's partitions hold
    step(c, b)
    c.durable(b)
    c.read(a, len(c.log))
    first = step(c, a)
    assert first.grants is None  # the returns are not durable yet
    c.durable(a)
    second = step(c, a)
    assert second.grants is not None and second.grants.granted[3] > 0
    c.durable(a)
    c.read(b, len(c.log))
    assert b.escrow.allotment(KEY, c.limit, 3) >= 700
    c.check()


def test_records_that_are_not_shares_or_grants_are_refused():
    import pytest

    for raw in ([1, [], 0, 0, 0], [-1, [], 0, 0, 0, 0], [1, [[0, -5]], 0, 0, 0, 0],
                [1.5, [], 0, 0, 0, 0], [1, [[0]], 0, 0, 0, 0], [1, {}, 0, 0, 0, 0], "x",
                [True, [], 0, 0, 0, 0], ["-1", [], 0, 0, 0, 0], ["1e9", [], 0, 0, 0, 0],
                ["\u0661", [], 0, 0, 0, 0], [1, [["0", "1"]], 0, 0, 0, 0]):
        with pytest.raises(ValueError):
            Share.from_list(raw)
    for raw in ([[0, -1]], [[0, 1, 2]], {"0": 1}, [["0", 1]]):
        with pytest.raises(ValueError):
            Grants.from_list(raw)


def test_rounds_close_together_do_not_take_back_what_was_just_moved():
    """Demand fades with time, not with rounds: rounds a millisecond apart (a round runs at
    once when a request waits) keep what a busy partition was just given."""
    e = Escrow(P)
    taken = dict.fromkeys(range(P), (0, 0))
    e.ask(KEY, 0, 500)
    e.commit(KEY, e.step(KEY, 1000, taken, now=10.0, grantor=True))
    given = e.allotment(KEY, 1000, 0)
    assert given >= 500
    for i in range(1, 20):
        e.commit(KEY, e.step(KEY, 1000, taken, now=10.0 + i / 1000, grantor=True))
        assert e.allotment(KEY, 1000, 0) >= given
    for i in range(1, 20):  # seconds later, unasked: it goes back to the others
        e.commit(KEY, e.step(KEY, 1000, taken, now=10.0 + i, grantor=True))
    assert e.allotment(KEY, 1000, 0) < 500


def test_a_partition_holding_more_than_its_even_part_keeps_what_it_holds():
    """Partition 0 was given more than its even part and holds some of it; once its demand
    has faded it returns only what it does not hold (a budget with room to spare keeps a
    partition's even part where it is; what it holds above that is not its to return)."""
    e = Escrow(P)
    taken = dict.fromkeys(range(P), (0, 0))
    e.ask(KEY, 0, 500)
    e.commit(KEY, e.step(KEY, 1000, taken, now=10.0, grantor=True))
    assert e.allotment(KEY, 1000, 0) >= 500
    taken[0] = (0, 400)  # it admitted 400, more than its even part (166)
    for i in range(1, 20):  # seconds later, unasked
        e.commit(KEY, e.step(KEY, 1000, taken, now=10.0 + i, grantor=True))
        assert e.allotment(KEY, 1000, 0) >= 400, i
    assert e.allotment(KEY, 1000, 0) < 500  # what it does not hold goes back
