"""Dead letters: a rejected message with the reason and where it came from, always sendable.

A dead letter carries the original byte for byte (as text when it is UTF-8, and as base64)
while that fits in ``max_bytes``; a larger original is cut to what fits and the letter says
so (``truncated``), with the original's size and SHA-256, so that a dead letter can always be
written and never holds up its partition.

>>> dl = DeadLetter("invalid_json", "invalid_json: not JSON", "prsm.usage", 2, 41, b"k", b"\\xff")
>>> doc = orjson.loads(dl.to_json(now=datetime(2026, 1, 1, tzinfo=UTC)))
>>> doc["source_offset"], doc["original"], doc["original_base64"], doc["truncated"]
(41, None, '/w==', False)
>>> big = DeadLetter("oversized", "oversized: ...", "prsm.usage", 0, 7, b"k", b"x" * 50_000)
>>> doc = orjson.loads(big.to_json(max_bytes=8000))
>>> doc["truncated"], 7000 < len(doc["original"]) < 8000, doc["original_bytes"]
(True, True, 50000)
>>> doc["original_sha256"] == hashlib.sha256(b"x" * 50_000).hexdigest()
True
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

__all__ = ["DEAD_LETTER_MIN_BYTES", "MAX_KEY_BYTES", "DeadLetter"]

MAX_KEY_BYTES = 1024
"""A longer message key is cut to this many bytes in the dead letter and as its record key."""

DEAD_LETTER_MIN_BYTES = 4096
"""Room a dead letter needs without its original (reason, source, key, size and hash)."""

_MAX_REASON_CHARS = 1000


@dataclass(frozen=True, slots=True)
class DeadLetter:
    code: str
    reason: str
    source_topic: str
    source_partition: int
    source_offset: int
    key: bytes | None
    original: bytes | None
    source_index: int | None = None
    """The event's place in a batch message (``events.envelope``); None for a whole message."""

    @property
    def record_key(self) -> bytes | None:
        """The dead letter's own record key: the original key, cut to ``MAX_KEY_BYTES``."""
        return None if self.key is None else self.key[:MAX_KEY_BYTES]

    def _envelope(self, now: datetime | None) -> dict[str, Any]:
        original = self.original
        return {
            "code": self.code,
            "reason": self.reason[:_MAX_REASON_CHARS],
            "source_topic": self.source_topic,
            "source_partition": self.source_partition,
            "source_offset": self.source_offset,
            "source_index": self.source_index,
            "key": None if self.key is None
            else self.key[:MAX_KEY_BYTES].decode("utf-8", "replace"),
            "original": None,
            "original_base64": None,
            "original_bytes": None if original is None else len(original),
            "original_sha256": None if original is None
            else hashlib.sha256(original).hexdigest(),
            "truncated": False,
            "dead_lettered_at": (now or datetime.now(UTC)).isoformat(),
        }

    def to_json(self, now: datetime | None = None, max_bytes: int | None = None) -> bytes:
        """The message for the dead-letter topic (UTF-8 JSON), at most ``max_bytes`` long
        (at least ``DEAD_LETTER_MIN_BYTES``) when given."""
        doc = self._envelope(now)
        original = self.original
        if original is None:
            return orjson.dumps(doc)
        text = _utf8(original)
        doc["original"] = text
        doc["original_base64"] = base64.b64encode(original).decode("ascii")
        whole = orjson.dumps(doc)
        if max_bytes is None or len(whole) <= max_bytes:
            return whole
        return self._cut(doc, text, max(max_bytes, DEAD_LETTER_MIN_BYTES))

    def summary_json(self, now: datetime | None = None) -> bytes:
        """The dead letter without its original (size and hash only): the fallback when the
        whole letter could not be written."""
        doc = self._envelope(now)
        doc["truncated"] = self.original is not None
        return orjson.dumps(doc)

    def _cut(self, doc: dict[str, Any], text: str | None, max_bytes: int) -> bytes:
        """The letter with the longest prefix of the original that fits: as text when the
        original is UTF-8 (JSON escapes can grow it, so the cut is searched), else base64."""
        original = self.original
        assert original is not None
        doc["truncated"] = True
        doc["original"] = doc["original_base64"] = None
        room = max_bytes - len(orjson.dumps(doc)) - 16
        if text is None:
            doc["original_base64"] = base64.b64encode(original[: max(0, room) // 4 * 3]).decode()
            return orjson.dumps(doc)
        low, high = 0, min(len(text), max(0, room))
        while low < high:  # the longest prefix whose escaped form fits
            middle = (low + high + 1) // 2
            if len(orjson.dumps(text[:middle])) - 2 <= room:
                low = middle
            else:
                high = middle - 1
        doc["original"] = text[:low]
        return orjson.dumps(doc)


def _utf8(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
