"""Quiet logs while a dependency is down: one line per cause per interval, with a count.

Kafka clients log every failed reconnect (thousands of lines a second while a broker is
away). ``RepeatLimiter`` is a logging filter: the first record of a cause (logger, level
and message template) in each interval passes; the repeats are counted, and the next
record of that cause that passes says how many were held back.

>>> import logging
>>> clock = iter([0.0, 0.1, 0.2, 10.5]).__next__
>>> limiter = RepeatLimiter(interval_s=10.0, clock=clock)
>>> records = [logging.LogRecord("aiokafka", logging.ERROR, "", 0, "Unable connect to %s",
...                              ("b1",), None) for _ in range(4)]
>>> [limiter.filter(r) for r in records]
[True, False, False, True]
>>> records[3].getMessage()
'Unable connect to b1 (2 more like this in the last 10.5s)'
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["RepeatLimiter"]


class RepeatLimiter(logging.Filter):
    def __init__(self, interval_s: float = 10.0, min_level: int = logging.WARNING,
                 clock: Callable[[], float] = time.monotonic, max_causes: int = 10_000) -> None:
        super().__init__()
        self.interval_s = interval_s
        self.min_level = min_level
        self.clock = clock
        self.max_causes = max_causes
        self.causes: dict[tuple[str, int, str], tuple[float, int]] = {}
        """Cause -> (when a record of it last passed, repeats held back since)."""
        self.held = 0
        """Records held back in all."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.min_level:
            return True
        template = str(getattr(record, "repeat_template", record.msg))
        cause = (record.name, record.levelno, template)
        now = self.clock()
        passed_at, repeats = self.causes.get(cause, (None, 0))
        if passed_at is not None and now - passed_at < self.interval_s:
            self.causes[cause] = (passed_at, repeats + 1)
            self.held += 1
            return False
        if len(self.causes) >= self.max_causes:
            self.causes.clear()  # many distinct causes: forget old ones rather than grow
        self.causes[cause] = (now, 0)
        if repeats:
            record.repeat_template = template  # what a second handler's limiter keys on
            record.msg = (f"{template} ({repeats} more like this in the last "
                          f"{now - (now if passed_at is None else passed_at):.1f}s)")
        return True
