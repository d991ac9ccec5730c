"""The budget ledger: spent and reserved amounts per budget, and reservations per request.

Admission rule for a hard budget: ``spent + reserved + estimate <= limit``. An allowed request
reserves its estimate in every budget that applies; the usage event with the same
``request_id`` settles it (the reservation is released and the actual cost counted as spent);
a reservation never settled is released after its TTL. Amounts are integers of nano-USD, so
sums never drift. Usage is folded at most once per (budget row, source partition, offset):
the events of one message (a batch envelope) are folded together, all or none.

The ledger reads and writes two plain mappings (Faust tables' stores in the worker) and
remembers which keys it changed, so the caller can persist exactly those.

>>> from prsm_events.accounting.budgets import Budget
>>> from prsm_events.kafka.partitioning import owner_partition
>>> ledger = BudgetLedger({}, {}, partitions=4, partition_of=owner_partition)
>>> b = Budget(scope="tenant:acme", period="day", limit_usd=10)
>>> now = 1_700_000_000.0
>>> ledger.reserve("acme", "r1", [b], to_nano(4), now, ttl_s=60)
>>> v = ledger.view(b, "acme", now)
>>> (v.spent_usd, v.reserved_usd, v.remaining_usd, v.fits(to_nano(7)))
(0.0, 4.0, 6.0, False)
>>> ledger.settle("acme", "r1", to_nano(3), now, partition=0, offset=0, budgets=[b])
True
>>> v = ledger.view(b, "acme", now)
>>> (v.spent_usd, v.reserved_usd)
(3.0, 0.0)
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import chain, repeat
from operator import attrgetter
from typing import Any

import msgspec
import numpy as np

from prsm_events.accounting.budget_figures import BudgetFigures
from prsm_events.accounting.budgets import Budget
from prsm_events.accounting.escrow import Escrow
from prsm_events.accounting.ledger_view import NANO, BudgetView
from prsm_events.accounting.periods import BUCKET_S, ROLLING, calendar_bounds

__all__ = ["BudgetLedger", "BudgetState", "PartitionOf", "Reservation", "Settlement", "to_nano"]

PartitionOf = Callable[[str, int], int]
"""(tenant, partitions) -> the partition its records land on (``kafka.partitioning``)."""

_KEY, _TENANT, _LIMIT = attrgetter("key"), attrgetter("tenant"), attrgetter("limit_usd")
_ZONE = attrgetter("period", "timezone")
_NO_BUCKETS: dict[int, int] = {}



def to_nano(usd: float) -> int:
    """USD -> integer nano-USD, rounded up (estimates are never under-stated)."""
    return math.ceil(usd * NANO - 1e-6)


@dataclass(slots=True)
class BudgetState:
    """One ledger row: a budget's amounts (for one tenant shard of a global budget)."""

    period_start: float = 0.0
    spent: int = 0
    buckets: dict[int, int] = field(default_factory=dict)
    applied: dict[int, int] = field(default_factory=dict)
    """Usage partition -> last offset folded into this row."""

    def to_list(self) -> list[Any]:
        return [self.period_start, self.spent,
                sorted(self.buckets.items()), sorted(self.applied.items())]

    @classmethod
    def from_list(cls, raw: list[Any]) -> BudgetState:
        return cls(float(raw[0]), int(raw[1]),
                   {int(k): int(v) for k, v in raw[2]}, {int(k): int(v) for k, v in raw[3]})


class Settlement(msgspec.Struct, frozen=True, gc=False):
    """One usage event as the ledger counts it (``BudgetLedger.settle_message``)."""

    tenant: str
    request_id: str | None
    cost: int
    """Nano-USD."""
    ts: float
    budgets: Sequence[Budget]


@dataclass(slots=True)
class Reservation:
    """An allowed request's hold on its budgets until settled or expired."""

    amount: int
    keys: list[str]
    expires_at: float
    settled: bool = False
    decision: list[Any] = field(default_factory=list)
    """What was decided (action, model, provider, reason code), to answer a re-delivery."""

    def to_list(self) -> list[Any]:
        return [self.amount, self.keys, self.expires_at, self.settled, self.decision]

    @classmethod
    def from_list(cls, raw: list[Any]) -> Reservation:
        return cls(int(raw[0]), list(raw[1]), float(raw[2]), bool(raw[3]), list(raw[4]))


