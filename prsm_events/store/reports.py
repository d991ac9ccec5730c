"""Reports: SQL over the ``usage`` and ``decisions`` tables and rendering as table, JSON or
CSV. ``spend``: cost by tenant, service or model; ``decisions``: decisions by action and
reason, with the estimated cost of each group.

>>> sql, params = spend_query("service", since=None)
>>> "GROUP BY tenant, service" in sql
True
>>> report = SpendReport("service", [("acme", "chat", 2.5, 10, 100, 50)])
>>> print(report.render("csv").strip())
tenant,service,cost_usd,events,input_tokens,output_tokens,share
acme,chat,2.500000,10,100,50,1.0000
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

__all__ = ["REPORT_FORMATS", "SPEND_DIMENSIONS", "DecisionsReport", "SpendReport",
           "decisions_query", "spend_query"]

SPEND_DIMENSIONS: dict[str, tuple[str, ...]] = {
    "tenant": ("tenant",),
    "service": ("tenant", "service"),
    "model": ("provider", "model"),
}
REPORT_FORMATS = ("table", "json", "csv")
_MEASURES = ("cost_usd", "events", "input_tokens", "output_tokens")


def spend_query(by: str, since: datetime | None) -> tuple[str, dict[str, Any]]:
    """SQL and parameters of the spend report grouped ``by`` a dimension."""
    if by not in SPEND_DIMENSIONS:
        raise ValueError(f"--by must be one of {', '.join(SPEND_DIMENSIONS)}, not {by!r}")
    keys = ", ".join(SPEND_DIMENSIONS[by])
    where = "WHERE ts >= {since:DateTime64(3, 'UTC')}" if since else ""
    sql = (
        f"SELECT {keys}, sum(cost_usd) AS cost_usd, count() AS events, "
        "sum(input_tokens) AS input_tokens, sum(output_tokens + reasoning_tokens) AS "
        f"output_tokens FROM {{db}}.usage FINAL {where} GROUP BY {keys} "
        "ORDER BY cost_usd DESC, " + keys
    )
    return sql, ({"since": since} if since else {})


@dataclass
class SpendReport:
    by: str
    rows: list[tuple[Any, ...]]

    @property
    def columns(self) -> tuple[str, ...]:
        return (*SPEND_DIMENSIONS[self.by], *_MEASURES, "share")

    def records(self) -> list[dict[str, Any]]:
        total = sum(float(r[-4]) for r in self.rows) or 1.0
        keys = SPEND_DIMENSIONS[self.by]
        out = []
        for row in self.rows:
            rec: dict[str, Any] = dict(zip(keys, (str(v) for v in row[: len(keys)]), strict=True))
            cost, events, inp, outp = row[len(keys):]
            rec.update(cost_usd=float(cost), events=int(events), input_tokens=int(inp),
                       output_tokens=int(outp), share=float(cost) / total)
            out.append(rec)
        return out

    def render(self, fmt: str) -> str:
        return _render({"report": "spend", "by": self.by}, self.columns, self.records(), fmt)


DECISIONS_COLUMNS = ("action", "reason_code", "decisions", "est_cost_usd")


def decisions_query(since: datetime | None) -> tuple[str, dict[str, Any]]:
    """SQL and parameters of the decisions report: by action and reason, most first.

    >>> "GROUP BY action, reason_code" in decisions_query(None)[0]
    True
    """
    where = "WHERE ts >= {since:DateTime64(3, 'UTC')}" if since else ""
    sql = ("SELECT action, reason_code, count() AS decisions, sum(est_cost_usd) AS "
           f"est_cost_usd FROM {{db}}.decisions FINAL {where} GROUP BY action, reason_code "
           "ORDER BY decisions DESC, action, reason_code")
    return sql, ({"since": since} if since else {})


@dataclass
class DecisionsReport:
    """Decisions by action and reason (every decision sent: a request deferred and asked
    again counts each time).

    >>> print(DecisionsReport([("allow", "within_budget", 3, 0.0225)]).render("csv").strip())
    action,reason_code,decisions,est_cost_usd
    allow,within_budget,3,0.022500
    """

    rows: list[tuple[Any, ...]]
    columns = DECISIONS_COLUMNS

    def records(self) -> list[dict[str, Any]]:
        return [{"action": str(a), "reason_code": str(r), "decisions": int(n),
                 "est_cost_usd": float(c)} for a, r, n, c in self.rows]

    def render(self, fmt: str) -> str:
        return _render({"report": "decisions"}, self.columns, self.records(), fmt)


def _render(head: dict[str, Any], columns: tuple[str, ...], records: list[dict[str, Any]],
            fmt: str) -> str:
    if fmt == "json":
        return orjson.dumps({**head, "rows": records}, option=orjson.OPT_INDENT_2).decode()
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        for rec in records:
            writer.writerow([_cell(rec[c], c) for c in columns])
        return buf.getvalue()
    if fmt == "table":
        return _table(columns, [[_cell(r[c], c) for c in columns] for r in records])
    raise ValueError(f"--format must be one of {', '.join(REPORT_FORMATS)}, not {fmt!r}")


def _cell(value: Any, column: str) -> str:
    if column in ("cost_usd", "est_cost_usd"):
        return f"{value:.6f}"
    if column == "share":
        return f"{value:.4f}"
    return str(value)


def _table(columns: tuple[str, ...], rows: list[list[str]]) -> str:
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c)
              for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    for r in rows:
        out.append("  ".join(v.rjust(w) if v[:1].isdigit() else v.ljust(w)
                             for v, w in zip(r, widths, strict=True)))
    return "\n".join(out) + "\n"
