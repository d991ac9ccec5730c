"""Escrow of a global budget across partitions: each partition admits against its own
allotment, and the allotments never add up to more than the limit, whatever the number of
workers and however late they learn of each other's moves.

The allotment of partition ``p`` (integer nano-USD) is

    base_p + granted_p + received_p - returned_p - given_p

- ``base_p``: the limit split evenly (the bases add up to the limit exactly);
- ``returned_p`` (to the pool) and ``given_p[q]`` (to partition ``q``): monotone counters in
  ``p``'s own ``Share``, written only by the owner of ``p`` (kept in its ledger table, so
  whoever owns ``p`` next knows them exactly);
- ``granted_p``: a monotone counter in the grants, written only by the grantor (the owner of
  partition 0, from the pool ``limit - sum(base + granted - returned)``);
- ``received_p``: the sum of every other share's ``given[p]``.

Every decrease of ``p``'s allotment is in ``p``'s own share; every increase is in a record
others write, which may be learnt late. Learning late only makes an allotment, or the pool,
smaller. A worker applies a decrease at once and uses an increase only once its record is
durable (``commit``). So the allotments add up to at most the limit, and a partition never
holds more than its allotment: the budget is never overspent.

>>> from prsm_events.accounting.ledger_view import NANO
>>> e = Escrow(partitions=4)
>>> [e.allotment("global|day", NANO, p) for p in range(4)]
[250000000, 250000000, 250000000, 250000000]
>>> # partition 1 is idle, partition 2 asked for more than it has (one worker owns all)
>>> e.ask("global|day", 2, 400_000_000)  # a request waits
>>> moves = e.step("global|day", NANO, {0: (0, 0), 1: (0, 0), 2: (0, 0), 3: (0, 0)}, now=0.0)
>>> e.commit("global|day", moves)
>>> [e.allotment("global|day", NANO, p) for p in range(4)]  # 0 gave what 2 was short of
[100000000, 250000000, 400000000, 250000000]
>>> e.pool("global|day")  # nobody wants more: the others keep their even parts
0
>>> sum(e.allotment("global|day", NANO, p) for p in range(4)) <= NANO
True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

__all__ = ["Escrow", "Grants", "Moves", "Share", "base_allotment"]

DEMAND_HALF_LIFE_S = 0.25
"""A partition keeps free what it was asked for lately: the sum of its demand, each amount
counted less by half every this many seconds (about its last half second's demand; by time,
not by round, since a round runs at once when a request waits). It returns what is more
than a quarter above that."""


CRUMBS = 10_000
"""Demand below this part of the limit counts as none: a partition whose demand has faded
returns everything, or the budget's last request could wait for crumbs spread over many
partitions."""


def base_allotment(limit: int, partition: int, partitions: int) -> int:
    """Partition ``partition``'s even part of ``limit``; the parts add up to ``limit``.

    >>> [base_allotment(10, p, 3) for p in range(3)]
    [3, 3, 4]
    """
    return limit * (partition + 1) // partitions - limit * partition // partitions


class Share(msgspec.Struct, frozen=True):
    """One partition's record, written by its owner only."""

    returned: int = 0
    """Nano-USD returned to the pool, ever (monotone)."""
    given: dict[int, int] = msgspec.field(default_factory=dict)
    """Partition -> nano-USD given to it, ever (monotone)."""
    spent: int = 0
    held: int = 0
    """What the partition had spent and held when written (to tell how much is left)."""
    want: int = 0
    """How much more it would use now (the grantor's cue)."""
    seen_granted: int = 0
    """The grants to it its owner knew when writing (a want is served once)."""

    def to_list(self) -> list[Any]:
        """Counters as decimal strings: they only grow, and JSON integers stop at 64 bits."""
        return [str(self.returned), [[p, str(n)] for p, n in sorted(self.given.items())],
                str(self.spent), str(self.held), str(self.want), str(self.seen_granted)]

    @classmethod
    def from_list(cls, raw: list[Any]) -> Share:
        """A share as ``to_list`` wrote it; ValueError for anything else (a count below
        zero, a partition that is not one)."""
        if not isinstance(raw, list) or len(raw) != 6:
            raise ValueError(f"a share is a list of 6 fields, not {raw!r:.80}")
        return cls(_count(raw[0]), _counts(raw[1]), _count(raw[2]), _count(raw[3]),
                   _count(raw[4]), _count(raw[5]))

    def merged(self, other: Share) -> Share:
        """The later of two versions of a share (a record may come late or twice): the
        counters never go down; the figures are those of the newer version."""
        given = dict(self.given)
        for p, n in other.given.items():
            given[p] = max(given.get(p, 0), n)
        newer = other.returned >= self.returned and all(
            other.given.get(p, 0) >= n for p, n in self.given.items())
        return msgspec.structs.replace(other if newer else self,
                                       returned=max(self.returned, other.returned),
                                       given=given)

    @property
    def out(self) -> int:
        return self.returned + sum(self.given.values())


