"""The decision agent: requests -> AdmissionDesk -> decisions (and DLQ, ledger changelogs).

Requests are processed as they come; while more are already queued they are gathered (up
to PRSM_BATCH_MAX) so that a burst costs one changelog flush. Per batch: decide each request
and reserve in the ledger, then, if no rebalance began since the batch was taken, hand its
changelog records and its decisions to the producer together (one record batch per
partition, ``streams.record_batches``): a decision standing on a reservation carries it in a
header, so whoever owns the partition next holds it even if its changelog record was lost
(``streams.answered_log``). Once the broker has them all, acknowledge. Meanwhile the next
batch is decided (a pipelined agent, ``OrderedDelivery.agent``: up to four batches wait for
the broker). A crash before the acknowledgement re-delivers the requests; a re-delivered
admitted request finds its reservation and is answered ``already_decided``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from functools import partial

import faust

from prsm_events.accounting.ingest import RawMessage, processing_error
from prsm_events.errors import InvalidEvent
from prsm_events.events.dead_letter import DeadLetter
from prsm_events.events.decision import encode_decision
from prsm_events.events.fast_path import Request
from prsm_events.events.validation import EventLimits, decode_request, decode_requests
from prsm_events.settings import Settings
from streams.answered_log import answered_ends, reservation_header
from streams.batching import Delivered
from streams.config_feeds import ConfigFeeds
from streams.control import SpendControl
from streams.dead_letter_writer import DeadLetterWriter
from streams.faust_compat import record_batches, steady
from streams.fencing import Fenced
from streams.ordered_delivery import Batch, OrderedDelivery
from streams.partition_progress import RecordProbe
from streams.raw_topics import raw_topic

__all__ = ["register_decisions"]

log = logging.getLogger("prsm.decisions")


def register_decisions(
    app: faust.App, settings: Settings, control: SpendControl, feeds: ConfigFeeds,
    limits: EventLimits, dead_letters: DeadLetterWriter, probe: RecordProbe,
) -> None:
    requests_topic = raw_topic(app, settings.topic("requests"))
    decisions_name = settings.topic("decisions")
    stats = control.stats
    delivery = OrderedDelivery(app, requests_topic, feeds, control, probe, ready_poll_s=0.02,
                               buffer_high=max(4096, settings.batch_max * 2))

    def decode_all(events: list[Delivered], stamp: datetime
                   ) -> list[Request | InvalidEvent] | list[None]:
        """The batch's requests decoded together; should that raise (a bug), None for each,
        which is then decoded alone, so that only one that raises is a processing error."""
        try:
            return decode_requests([e.message.value for e in events], limits, stamp)
        except Exception:
            return [None] * len(events)

    stages = stats.stages

    async def hand(batch: Batch) -> asyncio.Future[None]:
        events = batch.events
        started = time.monotonic()
        now = time.time()
        since_epoch = now - started
        stages.observe("fetched", [e.arrived + since_epoch - e.message.timestamp
                                   for e in events if e.message.timestamp > 0])
        stages.observe("queued", [started - e.arrived for e in events])
        stamp = datetime.fromtimestamp(now, UTC)
        stats.expired += len(control.ledger.expire(now))
        answers = record_batches(app)
        reservations = control.ledger.reservations
        dead: list[DeadLetter] = []
        for event, decoded in zip(events, decode_all(events, stamp), strict=True):
            m = event.message
            try:
                request = (decode_request(m.value, limits, stamp) if decoded is None
                           else decoded)
                if isinstance(request, InvalidEvent):
                    raise request
                decision = control.desk.admit(request, stamp)
            except InvalidEvent as exc:
                dead.append(DeadLetter(exc.code, exc.reason, m.topic, m.partition, m.offset,
                                       m.key, m.value))
                continue
            except Exception as exc:  # a bug must never hold the partition: keep the request
                log.exception("request %s[%d]@%d could not be processed", m.topic, m.partition,
                              m.offset)
                dead.append(processing_error(exc, RawMessage(m.topic, m.partition, m.offset,
                                                             m.key, m.value)))
                continue
            stats.decided[decision.action.value, decision.reason.code] += 1
            if decision.reason.code == "already_decided":
                stats.redelivered += 1
            elif decision.reason.code == "awaiting_allotment":
                control.escrow_due.set()
            else:
                control.meter_demand(request, decision, now)
            key = f"{request.tenant}|{request.request_id}"
            row = reservations.get(key)  # the decision stands on it: it carries it
            answers.add_keyed(decisions_name, request.tenant.encode(),
                              encode_decision(decision),
                              () if row is None else (reservation_header(key, row),))
        answered = len(answers)
        await control.persist(wait=False)
        # every changelog record handed so far, this batch's and earlier ones: once they and
        # the decisions are with the broker, no decision below these is missing from the
        # changelog (an already_decided answer stands on an earlier batch's reservation)
        reserved = list(control.writer.in_flight)
        if not batch.still_current():  # the new owner may be restoring: it answers them
            raise Fenced(f"a rebalance began: {answered} decisions withheld, their requests "
                         "are read again by the partitions' owner")
        sent = await answers.send()
        handed = time.monotonic()
        stages.observe_batch("decided", handed - started, len(events))
        dead_sent = asyncio.ensure_future(dead_letters.write(dead, stamp))

        async def delivered() -> None:
            try:
                await asyncio.gather(*sent, *reserved)
            finally:
                await dead_sent
            stages.observe_batch("answered", time.monotonic() - handed, answered)
            stats.requests += answered
            stats.dead_lettered += len(dead)
            batch.on_done = partial(control.note_answered, answered_ends(sent))
        return asyncio.ensure_future(delivered())

    # answered as they come: while more are queued they are gathered into one batch
    delivery.agent("decide-requests", hand, size=settings.batch_max,
                   within_s=settings.batch_within_s, answer_when_idle=True)

    @app.timer(interval=1.0)  # type: ignore[untyped-decorator]
    async def expire_reservations() -> None:
        """Release reservations past their TTL; re-check blocked budgets; announce."""
        if not (steady(app) and feeds.ready.is_set()):
            return
        now = time.time()
        stats.expired += len(control.ledger.expire(now))
        control.lift_expired(now)
        try:
            await control.persist()
            await control.announce(now)
        except Fenced:  # a rebalance began: the rows stay marked for the next flush
            return
        await delivery.progress.check()
        stats.rewinds, stats.rereads = delivery.progress.rewinds, delivery.progress.rereads
        stats.undelivered = delivery.progress.epoch
        stats.fetch_pauses = delivery.buffer.pauses
