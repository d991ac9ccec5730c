"""Write dead letters so that none can hold up its partition.

Each letter is cut to fit PRSM_MAX_MESSAGE_BYTES (``DeadLetter.to_json``). A letter the
producer or the broker still refuses with an error that retrying cannot fix (a topic whose
limit was lowered while the worker ran, say) is written again as its summary: code, reason,
source, the original's size and SHA-256, no original; should even that be refused, the loss
is logged as an error and counted (``unwritable``) rather than holding the partition for
good. Retriable errors (the broker away) propagate: the batch is not acknowledged and is
processed again later, nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

import faust
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from faust.exceptions import ProducerSendError

from prsm_events.events.dead_letter import DeadLetter

__all__ = ["DeadLetterWriter", "SendRecord", "aiokafka_sender", "faust_sender"]

SendRecord = Callable[[str, bytes | None, bytes], Awaitable[None]]
"""Send (topic, key, value) and wait until the broker has it."""


def faust_sender(app: faust.App) -> SendRecord:
    """Send with the worker's Faust producer (flushed before each commit)."""
    async def send(topic: str, key: bytes | None, value: bytes) -> None:
        delivery = await app.producer.send(topic, key, value, None, None, None)
        await delivery
    return send


def aiokafka_sender(producer: AIOKafkaProducer) -> SendRecord:
    """Send with a plain aiokafka producer (the sink running on its own)."""
    async def send(topic: str, key: bytes | None, value: bytes) -> None:
        await (await producer.send(topic, value, key=key))
    return send

log = logging.getLogger("prsm.dlq")

RECORD_OVERHEAD = 512
"""Bytes the producer counts around a record's key and value (its own size check)."""


def _unfixable(exc: BaseException) -> bool:
    """A send error that the same record would meet again (too large, invalid)."""
    cause = exc.__cause__ if isinstance(exc, ProducerSendError) else exc
    return isinstance(cause, KafkaError) and not cause.retriable


class DeadLetterWriter:
    def __init__(self, send: SendRecord, topic: str, max_bytes: int) -> None:
        self.send = send
        self.topic = topic
        self.max_bytes = max_bytes
        self.summaries = 0
        """Letters written as their summary because the whole letter was refused."""
        self.unwritable = 0
        """Letters whose summary was refused too (logged as errors; the topic is broken)."""

    async def write(self, letters: Sequence[DeadLetter], now: datetime) -> None:
        """Write every letter and wait until the broker has them."""
        if letters:
            await asyncio.gather(*(self._write_one(letter, now) for letter in letters))

    async def _send(self, key: bytes | None, value: bytes) -> None:
        await self.send(self.topic, key, value)

    async def _write_one(self, letter: DeadLetter, now: datetime) -> None:
        key = letter.record_key
        room = self.max_bytes - len(key or b"") - RECORD_OVERHEAD
        try:
            await self._send(key, letter.to_json(now, room))
        except Exception as exc:
            if not _unfixable(exc):
                raise
            self.summaries += 1
            log.warning("dead letter of %s[%d]@%d refused (%s); writing its summary instead",
                        letter.source_topic, letter.source_partition, letter.source_offset, exc)
            try:
                await self._send(letter.record_key, letter.summary_json(now))
            except Exception as again:
                if not _unfixable(again):
                    raise
                self.unwritable += 1
                log.error("dead letter of %s[%d]@%d (%s) could not be written at all: %s",
                          letter.source_topic, letter.source_partition, letter.source_offset,
                          letter.code, again)
