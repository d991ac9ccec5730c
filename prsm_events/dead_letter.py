"""Dead letters: a rejected message, byte for byte, with the reason and where it came from.

>>> dl = DeadLetter("invalid_json", "invalid_json: not JSON", "prsm.usage", 2, 41, b"k", b"\\xff")
>>> doc = orjson.loads(dl.to_json(now=datetime(2026, 1, 1, tzinfo=UTC)))
>>> doc["source_offset"], doc["original"], doc["original_base64"]
(41, None, '/w==')
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

__all__ = ["DeadLetter"]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    code: str
    reason: str
    source_topic: str
    source_partition: int
    source_offset: int
    key: bytes | None
    original: bytes | None

    def to_json(self, now: datetime | None = None) -> bytes:
        """The message for the dead-letter topic (UTF-8 JSON)."""
        text: str | None = None
        if self.original is not None:
            try:
                text = self.original.decode("utf-8")
            except UnicodeDecodeError:
                text = None
        return orjson.dumps(
            {
                "code": self.code,
                "reason": self.reason,
                "source_topic": self.source_topic,
                "source_partition": self.source_partition,
                "source_offset": self.source_offset,
                "key": None if self.key is None else self.key.decode("utf-8", "replace"),
                "original": text,
                "original_base64": None
                if self.original is None
                else base64.b64encode(self.original).decode("ascii"),
                "dead_lettered_at": (now or datetime.now(UTC)).isoformat(),
            }
        )
