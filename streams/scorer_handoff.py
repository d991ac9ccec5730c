"""What a worker learned of the tenants it answers for, for the worker that takes them next.

With several workers, a tenant's partition moves when the group changes, or when a worker
dies. Every worker publishes the state of each scope under the tenants it answers for on
the ``scorer-states`` topic (compacted, 7 days), keyed by the scope, on the tenant's
partition: at each checkpoint (``PRSM_CHECKPOINT_INTERVAL_S``) and when it stops cleanly,
and, for a tenant it gives away, the state it parked (``SpendWatch.tick``) at once. What
another worker publishes reaches a worker two ways:
- it follows the topic from its start on (a hand-off written while it owns the partition);
- when it gains partitions (its first scored tick, a rebalance), it reads theirs from the
  topic's beginning: the states the worker before it published, as of that worker's last
  checkpoint, also when that worker was killed.
What arrives waits in ``SpendWatch.arrivals``; the next tick adopts the states of scopes of
tenants it answers for, unless it has learned them for ``ADOPT_BELOW`` intervals or more
itself. A worker skips the states it wrote itself. The new owner then forecasts and judges
the tenant on its history instead of starting over, as one worker restarted from its
checkpoint does. Best effort: what the broker refuses is logged, not retried.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Collection, Sequence
from typing import Any

import faust
import mode
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from prsm_events.accounting.scopes import tenant_of
from prsm_events.kafka.compacted_view import CompactedView, fetch_batches
from prsm_events.kafka.connection import started
from prsm_events.kafka.partitioning import owner_partition
from prsm_events.scoring.scope_states import (
    ScopeState,
    decode_scope_state,
    encode_scope_state,
    encode_scope_states,
)
from prsm_events.settings import Settings
from prsm_events.watch.spend_watch import ADOPT_BELOW, Answers, SpendWatch
from streams.faust_compat import record_batches

__all__ = ["ScorerHandoff"]

log = logging.getLogger("prsm.scoring")

RECORDS_AT_ONCE = 10_000
"""States handed to the record batches between two chances for decisions to run."""
STOP_PUBLISH_S = 30.0
"""Longest a clean stop waits to publish the states (10^5 scopes: 0.6 s to encode, then 270
MB for the broker to take)."""


class ScorerHandoff(mode.Service):
    def __init__(self, app: faust.App, settings: Settings, watch: SpendWatch,
                 answers: Answers | None = None,
                 ticking: asyncio.Lock | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.app = app
        self.watch = watch
        self.answers = answers
        """Which tenants this worker answers for (``SpendControl.answering``): whose states it
        publishes, at a checkpoint and when it stops cleanly. None: it publishes none."""
        self.ticking = ticking or asyncio.Lock()
        """Held while the scorer ticks (the checkpoints' lock): the states are read between."""
        self.topic = settings.topic("scorer-states")
        self.partitions = settings.partitions
        # what is written from now on, for the partitions this worker owns; what was written
        # before for a partition it gains, ``recover`` reads
        self.view = CompactedView(settings.kafka, self.topic, self._arrived, self._refused,
                                  from_end=True, keep=self._owned)
        self.kafka = settings.kafka
        self.identity = f"{socket.gethostname()}/{os.getpid()}/{time.time_ns()}"
        """This worker process, as its records name it (it skips what it wrote itself)."""
        self.stats = {"handed": 0, "published": 0, "received": 0, "recovered": 0,
                      "refused": 0, "adopted": 0}
        self.read_partitions: frozenset[int] = frozenset()
        """The partitions whose history on the topic this worker has read (``recover``)."""
        self._starting: asyncio.Task[None] | None = None
        # (mypy matches no async method to mode's handler type, a union of two callables)
        app.on_before_shutdown.connect(self._before_shutdown)  # type: ignore[arg-type]

    def _owned(self, partition: int) -> bool:
        """Whether records of ``partition`` matter here now: it is one of the worker's (those
        of a partition it gains are read at its next tick, ``recover``)."""
        return partition in self.read_partitions

    def _arrived(self, key: bytes | None, value: bytes | None) -> None:
        state = self._state(key, value)
        if state is not None and key is not None:
            self.watch.arrivals[key.decode()] = state
            self.stats["received"] += 1

    def _state(self, key: bytes | None, value: bytes | None) -> ScopeState | None:
        """The state a record holds, if it is another worker's (``ValueError`` when it is
        not a state this worker can take)."""
        if key is None or value is None:
            return None
        state = decode_scope_state(value)  # (a header and one run of bytes: cheap)
        if state.interval_s != self.watch.interval_s:
            raise ValueError(f"learned at {state.interval_s} s intervals, this worker scores "
                             f"every {self.watch.interval_s} s")
        return None if state.by == self.identity else state

    def _refused(self, topic: str, partition: int, offset: int, key: bytes | None,
                 value: bytes | None, exc: Exception) -> None:
        self.stats["refused"] += 1
        log.warning("scope state %s[%d]@%d not taken: %s", topic, partition, offset, exc)

    async def publish(self, scopes: list[str]) -> None:
        """Hand the state of ``scopes`` (parked at the last tick) to whoever owns their
        tenants' partitions now."""
        records = await asyncio.to_thread(self._records, scopes)
        await self._send(records, "handed")

    async def _send(self, records: Sequence[tuple[int, bytes, bytes]], counter: str) -> int:
        """Write ``records`` ((partition, key, value)) and count them in ``stats[counter]``;
        returns how many the broker took (best effort: none when it refuses them)."""
        batches = record_batches(self.app)
        for i, (partition, key, value) in enumerate(records):
            batches.add(self.topic, partition, key, value)
            if i % RECORDS_AT_ONCE == RECORDS_AT_ONCE - 1:
                await asyncio.sleep(0)  # let decisions in between
        try:
            for sent in dict.fromkeys(await batches.send()):
                await sent
        except KafkaError as exc:  # the next owner learns them from scratch, or the next
            log.error("scope states not written (%d scopes): %r", len(records), exc)
            return 0  # checkpoint publishes them again
        self.stats[counter] += len(records)
        return len(records)

    def _records(self, scopes: list[str]) -> list[tuple[int, bytes, bytes]]:
        parked = self.watch.scorer.parked
        now = time.time()
        out = []
        for scope in scopes:
            tenant = tenant_of(scope)
            if tenant is None or scope not in parked:
                continue  # (resumed since)
            out.append((owner_partition(tenant, self.partitions), scope.encode(),
                        encode_scope_state(parked.state_of(scope), self.watch.interval_s,
                                           self.identity, now)))
        return out

    async def publish_learned(self) -> int:
        """Publish the state of every scope under a tenant this worker answers for (at a
        checkpoint, between ticks: only the scoring timer ticks), for whoever owns the
        tenant next, even after this worker is killed. Returns how many were published."""
        answers = self.answers
        if answers is None:
            return 0
        return await self._send(await asyncio.to_thread(self._learned, answers), "published")

    def _learned(self, answers: Answers
                 ) -> list[tuple[int, bytes, bytes]]:
        """The records of the states of the scopes of tenants answered for (in a thread:
        10^5 scopes take about 0.6 s)."""
        scopes = [s for s in self.watch.scorer.rows if tenant_of(s) is not None]
        if scopes:
            mine = list(answers([tenant_of(s) for s in scopes]))
            scopes = [s for s, ours in zip(scopes, mine, strict=True) if ours]
        if not scopes:
            return []
        scopes, columns = self.watch.scorer.states(scopes)
        values = encode_scope_states(columns, self.watch.interval_s, self.identity, time.time())
        return [(owner_partition(tenant_of(s) or "", self.partitions), s.encode(), value)
                for s, value in zip(scopes, values, strict=True)]

    async def recover(self, owned: frozenset[int], timeout_s: float = 60.0) -> int:
        """Read what was published for the partitions of ``owned`` this worker has not read
        yet (their history on the topic, up to its end now) into the watch's arrivals, for
        the next tick to adopt. Returns how many states it found."""
        gained = owned - self.read_partitions
        self.read_partitions = owned
        if not gained:
            return 0
        try:
            found = await asyncio.wait_for(self._read(gained), timeout_s)
        except Exception as exc:  # best effort (the broker away, a bug): learn from scratch
            log.error("scope states of partitions %s not read: %r", sorted(gained), exc)
            return 0
        arrivals = self.watch.arrivals
        for scope, state in found.items():
            arrivals.setdefault(scope, state)  # (one that arrived since is newer)
        self.stats["recovered"] += len(found)
        return len(found)

    async def _read(self, partitions: Collection[int]) -> dict[str, ScopeState]:
        consumer = AIOKafkaConsumer(**self.kafka.client_args(), group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest")
        await started(consumer, self.kafka)
        found: dict[str, ScopeState] = {}
        # the scopes no state would replace here (no tick runs meanwhile: the timer awaits
        # this), e.g. those a restarted worker restored from its checkpoint: not decoded
        kept = {scope.encode() for scope in self.watch.scorer.keeps(ADOPT_BELOW)}
        try:
            tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = {tp: end for tp, end in (await consumer.end_offsets(tps)).items() if end}
            while ends:
                for tp, records in (await fetch_batches(consumer, self.topic)).items():
                    for r in records:
                        if r.offset < ends.get(tp, 0) and r.key not in kept:
                            self._found(r, found)
                for tp in list(ends):
                    if await consumer.position(tp) >= ends[tp]:
                        del ends[tp]
        finally:
            await consumer.stop()
        return found

    def _found(self, record: Any, found: dict[str, ScopeState]) -> None:
        """Keep the state ``record`` (of the topic's history) holds in ``found`` (a later
        record is newer); one that is not a state here is refused, and the reading goes on."""
        try:
            state = self._state(record.key, record.value)
            if state is not None:
                found[record.key.decode()] = state
        except ValueError as exc:  # (a key that is not UTF-8 too)
            self._refused(record.topic, record.partition, record.offset, record.key,
                          record.value, exc)

    async def on_start(self) -> None:
        # beside the worker's start, not before it: the worker does not wait for it
        self._starting = asyncio.ensure_future(self._start_view())

    async def _start_view(self) -> None:
        try:
            await self.view.start()
        except Exception as exc:  # best effort: nothing is handed to this worker
            log.error("scope states not followed (%s): %r", self.topic, exc)

    async def on_stop(self) -> None:
        if self._starting is not None:
            self._starting.cancel()
            await asyncio.gather(self._starting, return_exceptions=True)
        await self.view.stop()

    async def publish_at_stop(self) -> int:
        """At a clean stop (a rolling deploy, scaling in), publish what this worker learned
        of the tenants it still answers for: their next owner goes on from here, not from the
        last checkpoint (up to ``PRSM_CHECKPOINT_INTERVAL_S`` older). Best effort, within
        ``STOP_PUBLISH_S``: the stop goes on whatever the broker does. Returns how many."""

        async def between_ticks() -> int:
            async with self.ticking:
                return await self.publish_learned()

        try:
            return await asyncio.wait_for(between_ticks(), STOP_PUBLISH_S)
        except Exception as exc:  # (the producer never started, the broker away): the stop
            log.error("scope states not published at the stop: %r", exc)  # goes on
            return 0

    async def _before_shutdown(self, app: Any, **kwargs: Any) -> None:
        """Faust's signal once the consumer has stopped, while the producer is still up (by
        this service's own stop it is not)."""
        await self.publish_at_stop()
