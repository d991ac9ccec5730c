"""The worker's spend-control state shared by its agents: budgets, catalog, ledger, health.

Both the decision agent (requests) and the ingest agent (usage) change the ledger; every
change is synchronous, and ``persist`` writes the changed rows through one ChangelogWriter.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import faust
import numpy as np
import orjson
from faust.types import TableT

from prsm_events.accounting.budgets import Budget, BudgetBook
from prsm_events.accounting.catalog import Catalog
from prsm_events.accounting.escrow import Escrow, Grants, Moves, Share
from prsm_events.accounting.ledger import BudgetLedger, Settlement, to_nano
from prsm_events.accounting.ledger_view import NANO
from prsm_events.accounting.pricing import PricedUsage
from prsm_events.accounting.scopes import scopes_of
from prsm_events.decisions.admission import AdmissionDesk
from prsm_events.decisions.budget_signals import BudgetFlags, budget_signals
from prsm_events.decisions.deferred import DeferredRequests
from prsm_events.decisions.policy import PolicyConfig
from prsm_events.decisions.provider_health import ProviderHealth
from prsm_events.events.alerts import Alert
from prsm_events.events.decision import Action, DecisionRecord
from prsm_events.events.directives import ThrottleDirective
from prsm_events.events.fast_path import Request, Usage
from prsm_events.events.request import Priority
from prsm_events.kafka.partitioning import KeyPartitions, owner_partition
from prsm_events.operations.stage_times import StageTimes
from prsm_events.settings import Settings
from prsm_events.watch.meter import SpendMeter
from prsm_events.watch.outlook import Outlooks
from streams.answered_log import NO_MARK_LOOKBACK_S, AnsweredLog, answered_key
from streams.changelog import ChangelogWriter
from streams.faust_compat import steady, table_store
from streams.partition_progress import PartitionProgress

__all__ = ["DecisionStats", "SpendControl", "grants_key", "share_key"]

log = logging.getLogger("prsm.control")


DECISION_STAGES = ("fetched", "queued", "decided", "answered")
"""A request's way through the worker: ``fetched``, from its record's timestamp (its
producer's clock) to the worker's fetch; ``queued``, waiting for the agent (behind earlier
batches, or gathered into one); ``decided``, its batch decoded, decided, and its reservations
and decisions handed to the producer; ``answered``, until the broker has them all
(``streams.answered_log``). The first three count request messages, the last decisions
sent."""


@dataclass
class DecisionStats:
    """What the decision agent counted (``/stats`` decisions, ``/metrics``)."""

    requests: int = 0
    dead_lettered: int = 0
    redelivered: int = 0
    settled: int = 0
    expired: int = 0
    alerts: int = 0
    directives: int = 0
    rewinds: int = 0  # batches refused for a gap in offsets (PartitionProgress)
    rereads: int = 0  # times skipped requests were re-read (PartitionProgress)
    undelivered: int = 0  # batches whose records the broker did not take: read again
    fetch_pauses: int = 0  # partitions paused at the fetcher: requests waiting (MessageBuffer)
    allotment_records: int = 0  # shares and grants of global budgets published (escrow)
    restored: int = 0  # reservations read back from decisions on taking partitions over
    decided: Counter[tuple[str, str]] = field(default_factory=Counter)
    """Decisions by (action, reason code)."""
    stages: StageTimes = field(default_factory=lambda: StageTimes(DECISION_STAGES))
    """Where requests spent their time in the worker (``DECISION_STAGES``)."""

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "dead_lettered": self.dead_lettered,
                "redelivered": self.redelivered, "settled": self.settled,
                "expired": self.expired, "alerts": self.alerts, "directives": self.directives,
                "rewinds": self.rewinds, "rereads": self.rereads,
                "undelivered": self.undelivered, "fetch_pauses": self.fetch_pauses,
                "allotment_records": self.allotment_records, "restored": self.restored,
                "actions": self._by(0), "reasons": self._by(1), "stages": self.stages.as_dict()}

    def _by(self, at: int) -> dict[str, int]:
        out: Counter[str] = Counter()
        for key, n in self.decided.items():
            out[key[at]] += n
        return dict(out)


ANSWERED_EVERY_S = 0.5
"""How often a partition's answered offset (``note_answered``) is written at most: one
ledger record per partition every half second, not one per batch."""


def share_key(budget_key: str, partition: int) -> str:
    """The ledger table's row of a global budget's share of ``partition`` (escrow)."""
    return f"{budget_key}#share#p{partition}"


def grants_key(budget_key: str) -> str:
    """The ledger table's row of a global budget's grants (partition 0's)."""
    return f"{budget_key}#grants"


class SpendControl:
    """Budgets in force, the catalog, the ledger (backed by two tables) and provider health."""

    def __init__(self, app: faust.App, settings: Settings, default_catalog: Catalog) -> None:
        self.app = app
        self.settings = settings
        self.default_catalog = default_catalog
        self.catalog = default_catalog
        self.book = BudgetBook()
        self.ledger_table: TableT[str, Any] = app.Table(
            "ledger", default=None, partitions=settings.partitions,
            extra_topic_configs=settings.changelog_configs)
        self.reservation_table: TableT[str, Any] = app.Table(
            "reservations", default=None, partitions=settings.partitions,
            extra_topic_configs=settings.changelog_configs)
        self.ledger = BudgetLedger(table_store(self.ledger_table),
                                   table_store(self.reservation_table),
                                   settings.partitions, owner_partition)
        self.escrow = Escrow(settings.partitions)
        self.ledger.escrow = self.escrow
        self._tenant_places = KeyPartitions()  # (``answering``)
        self.escrow_due = asyncio.Event()
        """Set when a request waits for allotment: the next round of moves runs at once."""
        self.allotments_topic = app.topic(settings.topic("allotments"), key_serializer="raw",
                                          value_serializer="raw")
        self._announced = -2
        """The generation whose shares and grants were all published (``move_allotments``)."""
        self.health = ProviderHealth(half_life_s=settings.provider_half_life_s)
        self.config = PolicyConfig(
            unbudgeted=settings.unbudgeted,
            default_input_tokens=settings.default_est_input_tokens,
            default_output_tokens=settings.default_est_output_tokens,
            min_availability=settings.min_provider_availability,
            exhausted_below=settings.exhausted_below,
            allotment_retry_s=settings.escrow_interval_s,
        )
        self.desk = AdmissionDesk(self.book, self.ledger, default_catalog, self.health,
                                  self.config, settings.reservation_ttl_s)
        self.catalog_listeners: list[Callable[[Catalog], None]] = []
        self.writer = ChangelogWriter(app, self.owned_partitions)
        self.stats = DecisionStats()
        self.touched: set[tuple[str, str]] = set()
        """(budget key, tenant) whose figures changed since the last signal check."""
        self.blocked: dict[str, tuple[str, str]] = {}
        """Directive key -> (budget key, tenant) of the block directives this worker sent."""
        self.removed: list[Budget] = []
        self.alerts_topic = app.topic(settings.topic("alerts"), key_serializer="raw",
                                      value_serializer="raw")
        self.policies_topic = app.topic(settings.topic("policies"), key_serializer="raw",
                                        value_serializer="raw")
        self.generation = -1
        self.meter = SpendMeter(clock=time.monotonic)  # intervals say how long they lasted
        self.observed: dict[int, int] = {}
        """Usage partition -> the highest offset whose events this process has metered and
        shown provider health: a message read again (a rewind) counts there once, as in
        the ledger's rows."""
        self.deferred = DeferredRequests()
        self.outlooks = Outlooks()
        """The last tick's outlooks (none before the first)."""
        self.scoring: dict[str, Any] = {}
        """The scoring timer's last tick: backend, ticks, scopes, tick_ms, interval_s (the
        interval's real length), findings."""
        self.trackers: list[PartitionProgress] = []
        """The in-order agents' progress (usage, requests): backlogs and stalls."""
        self.answered_log: AnsweredLog | None = None
        """Where reservations answered for are read back on taking partitions over (None:
        nowhere, tests of one process)."""
        self.unread: set[int] = set()
        """Partitions taken over whose answered reservations are not read back yet."""
        self._reading = asyncio.Lock()
        self._noted: dict[int, float] = {}
        """Partition -> when its answered offset was last marked to be written."""

    def sync_generation(self) -> None:
        """After a rebalance the tables may have been restored: re-read them (and the
        allotments of the partitions now owned: their shares, and the grants with
        partition 0)."""
        if self.app.consumer_generation_id != self.generation:
            self.ledger.reload()
            before, owned = self.ledger.owned or frozenset(), self.owned_partitions()
            self.ledger.owned = owned
            self.unread = (self.unread | (owned - before)) & owned
            # a partition kept: its moves stand as this worker knows them (a move not yet
            # durable counts once it lands); a new one: its table, as restored, is the truth
            self.escrow.drop_pending(keep=owned)
            for budget in self.book:
                if budget.tenant is None:
                    self._read_allotments(budget.key, owned - before)
            self.ledger.forget_views()
            self.generation = self.app.consumer_generation_id

    async def restore_answered(self) -> None:
        """``sync_generation``, then hold the reservations that the decisions of partitions
        taken over carry and their restored ledger lacks (``streams.answered_log``): nothing
        may be decided, settled or moved on those partitions before (``unread`` is empty
        after). Raises when the broker does not serve the decisions; returns with ``unread``
        left when a rebalance came meanwhile."""
        self.sync_generation()
        answered = self.answered_log
        if answered is None:  # nothing to read back (tests of one process)
            self.unread.clear()
        if answered is None or not self.unread:
            return
        async with self._reading:
            self.sync_generation()  # another caller may have read, or a rebalance come
            unread = frozenset(self.unread)
            if not unread:
                return
            generation = self.app.consumer_generation_id
            starts = {p: self._answered_at(p) for p in unread}
            since_ms = int((time.time() - self.settings.reservation_ttl_s
                            - NO_MARK_LOOKBACK_S) * 1000)
            rows = await answered.read(starts, since_ms)
            if self.app.consumer_generation_id != generation or not steady(self.app):
                return  # rebalanced meanwhile: read again once restored
            self._hold_answered(rows, unread, time.time())
            self.unread -= unread

    def _answered_at(self, partition: int) -> int | None:
        raw = self.ledger.states.get(answered_key(partition))
        return int(raw[0]) if isinstance(raw, list) and raw else None

    def _hold_answered(self, rows: list[tuple[str, list[Any]]], partitions: frozenset[int],
                       now: float) -> None:
        latest: dict[str, list[Any]] = {}
        for key, row in rows:  # in offset order: a later answer's row is the later truth
            if self.ledger.partition_of(key.split("|", 1)[0],
                                        self.settings.partitions) in partitions:
                latest[key] = row
        restored = 0
        for key, row in latest.items():
            try:
                restored += self.ledger.restore_reservation(
                    key, row, now, self.settings.reservation_ttl_s)
            except (TypeError, ValueError, IndexError) as exc:
                log.warning("a decision's reservation %r could not be held: %s", key, exc)
        if restored:
            self.ledger.forget_views()
            log.warning("held %d reservations answered for by the partitions' previous "
                        "owner whose changelog records were not written", restored)
        self.stats.restored += restored

    def note_answered(self, ends: dict[int, int], now: float | None = None) -> None:
        """Record that every decision below ``ends[p]`` on partition ``p`` of the decisions
        topic has its reservation in the changelog: written with the next flush, at most
        every ``ANSWERED_EVERY_S`` per partition (a new owner reads back from the last one
        written: at most that much more)."""
        owned = self.ledger.owned
        now = time.monotonic() if now is None else now
        for partition, end in ends.items():
            if owned is not None and partition not in owned:
                continue
            key = answered_key(partition)
            if end > (self._answered_at(partition) or 0):
                self.ledger.states[key] = [end]
                if now - self._noted.get(partition, -math.inf) >= ANSWERED_EVERY_S:
                    self.ledger.dirty_states[key] = partition
                    self._noted[partition] = now

    def _read_allotments(self, key: str, owned: frozenset[int]) -> None:
        for p in owned:
            raw = self.ledger.states.get(share_key(key, p))
            if raw is not None:
                self.escrow.learn_share(key, p, Share.from_list(raw))
        if 0 in owned:
            raw = self.ledger.states.get(grants_key(key))
            if raw is not None:
                self.escrow.learn_grants(key, Grants.from_list(raw))

    def apply_allotment(self, key: bytes | None, value: bytes | None) -> None:
        """A share or the grants of a global budget, as published (``move_allotments``)."""
        if key is None or value is None:
            raise ValueError("an allotment record needs a key and a value")
        name, _, which = key.decode().rpartition("#")
        raw = orjson.loads(value)
        partitions = self.settings.partitions
        if which == "grants":
            grants = Grants.from_list(raw)
            if any(p >= partitions for p in grants.granted):
                raise ValueError(f"grants to a partition beyond the {partitions}")
            self.escrow.learn_grants(name, grants)
        elif which.startswith("p") and which[1:].isdigit() and int(which[1:]) < partitions:
            share = Share.from_list(raw)
            if any(p >= partitions for p in share.given):
                raise ValueError(f"a share given to a partition beyond the {partitions}")
            partition = int(which[1:])
            before = self.escrow.shares(name).get(partition)
            self.escrow.learn_share(name, partition, share)
            if (share.want > (before.want if before else 0)
                    and partition not in (self.ledger.owned or frozenset())):
                self.escrow_due.set()  # another worker's partition wants more: a round now
                # (the grantor grants; owners return what they keep when the pool is short)
        else:
            raise ValueError(f"not an allotment key (BUDGET#pN or BUDGET#grants): {key!r}")
        self.ledger.forget_views()
        if 0 in (self.ledger.owned or frozenset()):  # the whole budget's alerts are ours
            self.touched.add((name, ""))

    async def move_allotments(self, now: float) -> int:
        """One round of moves of every hard global budget's allotments (``Escrow.step``):
        written to the ledger table, then, once the broker has them and if this worker
        still owns the same partitions, counted and published on the allotments topic.
        Returns how many records were published."""
        await self.restore_answered()
        if self.unread:
            return 0  # rebalanced while reading back: the next round, steady again
        generation, owned = self.generation, self.ledger.owned or frozenset()
        steps: list[tuple[str, Moves]] = []
        for budget in self.book:
            if budget.tenant is not None or not budget.hard:
                continue
            taken = {p: self.ledger.partition_taken(budget, p, now) for p in owned}
            moves = self.escrow.step(budget.key, budget.limit_nano, taken, now,
                                     grantor=0 in owned)
            if not moves:
                continue
            for p, share in moves.shares.items():
                self.ledger.states[share_key(budget.key, p)] = share.to_list()
                self.ledger.dirty_states[share_key(budget.key, p)] = p
            if moves.grants is not None:
                self.ledger.states[grants_key(budget.key)] = moves.grants.to_list()
                self.ledger.dirty_states[grants_key(budget.key)] = 0
            steps.append((budget.key, moves))
        self.ledger.forget_views()  # what was returned or given counts at once
        if steps:
            await self.persist()
            await self.writer.delivered()  # also rows another flush took from this one
        if not steady(self.app) or self.app.consumer_generation_id != generation:
            # a rebalance began meanwhile: the partitions may be another worker's already
            # (Faust sets the new generation only once assigned, so the revocation shows
            # only as a rebalance); what was written counts, uncounted, only in the tables
            return 0
        records: dict[str, list[object]] = {}
        for key, moves in steps:
            self.escrow.commit(key, moves)
            records.update({f"{key}#p{p}": s.to_list() for p, s in moves.shares.items()})
            if moves.grants is not None:
                records[f"{key}#grants"] = moves.grants.to_list()
        if self._announced != generation:  # all of them again: a new owner, a lost record
            for budget in self.book:
                if budget.tenant is None:
                    shares = self.escrow.shares(budget.key, durable=True)
                    records.update({f"{budget.key}#p{p}": shares[p].to_list()
                                    for p in owned if p in shares})
                    if 0 in owned:
                        records[f"{budget.key}#grants"] = self.escrow.grants(
                            budget.key, durable=True).to_list()
            self._announced = generation
        self.ledger.forget_views()
        try:
            for key, value in records.items():
                await self.allotments_topic.send(key=key.encode(), value=orjson.dumps(value))
        except BaseException:
            self._announced = -2  # the next round publishes them all again
            raise
        return len(records)

    def answers_for(self, budget: Budget) -> bool:
        """True when this worker speaks for ``budget`` now (its snapshots, once per group):
        it owns the tenant's partition, or partition 0 for a budget over tenants."""
        owned = self.ledger.owned
        if owned is None:
            return False
        if budget.tenant is None:
            return 0 in owned
        return self.ledger.partition_of(budget.tenant, self.settings.partitions) in owned

    def answering(self, tenants: Sequence[str | None]) -> np.ndarray:
        """``answers_for`` of a budget of each tenant (None: over tenants), as a bool array
        (a scoring tick asks it of every budget it looks at, from its thread): each
        tenant's partition is hashed once while the partition count stays the same."""
        owned = self.ledger.owned
        if owned is None:
            return np.zeros(len(tenants), dtype=bool)
        if self.owns_all():  # one worker alone: every tenant's, nothing to hash
            return np.ones(len(tenants), dtype=bool)
        places = np.array(self._tenant_places.of([t or "" for t in tenants],
                                                 self.settings.partitions), dtype=np.int64)
        global_ = np.array([t is None for t in tenants], dtype=bool)
        return np.where(global_, 0 in owned, np.isin(places, sorted(owned)))

    def watched(self, budgets: Sequence[Budget]) -> list[Budget]:
        """The budgets this worker's scoring tick looks at: those it answers for, and every
        budget over tenants (each worker paces its own allotment of one; one answers for
        it). With several workers the tick's work is divided among them, and a worker keeps
        no forecast or pacing of a tenant whose partition another owns."""
        if self.owns_all():
            return list(budgets)
        tenants = [b.tenant for b in budgets]
        over_tenants = np.array([t is None for t in tenants], dtype=bool)
        keep = np.flatnonzero(self.answering(tenants) | over_tenants)
        if len(keep) == len(budgets):
            return list(budgets)
        return [budgets[i] for i in keep.tolist()]

    def owns_all(self) -> bool:
        """True while this worker owns every partition (it runs alone)."""
        owned = self.ledger.owned
        return owned is not None and owned.issuperset(range(self.settings.partitions))

    def owned_partitions(self) -> frozenset[int]:
        """The partitions of the per-tenant topics (co-partitioned) this worker owns now."""
        requests = self.settings.topic("requests")
        return frozenset(tp.partition for tp in self.app.consumer.assignment()
                         if tp.topic == requests)

    # --- config feeds ---------------------------------------------------------------------
    def apply_budget(self, key: bytes | None, value: bytes | None) -> None:
        old = self.book.get(key.decode()) if key else None
        self.book.apply(key, value)
        new = self.book.get(key.decode()) if key else None
        if old is not None and new is None:
            self.removed.append(old)
        if new is not None and new.tenant is not None:
            self.touched.add((new.key, new.tenant))
        if new is not None and new.tenant is None and not self.escrow.knows(new.key):
            self._read_allotments(new.key, self.ledger.owned or frozenset())

    def apply_catalog(self, key: bytes | None, value: bytes | None) -> None:
        self.catalog = self.default_catalog if value is None else Catalog.from_json(value)
        self.desk.catalog = self.catalog
        for listener in self.catalog_listeners:
            listener(self.catalog)
        log.warning("catalog %s in force (%d models)", self.catalog.version, len(self.catalog))

    # --- domain steps ---------------------------------------------------------------------
    def touch(self, budgets: list[Budget], tenant: str) -> None:
        self.touched.update((b.key, tenant) for b in budgets)

    def apply_messages(self, messages: Sequence[tuple[tuple[int, int], Sequence[PricedUsage]]]
                       ) -> None:
        """Fold the accepted usage events of a batch, message by message ((partition, offset)
        and its events), into the ledger, the meter and the provider health (a message folded
        before counts nothing again: the ledger's rows keep the offsets they folded, the meter
        and health count a message above ``observed`` only). The scopes and budgets of events
        alike are looked up once per batch, and their spend is metered once."""
        # (tenant, team, service, api key, model, provider) -> [scopes, budgets, the spend
        # of events alike but for the provider, the outcomes at (provider, model) or None]
        groups: dict[tuple[Any, ...], list[Any]] = {}
        spent: dict[tuple[Any, ...], list[Any]] = {}  # alike -> [scopes, spend, metered]
        outcomes: dict[tuple[str, str], list[tuple[str, float | None, float]]] = {}
        settle = self.ledger.settle_message
        met = self.ledger.settlements_met
        observed = self.observed
        for (partition, offset), usages in messages:
            settlements = []
            new = offset > observed.get(partition, -1)
            if new:
                observed[partition] = offset
            for priced in usages:
                e = priced.event
                found = groups.get((e.tenant, e.team, e.service, e.api_key_id, e.model,
                                    priced.provider))
                if found is None:
                    found = self._group(e, priced.provider, groups, spent, outcomes)
                ts = priced.at
                cost = priced.cost_usd
                settlements.append(Settlement(e.tenant, e.request_id, to_nano(cost), ts,
                                              found[1]))
                if new:
                    total = found[2]
                    total[1] += cost
                    total[2] = True
                    if found[3] is not None:
                        found[3].append((e.status._value_, e.latency_ms, ts))
            settle(partition, offset, settlements)
        self.stats.settled += self.ledger.settlements_met - met
        for scopes, cost, metered in spent.values():
            if metered:  # (only messages read again: nothing to meter)
                self.meter.add_spend(scopes, cost)
        for (provider, model), seen in outcomes.items():  # each in the events' order
            self.health.observe_many(provider, model, seen)

    def _group(self, e: Usage, provider: str, groups: dict[tuple[Any, ...], list[Any]],
               spent: dict[tuple[Any, ...], list[Any]],
               outcomes: dict[tuple[str, str], list[tuple[str, float | None, float]]]
               ) -> list[Any]:
        """A new group of ``apply_messages``: events alike share their scopes and budgets,
        their spend (whatever the provider) and their provider's outcomes (in the events'
        order, with every other group at the same provider and model)."""
        alike = (e.tenant, e.team, e.service, e.api_key_id, e.model)
        total = spent.get(alike)
        if total is None:
            scopes = scopes_of(e.tenant, team=e.team, service=e.service,
                               api_key_id=e.api_key_id, model=e.model)
            total = spent[alike] = [scopes, 0.0, False]
        scopes = total[0]
        budgets = self.book.applicable(scopes)
        self.touch(budgets, e.tenant)
        seen = outcomes.setdefault((provider, e.model), []) if e.model and provider else None
        found = groups[(*alike, provider)] = [scopes, budgets, total, seen]
        return found

    def meter_demand(self, request: Request, decision: DecisionRecord, now: float) -> None:
        """Count a request's cost at the model it asked for (pacing compares demand and
        spend), once: a deferred request asked again is not new demand."""
        retry = self.deferred.retry(request.tenant, request.request_id, now)
        self.deferred.note(request.tenant, request.request_id,
                           decision.action == Action.DEFER, now)
        if retry:
            return
        entry = self.catalog.lookup(request.model, request.provider)
        if entry is None:
            return
        cost = entry.cost(
            input_tokens=request.est_input_tokens if request.est_input_tokens is not None
            else self.config.default_input_tokens,
            output_tokens=request.est_output_tokens if request.est_output_tokens is not None
            else self.config.default_output_tokens)
        scopes, _ = self.book.scoped(request.tenant, team=request.team,
                                     service=request.service, api_key_id=request.api_key_id,
                                     model=request.model)
        self.meter.add_demand(scopes, cost,
                              high=request.priority in (Priority.HIGH, Priority.CRITICAL))

    def signals(self, now: float) -> tuple[list[Alert], list[ThrottleDirective], list[str]]:
        """Alerts, new block directives and lifted directive keys for touched budgets."""
        alerts: list[Alert] = []
        directives: list[ThrottleDirective] = []
        lifts: list[str] = []
        touched, self.touched = self.touched, set()
        for gone in self.removed:
            key = f"{gone.scope}|budget:{gone.period}"
            if self.blocked.pop(key, None) is not None:
                lifts.append(key)
        self.removed = []
        owned = self.ledger.owned
        for budget_key, tenant in touched:
            budget = self.book.get(budget_key)
            if budget is None:
                continue
            if budget.tenant is None and owned is not None and 0 not in owned:
                continue  # a global budget's alerts come from one worker: partition 0's
            flags_key = f"{budget.key}#flags"
            raw = self.ledger.states.get(flags_key)
            flags = None if raw is None else BudgetFlags.from_list(raw)
            out = budget_signals(self.ledger.view(budget, tenant, now), flags,
                                 self.config.exhausted_below)
            if out.flags != flags:
                self.ledger.states[flags_key] = out.flags.to_list()
                self.ledger.dirty_states[flags_key] = owner_partition(
                    tenant, self.settings.partitions) if budget.tenant else 0
            alerts.extend(out.alerts)
            if out.directive is not None:
                directives.append(out.directive)
                self.blocked[out.directive.key] = (budget.key, tenant)
            if out.lift:
                key = f"{budget.scope}|budget:{budget.period}"
                self.blocked.pop(key, None)
                lifts.append(key)
        return alerts, directives, lifts

    def lift_expired(self, now: float) -> None:
        """Re-check budgets under a block directive (their period may have rolled)."""
        for budget_key, tenant in list(self.blocked.values()):
            self.touched.add((budget_key, tenant))

    async def persist(self, wait: bool = True) -> list[Any]:
        """Write changed ledger rows and reservations to their changelogs.

        With ``wait=False`` the records are only handed to the producer; the returned
        futures complete once the broker has them (Faust also flushes the producer before
        it commits offsets).
        """
        states, reservations = self.ledger.take_dirty()
        self.writer.mark(self.ledger_table, states)
        self.writer.mark(self.reservation_table, reservations)
        return await self.writer.flush(wait)

    async def announce(self, now: float) -> None:
        """Send the alerts and directive changes due (after persist())."""
        alerts, directives, lifts = self.signals(now)
        if not (alerts or directives or lifts):
            return
        await self.persist()  # the flags that record what is announced
        stamp = datetime.fromtimestamp(now, UTC)
        for alert in alerts:
            tenant = alert.scope.split("/")[0].removeprefix("tenant:")
            await self.alerts_topic.send(key=tenant.encode(),
                                         value=alert.model_dump_json().encode())
            log.info("alert %s", alert.message)
        for directive in directives:
            await self.policies_topic.send(key=directive.key.encode(),
                                           value=directive.model_dump_json().encode())
            log.warning("directive %s until %s", directive.key, directive.until)
        for key in lifts:
            await self.policies_topic.send(key=key.encode(), value=None)
            log.warning("lifted directive %s at %s", key, stamp.isoformat())
        self.stats.alerts += len(alerts)
        self.stats.directives += len(directives)

    def budget_figures(self, now: float) -> list[dict[str, Any]]:
        """The budgets in force that this worker holds the figures of, with them: every
        budget over tenants (the whole budget as known, and per partition this worker owns,
        its allotment and what it holds, spent + reserved, which admissions keep within the
        allotment), and each tenant's budget where it owns the tenant's partition (another
        worker's tenant: its rows here are a standby's or a former owner's, not its figures).
        """
        out = []
        for budget in self.book:
            if budget.tenant is not None and not self.answers_for(budget):
                continue
            view = self.ledger.view(budget, budget.tenant or "", now)
            outlook = self.outlooks.get(budget.key)
            paced = self.desk.pacing.get(budget.key)
            parts = None if budget.tenant is not None else [
                {"partition": p,
                 "allotment_usd": self.escrow.allotment(budget.key, budget.limit_nano, p) / NANO,
                 "taken_usd": sum(self.ledger.partition_taken(budget, p, now)) / NANO}
                for p in sorted(self.ledger.owned or ())]
            out.append({**view.figures(), "key": budget.key, "alert_at": budget.alert_at,
                        "allotment_usd": None if parts is None else sum(
                            part["allotment_usd"] for part in parts),
                        "partitions": parts,
                        "pacing": budget.pacing,
                        "pacing_action": paced.figures() if paced else None,
                        "forecast": outlook.figures() if outlook else view.run_rate_forecast()})
        return sorted(out, key=lambda r: str(r["key"]))
