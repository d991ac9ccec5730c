"""What a report is asked for: a time step, dimensions, a tenant, a time range, a row limit.

One parser for the CLI's options and the HTTP API's query parameters (strings in), so both
refuse the same input with the same message.

>>> o = ReportOptions.parse({"every": "day", "by": "service,tag:team", "since": "2026-11-01"},
...                         takes={"every", "by", "since"})
>>> o.every, o.by, o.since.isoformat()
('day', ('service', 'tag:team'), '2026-11-01T00:00:00+00:00')
>>> ReportOptions.parse({"by": "colour"}, takes={"by"})
Traceback (most recent call last):
prsm_events.reports.options.ReportError: by: 'colour' is not a dimension; one of tenant, ...
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from prsm_events.errors import PrsmError

__all__ = ["DIMENSIONS", "EVERY", "OPTION_NAMES", "ReportError", "ReportOptions"]

DIMENSIONS: dict[str, str] = {
    "tenant": "tenant", "service": "service", "team": "team", "api_key": "api_key_id",
    "provider": "provider", "model": "model", "kind": "kind", "status": "status"}
"""Usage dimensions a report groups by (name -> column); also ``tag:KEY``, a tag's value."""
EVERY = ("hour", "day")
OPTION_NAMES = ("every", "by", "tenant", "since", "until", "limit")
MAX_TAG_KEY = 128


class ReportError(PrsmError, ValueError):
    """A report asked for with options it cannot take."""


@dataclass(frozen=True)
class ReportOptions:
    every: str | None = None
    by: tuple[str, ...] = ()
    tenant: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int | None = None

    @classmethod
    def parse(cls, given: Mapping[str, str | None], takes: Collection[str]) -> ReportOptions:
        """Options from strings (``None`` or ``""``: not given); ``takes``: the options the
        report takes (another one given is an error)."""
        values = {k: v for k, v in given.items() if v not in (None, "")}
        extra = sorted(set(values) - set(takes))
        if extra:
            raise ReportError(f"this report does not take {', '.join(extra)}; it takes "
                              f"{', '.join(n for n in OPTION_NAMES if n in takes) or 'none'}")
        every = values.get("every")
        if every is not None and every not in EVERY:
            raise ReportError(f"every: {every!r} is not one of {', '.join(EVERY)}")
        by = tuple(d.strip() for d in (values.get("by") or "").split(",") if d.strip())
        for d in by:
            _check_dimension(d)
        if len(set(by)) != len(by):
            raise ReportError(f"by: a dimension is named twice in {values['by']!r}")
        since, until = _time(values, "since"), _time(values, "until")
        if since and until and since >= until:
            raise ReportError(f"since ({since.isoformat()}) must be before until "
                              f"({until.isoformat()})")
        limit = None
        if values.get("limit") is not None:
            text = str(values["limit"])
            if not text.isdigit() or not 0 < int(text) <= 100_000:
                raise ReportError(f"limit: {text!r} is not a whole number from 1 to 100000")
            limit = int(text)
        return cls(every, by, values.get("tenant"), since, until, limit)

    def query_params(self) -> dict[str, str]:
        """The options as the HTTP API's query parameters (what ``parse`` reads back)."""
        out = {}
        for name, value in asdict(self).items():
            if value in (None, ()):
                continue
            out[name] = (value.isoformat() if isinstance(value, datetime)
                         else ",".join(value) if isinstance(value, tuple) else str(value))
        return out

    def described(self) -> dict[str, Any]:
        """The options given, for a report's heading."""
        return dict(self.query_params())


def _check_dimension(name: str) -> None:
    if name in DIMENSIONS:
        return
    if name.startswith("tag:") and 0 < len(name) - 4 <= MAX_TAG_KEY:
        return
    raise ReportError(f"by: {name!r} is not a dimension; one of {', '.join(DIMENSIONS)}, or "
                      "tag:KEY")


def _time(values: Mapping[str, str | None], name: str) -> datetime | None:
    text = values.get(name)
    if text is None:
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ReportError(f"{name}: {text!r} is not an ISO 8601 time (e.g. "
                          "2026-11-01T00:00:00Z)") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)
