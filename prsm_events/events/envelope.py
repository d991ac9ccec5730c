"""Batch envelopes: one Kafka message that carries many events as a JSON array.

A message whose value is a JSON object is one event (any client can send it). A value that
is a JSON array is a batch: each element is an event, validated on its own; a bad element is
dead-lettered with its index and the others are kept. The array may be as large as the
largest record the topics take (``EventLimits.max_batch_bytes``); each element, re-encoded,
must fit ``max_bytes`` like a single-event message; at most ``max_batch_events`` (10,000)
elements. A batch that is not JSON, is empty or holds too many elements is one dead letter.

Given an ``array`` path (``fast_path.usage_array``), a batch that path can vouch for (one the
SDK wrote) is decoded whole, straight from its bytes, with the same outcome.

>>> from datetime import UTC, datetime
>>> from prsm_events.events.usage import UsageEvent
>>> raw = (b'[{"event_id": "a", "ts": "2026-01-01T00:00:00Z", "tenant": "t", "service": "s"},'
...        b' {"event_id": "b"}, 7]')
>>> got = decode_envelope(raw, UsageEvent, EventLimits(), datetime(2026, 1, 1, tzinfo=UTC))
>>> [(e.index, e.event is not None, e.error and e.error.code) for e in got]
[(0, True, None), (1, False, 'missing_field'), (2, False, 'not_an_object')]
>>> got[2].original, got[2].error.detail
(b'7', 'event 2 of the batch: message must be a JSON object')
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from operator import attrgetter
from typing import Any, Generic, TypeVar

import jiter
import msgspec
import orjson

from prsm_events.errors import InvalidEvent
from prsm_events.events.validation import (
    EventLimits,
    FastPath,
    parse_message,
    validated,
)

__all__ = ["Element", "Whole", "decode_batches", "decode_envelope", "decode_envelopes",
           "encode_envelope", "split_array"]

E = TypeVar("E")

ArrayPath = Callable[[bytes], tuple[Sequence[E], Sequence[bytes]] | None]
"""A decoder of a whole batch at once (``fast_path.usage_array``): every event of the array,
each as the fast path and the model would give it, with its JSON as written; or None, and
each element is parsed and judged on its own."""


class Element(msgspec.Struct, Generic[E], frozen=True):
    """One event of a message: valid (``event``) or not (``error``)."""

    index: int | None
    """Its place in the batch; None when the message is one event (or one dead letter)."""
    event: E | None
    error: InvalidEvent | None
    source: Any
    """The message's bytes, or the element as written (bytes) or as parsed."""

    @property
    def original(self) -> bytes | None:
        """What a dead letter of it carries: the element's JSON, or the whole message."""
        if self.source is None or isinstance(self.source, bytes):
            return self.source
        return _element_bytes(self.source)


def decode_envelope(raw: bytes | None, model: type[E], limits: EventLimits, now: datetime,
                    fast: FastPath[E] | None = None) -> list[Element[E]]:
    """The events of one message (a JSON object, or a JSON array of them), each validated
    (by ``fast`` first, when given: ``validate_fields``)."""
    return decode_envelopes([raw], model, limits, now, fast)[0]


def decode_envelopes(raws: Sequence[bytes | None], model: type[E], limits: EventLimits,
                     now: datetime, fast: FastPath[E] | None = None,
                     array: ArrayPath[E] | None = None) -> list[list[Element[E]]]:
    """:func:`decode_envelope` of each message; ``fast`` takes the events of all at once;
    ``array`` takes a batch whole first, where it can: each of its events within the limits
    as it stands (an event as written is its ``source``), else each element on its own."""
    return [d.elements() if isinstance(d, Whole) else d
            for d in decode_batches(raws, model, limits, now, fast, array)]


class Whole(msgspec.Struct, Generic[E], frozen=True):
    """A batch decoded whole: every event valid and in time, with its JSON as written."""

    events: Sequence[E]
    written: Sequence[bytes]

    def elements(self) -> list[Element[E]]:
        """Its events as elements (the source of each: its JSON as written)."""
        return [Element(i, event, None, source)
                for i, (event, source) in enumerate(zip(self.events, self.written, strict=True))]