class BudgetLedger:
    """Spent/reserved per budget row and outstanding reservations (see module doc)."""

    def __init__(
        self,
        states: MutableMapping[str, Any],
        reservations: MutableMapping[str, Any],
        partitions: int,
        partition_of: PartitionOf,
    ) -> None:
        self.states = states
        self.reservations = reservations
        self.partitions = partitions
        self.partition_of = partition_of
        self.dirty_states: dict[str, int] = {}
        self.dirty_reservations: dict[str, int] = {}
        self._expiry: list[tuple[float, str]] = []
        self._rows: dict[str, BudgetState] = {}
        """Decoded rows changed or read since the last reload (the mapping holds lists)."""
        self._held: dict[str, int] = {}
        """Row key -> sum of the unsettled reservations on it. Derived from the reservations
        (the only place a hold is stored), so a crash can never leave the two disagreeing."""
        self._bounds: dict[tuple[str, str], tuple[float, float]] = {}
        self._owned: frozenset[int] | None = None
        self.escrow: Escrow | None = None
        """The allotments of global budgets (a worker): a global budget is admitted on each
        partition against that partition's allotment (``admission_view``). None: against
        the whole limit over every row (one process owning everything, tests)."""
        self._views: dict[str, BudgetView] = {}
        """Views at ``_views_at`` by budget key (and a global budget's admission views by
        row key): a batch of decisions shares one instant, and its reservations update them
        in place (``reserve``); any other change forgets them."""
        self._views_at = math.nan
        self.settlements_met = 0
        """Usage events settled that named a reservation held here (settled or not)."""
        self.reload()

    @property
    def owned(self) -> frozenset[int] | None:
        """The partitions this worker owns (None: all). A global budget's view sums the rows
        of these, and what the other partitions last published (``escrow``)."""
        return self._owned

    @owned.setter
    def owned(self, partitions: frozenset[int] | None) -> None:
        self._owned = partitions
        self._views.clear()

    # --- keys -----------------------------------------------------------------------------
    def row_key(self, budget: Budget, tenant: str) -> str:
        """A tenant's budgets have one row; a global budget has one row per tenant shard."""
        if budget.tenant is not None:
            return budget.key
        return f"{budget.key}#p{self.partition_of(tenant, self.partitions)}"

    def _rows_of(self, budget: Budget) -> list[str]:
        if budget.tenant is not None:
            return [budget.key]
        return [f"{budget.key}#p{p}" for p in range(self.partitions)]

    def _state(self, key: str) -> BudgetState:
        return self._peek(key) or self._rows.setdefault(key, BudgetState())

    def _peek(self, key: str) -> BudgetState | None:
        state = self._rows.get(key)
        if state is None:
            raw = self.states.get(key)
            if raw is None:
                return None
            state = self._rows[key] = BudgetState.from_list(raw)
        return state

    def _store(self, key: str, state: BudgetState, tenant: str) -> None:
        self._views.clear()
        self._rows[key] = state
        self.dirty_states[key] = self._partition_of(key, tenant)

    def _partition_of(self, key: str, tenant: str) -> int:
        if "#p" in key:
            return int(key.rsplit("#p", 1)[1])
        return self.partition_of(tenant, self.partitions)

    # --- periods --------------------------------------------------------------------------
    def bounds(self, budget: Budget, now: float) -> tuple[float, float]:
        """(start, end) epoch seconds of the budget's current period (rolling: the window)."""
        if budget.period in ROLLING:
            return now - ROLLING[budget.period], now
        cache_key = (budget.period, budget.timezone)
        cached = self._bounds.get(cache_key)
        if cached is not None and cached[0] <= now < cached[1]:
            return cached
        start, end = calendar_bounds(budget.period, budget.timezone,
                                     datetime.fromtimestamp(now, UTC))
        found = (start.timestamp(), end.timestamp())
        self._bounds[cache_key] = found
        return found

    # --- reading --------------------------------------------------------------------------
    def view(self, budget: Budget, tenant: str, now: float) -> BudgetView:
        """The budget's figures at ``now`` (a global budget: its rows held here, and what
        the other partitions last published). They do not depend on ``tenant`` (a tenant's
        budget has one row), so the views of an instant are kept by budget key."""
        if now != self._views_at:
            self._views.clear()
            self._views_at = now
        found = self._views.get(budget.key)
        if found is not None and found.budget is budget:
            return found
        found = self._views[budget.key] = self._read_view(budget, now)
        return found

    def admission_view(self, budget: Budget, tenant: str, now: float) -> BudgetView:
        """What a request of ``tenant`` is admitted against. A tenant's budget: ``view``. A
        global budget under escrow: the row of the tenant's partition against that
        partition's allotment, with ``room``, what the budget has left over every partition
        as known (what moves of allotment could bring)."""
        if budget.tenant is not None or self.escrow is None:
            return self.view(budget, tenant, now)
        row = self.row_key(budget, tenant)
        whole = self.view(budget, tenant, now)  # also moves the instant
        found = self._views.get(row)
        if found is not None and found.budget is budget:
            if found.whole is not whole:  # another partition reserved since
                found = self._views[row] = msgspec.structs.replace(found, whole=whole)
            return found
        found = self._views[row] = self._read_admission_view(budget, row, whole, now)
        return found

    def _read_admission_view(self, budget: Budget, row: str, whole: BudgetView, now: float
                             ) -> BudgetView:
        assert self.escrow is not None
        part = self._read_view(budget, now, [row])
        allotment = self.escrow.allotment(budget.key, budget.limit_nano,
                                          self._partition_of(row, ""))
        return msgspec.structs.replace(part, allotment=allotment, whole=whole)

    def forget_views(self) -> None:
        """Allotments moved: read the views afresh."""
        self._views.clear()

    def partition_taken(self, budget: Budget, partition: int, now: float) -> tuple[int, int]:
        """(spent, held) nano-USD on a global budget's row of ``partition`` at ``now``."""
        view = self._read_view(budget, now, [f"{budget.key}#p{partition}"])
        return view.spent, view.reserved

    def _read_view(self, budget: Budget, now: float, rows: list[str] | None = None
                   ) -> BudgetView:
        start, end = self.bounds(budget, now)
        spent = reserved = 0
        releases: list[tuple[float, int]] = []
        rolling = budget.period in ROLLING
        width = BUCKET_S.get(budget.period, 0)
        others: int | None = None  # a global budget over partitions of others: their spend
        if rows is None:
            rows = self._rows_of(budget)
            if budget.tenant is None and self.owned is not None and (
                    len(self.owned) < self.partitions):
                rows = [f"{budget.key}#p{p}" for p in sorted(self.owned)]
                others = 0
                if self.escrow is not None:  # what the others last published
                    for p, share in self.escrow.shares(budget.key).items():
                        if p not in self.owned:
                            spent += share.spent
                            reserved += share.held
                others = spent
        for key in rows:
            reserved += self._held.get(key, 0)
            state = self._peek(key)
            if state is None:
                continue
            if rolling:
                for bucket, amount in state.buckets.items():
                    if bucket + width > start:
                        spent += amount
                        releases.append((bucket + width + ROLLING[budget.period], amount))
            elif state.period_start >= start:
                spent += state.spent
        part = 1.0
        if others is not None and self.owned is not None:
            own = spent - others
            part = own / spent if own > 0 else len(self.owned) / self.partitions
        return BudgetView(budget, now, spent, reserved, start, end, tuple(sorted(releases)),
                          share=part)

    def figures(self, budgets: Sequence[Budget], now: float) -> BudgetFigures:
        """``view`` of each budget at ``now``, as columns (what a scoring tick reads). A
        tenant's budget is read in place, the rows' fields gathered column by column and
        summed with numpy (exact, in nano-USD integers); a global budget through ``view``
        (its shards). Equal to ``BudgetFigures.of_views`` of the views."""
        n = len(budgets)
        keys = list(map(_KEY, budgets))
        found = list(map(self._rows.get, keys))
        if None in found:  # rows not decoded yet (or without any spend)
            for i in [i for i, state in enumerate(found) if state is None]:
                found[i] = self._peek(keys[i])
        held = np.fromiter(map(self._held.get, keys, repeat(0, n)), dtype=np.int64, count=n)
        limit = np.rint(np.fromiter(map(_LIMIT, budgets), dtype=np.float64, count=n) * NANO)
        spent = np.zeros(n, dtype=np.int64)
        start, end = np.zeros(n), np.zeros(n)
        shared: list[tuple[int, BudgetView]] = []  # global budgets: read through ``view``
        by_zone: dict[tuple[str, str], list[int]] = {}  # (period, zone) -> rows of tenants
        for i, zone, tenant in zip(range(n), map(_ZONE, budgets), map(_TENANT, budgets),
                                   strict=True):
            if tenant is None:
                shared.append((i, self.view(budgets[i], "", now)))
            else:
                by_zone.setdefault(zone, []).append(i)
        releases = []
        for (period, _), rows in by_zone.items():
            at = np.array(rows, dtype=np.int64)
            states = [found[i] for i in rows]
            window = ROLLING.get(period)
            if window is None:
                first, last = self.bounds(budgets[rows[0]], now)
                start[at], end[at] = first, last
                begun = np.array([-math.inf if s is None else s.period_start for s in states])
                spent[at] = np.where(begun >= first, np.fromiter(
                    (0 if s is None else s.spent for s in states), dtype=np.int64,
                    count=len(rows)), 0)
            else:
                start[at], end[at] = now - window, now
                spent[at], leaving = self._windows(at, states, window, BUCKET_S[period], now)
                releases.append(leaving)
        taken = spent + held
        leaves = [np.concatenate(column) for column in zip(*releases, strict=True)]
        figures = BudgetFigures.of_lists(
            now, taken / NANO, (limit.astype(np.int64) - taken) / NANO, start, end,
            *(leaves or ([], [], [])))
        if shared:
            figures = figures.with_views(shared)
        return figures

    @staticmethod
    def _windows(rows: np.ndarray, states: list[BudgetState | None], window: int, width: int,
                 now: float) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Rolling rows of one period: the spend of each row's buckets still in the window,
        and (row, when it leaves the window, nano-USD) of each such bucket."""
        held = [_NO_BUCKETS if s is None else s.buckets for s in states]
        counts = np.fromiter(map(len, held), dtype=np.int64, count=len(held))
        total = int(counts.sum())
        bucket = np.fromiter(chain.from_iterable(held), dtype=np.int64, count=total)
        nano = np.fromiter(chain.from_iterable(map(dict.values, held)), dtype=np.int64,
                           count=total)
        inside = bucket + width > now - window
        index = np.repeat(np.arange(len(held)), counts)[inside]  # each bucket's place in rows
        spent = np.zeros(len(held), dtype=np.int64)
        np.add.at(spent, index, nano[inside])
        return spent, (rows[index], (bucket[inside] + width + window).astype(np.float64),
                       nano[inside])

    def reservation(self, tenant: str, request_id: str) -> Reservation | None:
        raw = self.reservations.get(f"{tenant}|{request_id}")
        return None if raw is None else Reservation.from_list(raw)

    # --- writing --------------------------------------------------------------------------
    def reserve(
        self, tenant: str, request_id: str, budgets: Sequence[Budget], amount: int,
        now: float, ttl_s: float, decision: list[Any] | None = None,
    ) -> None:
        """Hold ``amount`` in every budget row of ``budgets`` until settled or expired."""
        key = f"{tenant}|{request_id}"
        if key in self.reservations:
            raise ValueError(f"request {request_id!r} of {tenant!r} already holds a reservation")
        partition = self.partition_of(tenant, self.partitions)
        rows = [b.key if b.tenant is not None else f"{b.key}#p{partition}" for b in budgets]
        held, views = self._held, self._views
        for row in rows:
            held[row] = held.get(row, 0) + amount
        for budget in budgets:
            seen = views.get(budget.key)
            if budget.tenant is not None:
                if seen is not None:
                    views[budget.key] = seen.holding(amount)
                continue
            if seen is not None and (self._owned is None or partition in self._owned):
                seen = views[budget.key] = seen.holding(amount)
            row = f"{budget.key}#p{partition}"
            part = views.get(row)
            if part is not None:
                whole = part.whole
                if whole is not None:  # the budget's view as it is now (admission_view)
                    whole = seen if seen is not None else whole.holding(amount)
                views[row] = msgspec.structs.replace(part, reserved=part.reserved + amount,
                                                     whole=whole)
        reservation = Reservation(amount, rows, now + ttl_s, decision=decision or [])
        self.reservations[key] = reservation.to_list()
        self.dirty_reservations[key] = partition
        heapq.heappush(self._expiry, (reservation.expires_at, key))

    def restore_reservation(self, key: str, raw: list[Any], now: float, ttl_s: float
                            ) -> bool:
        """Hold a reservation as its decision carried it (a worker taking over a partition
        reads them back: ``streams.answered_log``) unless the ledger knows its key already
        (held or settled since: the ledger's row is the later truth), it has expired, or it
        claims to outlive a reservation made now (``ttl_s``: not one this ledger wrote).
        Returns True when it is held now.

        >>> from prsm_events.kafka.partitioning import owner_partition
        >>> ledger = BudgetLedger({}, {}, 4, owner_partition)
        >>> ledger.restore_reservation("acme|r1", [500, ["day"], 130.0, False, []], 100.0, 60)
        True
        >>> ledger.reserved("day"), ledger.restore_reservation(
        ...     "acme|r1", [500, ["day"], 130.0, False, []], 100.0, 60)
        (500, False)
        >>> ledger.restore_reservation("acme|r2", [500, ["day"], 99.0, False, []], 100.0, 60)
        False
        """
        if key in self.reservations:
            return False
        reservation = Reservation.from_list(raw)
        if not now < reservation.expires_at <= now + ttl_s:
            return False
        tenant = key.split("|", 1)[0]
        self.reservations[key] = reservation.to_list()
        self.dirty_reservations[key] = self.partition_of(tenant, self.partitions)
        heapq.heappush(self._expiry, (reservation.expires_at, key))
        self._views.clear()
        self._hold(reservation)
        return True

    def _hold(self, reservation: Reservation) -> None:
        if reservation.settled:
            return
        for row in reservation.keys:
            self._held[row] = self._held.get(row, 0) + reservation.amount

    def _release(self, reservation: Reservation) -> None:
        if reservation.settled:
            return
        self._views.clear()
        for row in reservation.keys:
            left = self._held.get(row, 0) - reservation.amount
            if left > 0:
                self._held[row] = left
            else:
                self._held.pop(row, None)

    def settle(
        self, tenant: str, request_id: str | None, cost: int, ts: float,
        partition: int, offset: int, budgets: Sequence[Budget],
    ) -> bool:
        """Fold one usage event, alone in its message: release its request's reservation,
        count ``cost`` as spent.

        Returns False when the message was already folded (same partition and offset).
        The reservation is kept, marked settled, until its TTL so that a re-delivered
        request is recognised.
        """
        return self.settle_message(partition, offset, [
            Settlement(tenant, request_id, cost, ts, budgets)]) > 0

    def settle_message(self, partition: int, offset: int, usages: Sequence[Settlement]) -> int:
        """Fold the usage events of one message (several when it is a batch envelope), as
        ``settle`` does each: a row counts them all, or none when it folded the message
        before. Returns how many were counted in at least one row. Each row is read and
        stored once for the message (a calendar row adds its events' sum: as if one by one,
        since an event of a later period starts the row again and one of an earlier period
        counts nothing)."""
        by_row: dict[str, tuple[Budget, str, list[Settlement]]] = {}
        row_key = self.row_key
        for usage in usages:
            if usage.request_id is not None:
                self._settle_reservation(usage.tenant, usage.request_id)
            for budget in usage.budgets:
                row = row_key(budget, usage.tenant)
                held = by_row.get(row)
                if held is None:
                    by_row[row] = (budget, usage.tenant, [usage])
                else:
                    held[2].append(usage)
        counted: set[int] = set()
        for row, (budget, tenant, events) in by_row.items():
            state = self._state(row)
            if state.applied.get(partition, -1) >= offset:
                continue  # folded before a restart
            state.applied[partition] = offset
            if budget.period in ROLLING:
                self._add_to_buckets(state, budget.period, events)
            else:
                self._add_to_period(state, budget, events)
            self._store(row, state, tenant)
            counted.update(map(id, events))
        return len(counted)

    def _settle_reservation(self, tenant: str, request_id: str) -> None:
        key = f"{tenant}|{request_id}"
        raw = self.reservations.get(key)
        if raw is None:
            return
        self.settlements_met += 1
        reservation = Reservation.from_list(raw)
        if not reservation.settled:
            self._release(reservation)
            reservation.settled = True
            self.reservations[key] = reservation.to_list()
            self.dirty_reservations[key] = self.partition_of(tenant, self.partitions)

    @staticmethod
    def _add_to_buckets(state: BudgetState, period: str, events: Sequence[Settlement]) -> None:
        """Count events, in order, in a rolling row's buckets, each dropping the buckets that
        left the window at its time."""
        width = BUCKET_S[period]
        window = ROLLING[period]
        for usage in events:
            ts = usage.ts
            bucket = int(ts // width * width)
            horizon = ts - window - width
            state.buckets[bucket] = state.buckets.get(bucket, 0) + usage.cost
            state.buckets = {b: a for b, a in state.buckets.items() if b > horizon}

    def _add_to_period(self, state: BudgetState, budget: Budget, events: Sequence[Settlement]
                       ) -> None:
        """Count events in a calendar row: those of its latest period (usage of an earlier
        period no longer counts against the budget)."""
        bounds = self.bounds
        starts = [bounds(budget, usage.ts)[0] for usage in events]
        latest = max(starts)
        if latest < state.period_start:
            return
        spent = sum(usage.cost for usage, start in zip(events, starts, strict=True)
                    if start == latest)
        if latest > state.period_start:
            state.period_start, state.spent = latest, spent
        else:
            state.spent += spent

    def expire(self, now: float) -> list[tuple[str, Reservation]]:
        """Release reservations past their TTL (settled ones are just forgotten)."""
        expired = []
        while self._expiry and self._expiry[0][0] <= now:
            due, key = heapq.heappop(self._expiry)
            raw = self.reservations.get(key)
            if raw is None:
                continue
            reservation = Reservation.from_list(raw)
            if reservation.expires_at != due:
                continue
            tenant = key.split("|", 1)[0]
            self._release(reservation)
            del self.reservations[key]
            self.dirty_reservations[key] = self.partition_of(tenant, self.partitions)
            expired.append((key, reservation))
        return expired

    def reserved(self, row: str) -> int:
        """Nano-USD held on a ledger row by unsettled reservations."""
        return self._held.get(row, 0)

    def holds(self) -> dict[str, int]:
        """Every row with something held on it, and how much."""
        return dict(self._held)

    def reload(self) -> None:
        """Re-read the mappings (after they were restored from changelogs): forget decoded
        rows, re-sum the holds and re-index expiries from the reservations."""
        self._rows.clear()
        self._views.clear()
        self._held = {}
        self._expiry = []
        for key, raw in list(self.reservations.items()):
            reservation = Reservation.from_list(raw)
            self._expiry.append((reservation.expires_at, key))
            self._hold(reservation)
        heapq.heapify(self._expiry)

    def take_dirty(self) -> tuple[dict[str, int], dict[str, int]]:
        """Keys changed since the last call, with the changelog partition of each.

        Changed rows are written to the ``states`` mapping here, once per call.
        """
        states, self.dirty_states = self.dirty_states, {}
        for key in states:
            state = self._rows.get(key)
            if state is not None:
                self.states[key] = state.to_list()
        reservations, self.dirty_reservations = self.dirty_reservations, {}
        return states, reservations
