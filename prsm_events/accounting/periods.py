"""Budget periods: calendar day/week/month in a time zone, or rolling 1h/24h/7d windows.

Calendar periods start at local midnight (weeks on Monday, months on the 1st) and end where
the next one starts. Rolling windows count spend in buckets (1 min for 1h, 15 min for 24h,
1 h for 7d); a bucket counts while any part of it lies inside the window, so rolling spend
is never under-stated.

>>> from datetime import datetime, UTC
>>> now = datetime(2026, 3, 15, 12, tzinfo=UTC)
>>> [t.isoformat() for t in calendar_bounds("month", "UTC", now)]
['2026-03-01T00:00:00+00:00', '2026-04-01T00:00:00+00:00']
>>> [t.isoformat() for t in calendar_bounds("day", "America/New_York", now)]
['2026-03-15T04:00:00+00:00', '2026-03-16T04:00:00+00:00']
>>> ROLLING["24h"], BUCKET_S["24h"]
(86400, 900)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["BUCKET_S", "CALENDAR", "PERIODS", "ROLLING", "calendar_bounds", "check_timezone"]

CALENDAR = ("day", "week", "month")
ROLLING: dict[str, int] = {"1h": 3600, "24h": 86400, "7d": 7 * 86400}
"""Rolling window lengths in seconds."""
BUCKET_S: dict[str, int] = {"1h": 60, "24h": 900, "7d": 3600}
PERIODS = (*CALENDAR, *ROLLING)


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def check_timezone(name: str) -> str:
    """The name if it is an IANA time zone, else ValueError."""
    try:
        _zone(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (use an IANA name like 'Europe/Berlin')"
        ) from None
    return name


def calendar_bounds(period: str, tz: str, now: datetime) -> tuple[datetime, datetime]:
    """Start and end (UTC) of the calendar ``period`` containing ``now``."""
    zone = _zone(tz)
    local = now.astimezone(zone)
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        end = start + timedelta(days=1)
    elif period == "week":
        start -= timedelta(days=start.weekday())
        end = start + timedelta(days=7)
    elif period == "month":
        start = start.replace(day=1)
        end = start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    else:
        raise ValueError(f"not a calendar period: {period!r}")
    # local wall times -> UTC (re-attach the zone so DST changes inside the period count)
    start_utc = start.replace(tzinfo=None).replace(tzinfo=zone).astimezone(UTC)
    end_utc = end.replace(tzinfo=None).replace(tzinfo=zone).astimezone(UTC)
    return start_utc, end_utc
