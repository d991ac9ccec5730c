"""SDK: ask for a decision before calling a model.

``decide`` publishes the request on ``requests`` and waits for its decision on
``decisions``; many concurrent calls share one producer and one consumer. When no decision
arrives within ``timeout_s`` the configured fallback applies (``fail="open"`` allows the
request as asked, ``"closed"`` rejects it) and the returned decision says so
(``source == "client"``, reason ``decision_timeout``)::

    async with DecisionClient(Settings(), timeout_s=0.5, fail="closed") as client:
        decision = await client.decide(RequestEvent(...))
        if decision.admitted:
            call(decision.model, decision.provider)
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import ValidationError

from prsm_events.errors import BrokerError
from prsm_events.events.decision import Action, Decision, Reason
from prsm_events.events.request import RequestEvent
from prsm_events.kafka.compacted_view import cancel, fetch_batches, wait_for_partitions
from prsm_events.kafka.connection import started
from prsm_events.sdk.client_lifecycle import AsyncClient
from prsm_events.settings import Settings

__all__ = ["DecisionClient"]



class DecisionClient(AsyncClient):
    """Request/reply over Kafka with a timeout and a stated fallback (see module doc)."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        timeout_s: float = 1.0,
        fail: Literal["open", "closed"] = "closed",
        linger_ms: int = 0,
        fetch_max_wait_ms: int = 100,
    ) -> None:
        if fail not in ("open", "closed"):
            raise ValueError("fail must be 'open' or 'closed'")
        self.settings = settings or Settings()
        self.timeout_s = timeout_s
        self.fail = fail
        self.linger_ms = linger_ms
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.timeouts = 0
        self._waiting: dict[str, asyncio.Future[Decision]] = {}
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        topic = self.settings.topic("decisions")
        kafka = self.settings.kafka
        self._producer = AIOKafkaProducer(
            **kafka.client_args(), acks="all", linger_ms=self.linger_ms,
            enable_idempotence=True)
        self._consumer = AIOKafkaConsumer(
            **kafka.client_args(), group_id=None,
            enable_auto_commit=False, fetch_max_wait_ms=self.fetch_max_wait_ms)
        try:
            await started(self._producer, kafka)
            await started(self._consumer, kafka)
            partitions = await wait_for_partitions(self._consumer, topic)
        except BrokerError:
            await self.stop()
            raise
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        self._consumer.assign(tps)
        await self._consumer.seek_to_end(*tps)
        for tp in tps:  # resolve the end now, so no decision to a later request is missed
            await self._consumer.position(tp)
        self._task = asyncio.create_task(self._receive(), name="decision-client")

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None
        for client in (self._consumer, self._producer):
            if client is not None:
                await client.stop()
        self._consumer = self._producer = None

    async def _receive(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await fetch_batches(self._consumer, "decisions", timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    if not self._waiting or record.value is None:
                        continue
                    try:
                        rid = orjson.loads(record.value).get("request_id")
                    except (orjson.JSONDecodeError, AttributeError):
                        continue
                    future = self._waiting.pop(rid, None)
                    if future is None or future.done():
                        continue
                    try:
                        future.set_result(Decision.model_validate_json(record.value))
                    except ValidationError as exc:
                        future.set_exception(exc)

    async def decide(self, request: RequestEvent | dict[str, Any]) -> Decision:
        """The decision for ``request``, or the fallback after ``timeout_s``."""
        if self._producer is None:
            raise RuntimeError("DecisionClient is not started (use `async with` or start())")
        req = request if isinstance(request, RequestEvent) else RequestEvent.model_validate(
            request)
        future: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        self._waiting[req.request_id] = future
        try:
            async with asyncio.timeout(self.timeout_s):
                await self._producer.send(
                    self.settings.topic("requests"), req.model_dump_json().encode(),
                    key=req.tenant.encode())
                return await future
        except TimeoutError:
            self.timeouts += 1
            return self._fallback(req)
        finally:
            self._waiting.pop(req.request_id, None)

    def _fallback(self, req: RequestEvent) -> Decision:
        allow = self.fail == "open"
        return Decision(
            request_id=req.request_id, ts=datetime.now(UTC), tenant=req.tenant,
            action=Action.ALLOW if allow else Action.REJECT,
            model=req.model if allow else None, provider=req.provider,
            requested_model=req.model, priority=str(req.priority),
            reason=Reason(code="decision_timeout", message=(
                f"no decision within {self.timeout_s}s; failing "
                f"{'open: allowed as requested' if allow else 'closed: rejected'}")),
            source="client")