def decode_batches(raws: Sequence[bytes | None], model: type[E], limits: EventLimits,
                   now: datetime, fast: FastPath[E] | None = None,
                   array: ArrayPath[E] | None = None) -> list[list[Element[E]] | Whole[E]]:
    """:func:`decode_envelopes`, but a batch that ``array`` takes whole stays ``Whole``."""
    whole: dict[int, Whole[E]] = {}
    if array is not None:
        for i, raw in enumerate(raws):
            if raw is not None and raw[:1] == b"[" and len(raw) <= limits.max_batch_bytes:
                found = _at_once(raw, array, limits, now)
                if found is not None:
                    whole[i] = found
    rest_raws = [r for i, r in enumerate(raws) if i not in whole] if whole else raws
    parts = [_parse(raw, limits) for raw in rest_raws]
    if fast is not None:
        objects = [p for message in parts for p in message if type(p.item) is dict]
        for part, event in zip(objects, fast([p.item for p in objects]), strict=True):
            part.event = event
    rest = iter([[_judge(p, model, limits, now) for p in message] for message in parts])
    return [whole[i] if i in whole else next(rest) for i in range(len(raws))]


def _at_once(raw: bytes, array: ArrayPath[E], limits: EventLimits, now: datetime
             ) -> Whole[E] | None:
    """The batch ``raw`` as ``array`` decodes it, if each event is within the limits (its
    size as written, its time); else None."""
    found = array(raw)
    if found is None:
        return None
    events, written = found
    # the events as written are the batch's elements (``array`` proved it): measured in it,
    # without writing each again
    if len(events) > limits.max_batch_events or (len(raw) > limits.max_bytes and max(
            _written_sizes(raw, len(events)), default=0) * _MOST_GROWTH > limits.max_bytes):
        return None
    earliest, latest = limits.times(now)
    if events and (min(map(_TS, events)) < earliest or max(map(_TS, events)) > latest):
        return None
    return Whole(events, written)


_TS = attrgetter("ts")


class _Part(msgspec.Struct):
    """An element of a message, parsed (``item``) or not (``error``)."""

    index: int | None
    item: Any
    error: InvalidEvent | None
    source: Any
    event: Any = None
    """What the fast path made of ``item`` (None: the model judges it)."""


def _parse(raw: bytes | None, limits: EventLimits) -> list[_Part]:
    """The elements of one message (one when it is not an array), parsed."""
    if raw is None or raw.lstrip()[:1] != b"[":
        try:
            return [_Part(None, parse_message(raw, limits), None, raw)]
        except InvalidEvent as exc:
            return [_Part(None, None, exc, raw)]
    if len(raw) > limits.max_batch_bytes:
        return [_whole(raw, "oversized", f"batch is {len(raw)} bytes, the limit is "
                       f"{limits.max_batch_bytes}")]
    items: list[Any]
    spans: list[bytes] | None = None
    try:
        items = jiter.from_json(raw, allow_inf_nan=False, catch_duplicate_keys=True,
                                cache_mode="keys")
    except ValueError as exc:
        # a repeated key anywhere fails the whole parse: find the elements, judge each alone
        spans = split_array(raw) if str(exc).startswith("Detected duplicate key") else None
        if spans is None:
            return [_whole(raw, "invalid_json", f"message is not UTF-8 JSON ({exc})")]
        items = spans
    if not items:
        return [_whole(raw, "empty", "batch has no events")]
    if len(items) > limits.max_batch_events:
        return [_whole(raw, "oversized", f"batch has {len(items)} events, the limit is "
                       f"{limits.max_batch_events}")]
    written = _written_sizes(raw, len(items)) if len(raw) > limits.max_bytes else None
    parts = []
    for i, item in enumerate(items):
        try:
            if spans is not None:
                parsed = parse_message(item, limits)
            else:
                size = 0
                if written is not None and written[i] * _MOST_GROWTH > limits.max_bytes:
                    size = len(_element_bytes(item))
                if size > limits.max_bytes:
                    raise InvalidEvent("oversized", f"event is {size} bytes, the limit "
                                       f"is {limits.max_bytes}")
                parsed = item
            parts.append(_Part(i, parsed, None, item))
        except InvalidEvent as exc:
            parts.append(_Part(i, None, _of_batch(i, exc), item))
    return parts