class Grants(msgspec.Struct, frozen=True):
    """The grantor's record: partition -> nano-USD granted from the pool, ever (monotone)."""

    granted: dict[int, int] = msgspec.field(default_factory=dict)

    def to_list(self) -> list[Any]:
        return [[p, str(n)] for p, n in sorted(self.granted.items())]

    @classmethod
    def from_list(cls, raw: list[Any]) -> Grants:
        """Grants as ``to_list`` wrote them; ValueError for anything else."""
        return cls(_counts(raw))

    def merged(self, other: Grants) -> Grants:
        granted = dict(self.granted)
        for p, n in other.granted.items():
            granted[p] = max(granted.get(p, 0), n)
        return Grants(granted)


@dataclass
class Moves:
    """What a step changed: shares of owned partitions and the grants, to be made durable
    (written to the ledger table) and then ``commit``-ed and published."""

    shares: dict[int, Share] = field(default_factory=dict)
    grants: Grants | None = None

    def __bool__(self) -> bool:
        return bool(self.shares) or self.grants is not None


@dataclass
class _Budget:
    durable: dict[int, Share] = field(default_factory=dict)
    """Every partition's share as known durable (own: from the table; others: published)."""
    pending: dict[int, Share] = field(default_factory=dict)
    """Own shares changed by a step, not yet durable: their decreases count already."""
    grants: Grants = field(default_factory=Grants)
    """Grants known durable."""
    granting: Grants | None = None
    """The grantor's grants not yet durable (counted against the pool already)."""
    short: dict[int, int] = field(default_factory=dict)
    """Per owned partition: requests waiting for allotment since the last step (``ask``)."""
    taken: dict[int, int] = field(default_factory=dict)
    """Per owned partition: spent + held at the last step (what it took since is demand)."""
    demand: dict[int, float] = field(default_factory=dict)
    """Per owned partition: what it was asked for lately (``DEMAND_HALF_LIFE_S``)."""
    stepped: float | None = None
    """When the last step ran (demand fades with the time between steps)."""
    starved: dict[int, tuple[int, int]] = field(default_factory=dict)
    """Per owned partition short of allotment: (steps it got nothing, its allotment)."""


