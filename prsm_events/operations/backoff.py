"""Exponential backoff with a cap and full jitter, as a plain iterator of delays.

>>> delays = Backoff(initial=0.1, cap=1.0, jitter=False)
>>> [next(delays) for _ in range(6)]
[0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass
class Backoff:
    initial: float = 0.2
    cap: float = 30.0
    factor: float = 2.0
    jitter: bool = True
    _attempt: int = field(default=0, init=False)

    def __iter__(self) -> Backoff:
        return self

    def __next__(self) -> float:
        delay = min(self.cap, self.initial * self.factor**self._attempt)
        self._attempt = min(self._attempt + 1, 64)
        return random.uniform(delay / 2, delay) if self.jitter else delay