def _judge(part: _Part, model: type[E], limits: EventLimits, now: datetime) -> Element[E]:
    """The element of ``part``: the fast path's event or the model's, in time; or why not."""
    if part.error is not None:
        return Element(part.index, None, part.error, part.source)
    try:
        event = validated(part.item, part.event, model, limits, now)
    except InvalidEvent as exc:
        error = exc if part.index is None else _of_batch(part.index, exc)
        return Element(part.index, None, error, part.source)
    return Element(part.index, event, None, part.source)


def _of_batch(index: int, exc: InvalidEvent) -> InvalidEvent:
    return InvalidEvent(exc.code, f"event {index} of the batch: {exc.detail}")


def encode_envelope(values: list[bytes]) -> bytes:
    """A batch message from events already encoded as JSON objects.

    >>> encode_envelope([b'{"a":1}', b'{"a":2}'])
    b'[{"a":1},{"a":2}]'
    """
    return b"[" + b",".join(values) + b"]"


def split_array(raw: bytes) -> list[bytes] | None:
    """The bytes of each element of a JSON array, as written; None when ``raw`` is not one
    array (elements themselves are not checked: each is parsed on its own afterwards).

    >>> split_array(b'[{"a": "x,]"}, [1, 2] , 3]')
    [b'{"a": "x,]"}', b'[1, 2]', b'3']
    >>> split_array(b'[1,]'), split_array(b'[1') , split_array(b'[]')
    (None, None, [])
    """
    text = raw.strip()
    if len(text) < 2 or text[0] != 0x5B or text[-1] != 0x5D:
        return None
    parts: list[bytes] = []
    depth, start, in_string, escaped = 0, 1, False, False
    for i in range(1, len(text) - 1):
        c = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif c == 0x5C:  # backslash
                escaped = True
            elif c == 0x22:
                in_string = False
        elif c == 0x22:
            in_string = True
        elif c in (0x7B, 0x5B):
            depth += 1
        elif c in (0x7D, 0x5D):
            depth -= 1
            if depth < 0:
                return None
        elif c == 0x2C and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    if in_string or depth:
        return None
    last = text[start:-1].strip()
    if last:
        parts.append(last)
    elif parts:
        return None  # a trailing comma
    return None if any(not p for p in parts) else parts


_MOST_GROWTH = 5
"""An element re-encoded is at most this many times the size it was written in: only
numbers grow (``1e15`` is ``1000000000000000.0``: 4 bytes to 18); whitespace goes, escapes
shrink. Elements written smaller than ``max_bytes`` over this are not re-encoded to be
measured."""

_RAW_ELEMENTS = msgspec.json.Decoder(list[msgspec.Raw])


def _written_sizes(raw: bytes, count: int) -> list[int]:
    """The size of each of the ``count`` elements of the array ``raw`` as written (each as
    large as the whole when that cannot be read: all are then measured)."""
    try:
        sizes = [len(element) for element in _RAW_ELEMENTS.decode(raw)]
    except msgspec.DecodeError:
        sizes = []
    return sizes if len(sizes) == count else [len(raw)] * count


def _whole(raw: bytes, code: str, detail: str) -> _Part:
    return _Part(None, None, InvalidEvent(code, detail), raw)


def _element_bytes(item: Any) -> bytes:
    """An element parsed from the batch, as JSON again."""
    try:
        return orjson.dumps(item)
    except TypeError:  # an integer beyond 64 bits
        return json.dumps(item, separators=(",", ":"), ensure_ascii=False).encode()