class Escrow:
    """The allotments of every global budget, as this worker knows them (module doc)."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self._budgets: dict[str, _Budget] = {}

    def _of(self, key: str) -> _Budget:
        found = self._budgets.get(key)
        if found is None:
            found = self._budgets[key] = _Budget()
        return found

    # --- reading --------------------------------------------------------------------------
    def _share(self, b: _Budget, p: int) -> Share:
        return b.pending.get(p) or b.durable.get(p) or _EMPTY

    def allotment(self, key: str, limit: int, partition: int) -> int:
        """What ``partition`` may hold (spent + reserved) of the budget ``key``."""
        b = self._budgets.get(key)
        base = base_allotment(limit, partition, self.partitions)
        if b is None:
            return base
        received = sum(s.given.get(partition, 0) for p, s in b.durable.items()
                       if p != partition)
        return (base + b.grants.granted.get(partition, 0) + received
                - self._share(b, partition).out)

    def pool(self, key: str) -> int:
        """What the grantor may still grant: the limit less every allotment as known (a
        return learnt late makes it smaller, never larger)."""
        b = self._budgets.get(key)
        return 0 if b is None else _pool(b)

    def shares(self, key: str, durable: bool = False) -> dict[int, Share]:
        """Every partition's share as known (with this worker's moves not yet durable,
        unless ``durable``: what may be published)."""
        b = self._budgets.get(key)
        if b is None:
            return {}
        return dict(b.durable) if durable else {**b.durable, **b.pending}

    def grants(self, key: str, durable: bool = False) -> Grants:
        b = self._budgets.get(key)
        if b is None:
            return Grants()
        return b.grants if durable else (b.granting or b.grants)

    # --- learning -------------------------------------------------------------------------
    def learn_share(self, key: str, partition: int, share: Share) -> None:
        """A partition's share, durable (from the table or its published record)."""
        b = self._of(key)
        known = b.durable.get(partition)
        b.durable[partition] = share if known is None else known.merged(share)
        pending = b.pending.get(partition)
        if pending is not None and pending.returned <= b.durable[partition].returned and all(
                n <= b.durable[partition].given.get(p, 0) for p, n in pending.given.items()):
            del b.pending[partition]

    def learn_grants(self, key: str, grants: Grants) -> None:
        """The grants, durable (from the table or the grantor's published record)."""
        b = self._of(key)
        b.grants = b.grants.merged(grants)
        if b.granting is not None and all(
                n <= b.grants.granted.get(p, 0) for p, n in b.granting.granted.items()):
            b.granting = None

    def knows(self, key: str) -> bool:
        return key in self._budgets

    def drop_pending(self, keep: frozenset[int]) -> None:
        """Forget the moves not yet durable of partitions not in ``keep`` (now owned by
        others, whose tables count), and the grants not yet durable unless partition 0 is
        kept."""
        for b in self._budgets.values():
            for p in [p for p in b.pending if p not in keep]:
                del b.pending[p]
            if 0 not in keep:
                b.granting = None

    # --- demand ---------------------------------------------------------------------------
    def ask(self, key: str, partition: int, amount: int) -> None:
        """A request of ``amount`` on ``partition`` waits for allotment. (What a partition
        admits is seen at the next step, in its spent and held.)"""
        b = self._of(key)
        b.short[partition] = b.short.get(partition, 0) + amount

    # --- moving ---------------------------------------------------------------------------
    def step(self, key: str, limit: int, owned: Mapping[int, tuple[int, int]], now: float,
             grantor: bool = False) -> Moves:
        """One round for the budget ``key``. The owned partitions (partition -> (spent,
        held) now) keep free what they were asked for lately (``DEMAND_HALF_LIFE_S``), give
        their surplus to owned partitions short of it, return the rest to the pool (their
        even part of the limit only when others want more than the pool holds) and say what
        they still want. A partition that had to turn requests away returns the
        fragment it holds too and wants the whole (no fragments stranded across partitions).
        The grantor (owner of partition 0) grants from the pool, smallest whole wants
        first. Decreases count at once; increases once ``commit``-ed."""
        b = self._of(key)
        moves = Moves()
        free: dict[int, int] = {}
        need: dict[int, int] = {}
        fade = 0.5 ** (max(0.0, now - b.stepped) / DEMAND_HALF_LIFE_S) if b.stepped else 0.0
        b.stepped = now
        for p, (spent, held) in owned.items():
            free[p] = self.allotment(key, limit, p) - spent - held
            taken = spent + held
            asked = max(0, taken - b.taken.get(p, taken)) + b.short.get(p, 0)
            b.taken[p] = taken
            demand = b.demand[p] = b.demand.get(p, 0.0) * fade + asked
            if demand < limit / CRUMBS:  # faded: what it holds may be the last request's
                demand = b.demand[p] = 0.0
            need[p] = max(int(demand), b.short.get(p, 0))
        # what is above a quarter more than its demand: no returns of crumbs as demand fades
        surplus = {p: free[p] - need[p] for p in owned if free[p] - need[p] > need[p] // 4}
        short = {p: need[p] - max(free[p], 0) for p in owned if need[p] > free[p]}
        given: dict[int, dict[int, int]] = {}
        for q in sorted(short, key=short.__getitem__):
            for p in sorted(surplus, key=surplus.__getitem__, reverse=True):
                x = min(surplus[p], short[q])
                if x > 0:
                    given.setdefault(p, {})[q] = x
                    surplus[p] -= x
                    short[q] -= x
        # returns: what is above a partition's even part of the limit goes back as soon as
        # it is not needed; its even part only when others want more than the pool holds
        # (a budget with room to spare keeps it where a burst can use it at once)
        shares = {**b.durable, **b.pending}
        wanted = sum(s.want for q, s in shares.items() if q not in owned) + sum(short.values())
        eager = wanted > _pool(b)
        for p, (spent, held) in owned.items():
            old = self._share(b, p)
            gives = dict(old.given)
            for q, x in given.get(p, {}).items():
                gives[q] = gives.get(q, 0) + x
            back, want = max(0, surplus.get(p, 0)), max(0, short.get(p, 0))
            if back and not eager:  # it keeps free its even part, less what it holds
                back = max(0, back - max(0, base_allotment(limit, p, self.partitions)
                                         - spent - held - need[p]))
            if want and b.short.get(p, 0) and free[p] > 0 and self._starving(b, p, free[p]):
                back, want = back + free[p], want + free[p]
            granted = b.grants.granted.get(p, 0)
            new = Share(old.returned + back, gives, spent, held, want, granted)
            if new != old:
                b.pending[p] = new
                moves.shares[p] = new
        b.short.clear()
        for p in [p for p in b.demand if p not in owned]:
            del b.demand[p], b.taken[p]
        for p in [p for p in b.starved if p not in short]:
            del b.starved[p]
        if grantor:
            grants = self._grant(b)
            if grants is not None:
                b.granting = grants
                moves.grants = grants
        return moves

    @staticmethod
    def _starving(b: _Budget, p: int, free: int) -> bool:
        """``p`` turned requests away and got nothing for two steps: the fragment it holds
        goes back to the pool, to be granted whole to one partition (when every partition
        holds a fragment smaller than its requests, none of them is usable where it is)."""
        steps, seen = b.starved.get(p, (0, -1))
        steps = steps + 1 if free <= seen else 0
        b.starved[p] = (0, -1) if steps >= 2 else (steps, free)
        return steps >= 2

    def _grant(self, b: _Budget) -> Grants | None:
        current = b.granting or b.grants
        pool = _pool(b)
        shares = {**b.durable, **b.pending}
        # a want is served once: only while its share knew every grant made to it before
        wants = sorted((s.want, p) for p, s in shares.items()
                       if s.want > 0 and s.seen_granted >= current.granted.get(p, 0))
        if pool <= 0 or not wants:
            return None
        granted = dict(current.granted)
        for want, p in wants:  # whole wants first, smallest first: no fragments
            x = min(want, pool)
            if x <= 0:
                break
            granted[p] = granted.get(p, 0) + x
            pool -= x
        # and half of what is left, between them: demand that grows is followed in a few
        # steps (capped at the want, benchmarks/escrow.py deferred 98 of 200 requests after
        # the shift with three workers, against 11-14 uncapped); half stays for the next
        extra = pool // 2 // len(wants)
        if extra > 0:
            for _, p in wants:
                granted[p] += extra
        return Grants(granted)

    def commit(self, key: str, moves: Moves) -> None:
        """``moves`` are durable: their increases count from now."""
        for p, share in moves.shares.items():
            self.learn_share(key, p, share)
        if moves.grants is not None:
            self.learn_grants(key, moves.grants)


_EMPTY = Share()


def _pool(b: _Budget) -> int:
    """Returns known durable less grants made (those not yet durable too)."""
    grants = b.granting or b.grants
    return sum(s.returned for s in b.durable.values()) - sum(grants.granted.values())


def _count(value: Any) -> int:
    """A count of nano-USD: a decimal string of digits (as ``to_list`` writes it) or an
    integer, not below zero."""
    if type(value) is str and value.isascii() and value.isdigit() and len(value) <= 40:
        return int(value)
    if type(value) is not int or value < 0:
        raise ValueError(f"not a count of nano-USD: {value!r:.40}")
    return value


def _counts(pairs: Any) -> dict[int, int]:
    """[[partition, nano-USD], ...] -> a dict; ValueError unless each is a count."""
    if not isinstance(pairs, list):
        raise ValueError(f"not a list of [partition, amount] pairs: {pairs!r:.80}")
    out: dict[int, int] = {}
    for pair in pairs:
        if not isinstance(pair, list) or len(pair) != 2:
            raise ValueError(f"not a [partition, amount] pair: {pair!r:.40}")
        if type(pair[0]) is not int:
            raise ValueError(f"not a partition: {pair[0]!r:.40}")
        out[_count(pair[0])] = _count(pair[1])
    return out
