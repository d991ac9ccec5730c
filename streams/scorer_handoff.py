"""What a worker learned of the tenants it hands over, for the worker that takes them.

With several workers, a tenant's partition moves when the group changes. The worker that
gives it away parks its scopes (``SpendWatch.tick``) and publishes each parked scope's state
on the ``scorer-states`` topic (compacted, 7 days), keyed by the scope, on the tenant's
partition. Every worker follows the topic from its start on; what arrives waits in
``SpendWatch.arrivals``, and its next tick adopts the states of the scopes of tenants it
answers for, unless it has learned them for ``ADOPT_BELOW`` intervals or more itself. The
new owner then forecasts and judges the tenant on its history instead of starting over.
Best effort: a worker that dies without parking (SIGKILL) hands nothing over, and its
tenants start over where they land.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
import mode
from aiokafka.errors import KafkaError

from prsm_events.accounting.scopes import tenant_of
from prsm_events.kafka.compacted_view import CompactedView
from prsm_events.kafka.partitioning import owner_partition
from prsm_events.scoring.scope_states import decode_scope_state, encode_scope_state
from prsm_events.settings import Settings
from prsm_events.watch.spend_watch import SpendWatch
from streams.faust_compat import record_batches

__all__ = ["ScorerHandoff"]

log = logging.getLogger("prsm.scoring")


class ScorerHandoff(mode.Service):
    def __init__(self, app: faust.App, settings: Settings, watch: SpendWatch,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.app = app
        self.watch = watch
        self.topic = settings.topic("scorer-states")
        self.partitions = settings.partitions
        # only what is handed over from now on: a hand-off matters to the worker that owns
        # the partition when it is written, and this one has just started
        self.view = CompactedView(settings.kafka, self.topic, self._arrived, self._refused,
                                  from_end=True)
        self.stats = {"handed": 0, "received": 0, "refused": 0, "adopted": 0}
        self._starting: asyncio.Task[None] | None = None

    def _arrived(self, key: bytes | None, value: bytes | None) -> None:
        if key is None or value is None:
            return
        state = decode_scope_state(value)  # (a header and one run of bytes: cheap)
        if state.interval_s != self.watch.interval_s:
            raise ValueError(f"learned at {state.interval_s} s intervals, this worker scores "
                             f"every {self.watch.interval_s} s")
        self.watch.arrivals[key.decode()] = state  # (its arrays are read at the tick)
        self.stats["received"] += 1

    def _refused(self, topic: str, partition: int, offset: int, key: bytes | None,
                 value: bytes | None, exc: Exception) -> None:
        self.stats["refused"] += 1
        log.warning("scope state %s[%d]@%d not taken: %s", topic, partition, offset, exc)

    async def publish(self, scopes: list[str]) -> None:
        """Hand the state of ``scopes`` (parked at the last tick) to whoever owns their
        tenants' partitions now."""
        records = await asyncio.to_thread(self._records, scopes)
        batches = record_batches(self.app)
        for partition, key, value in records:
            batches.add(self.topic, partition, key, value)
        try:
            for sent in await batches.send():
                await sent
        except KafkaError as exc:  # best effort: the new owner learns them from scratch
            log.error("scope states not handed over (%d scopes): %r", len(records), exc)
            return
        self.stats["handed"] += len(records)

    def _records(self, scopes: list[str]) -> list[tuple[int, bytes, bytes]]:
        parked = self.watch.scorer.parked
        out = []
        for scope in scopes:
            tenant = tenant_of(scope)
            if tenant is None or scope not in parked:
                continue  # (resumed since)
            out.append((owner_partition(tenant, self.partitions), scope.encode(),
                        encode_scope_state(parked.state_of(scope), self.watch.interval_s)))
        return out

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
