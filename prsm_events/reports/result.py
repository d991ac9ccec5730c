"""A report's answer: its records, rendered as a table, JSON or CSV, or drawn (``plot``).

>>> r = ReportResult("spend", {"by": "service"}, ("service", "cost_usd", "share"),
...                  [{"service": "chat", "cost_usd": 2.5, "share": 1.0}])
>>> print(r.render("csv").strip())
service,cost_usd,share
chat,2.500000000,1.0000
>>> print(r.render("table").strip())
service  cost_usd  share
-------  --------  ------
chat     2.500000  1.0000
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["REPORT_FORMATS", "ReportResult"]

REPORT_FORMATS = ("table", "json", "csv")


@dataclass
class ReportResult:
    name: str
    options: dict[str, Any]
    columns: tuple[str, ...]
    records: list[dict[str, Any]]

    def as_json(self) -> dict[str, Any]:
        """What ``GET /reports/NAME`` answers (``of_json`` reads it back)."""
        return {"report": self.name, "options": self.options, "columns": list(self.columns),
                "rows": self.records}

    @classmethod
    def of_json(cls, doc: dict[str, Any]) -> ReportResult:
        return cls(doc["report"], doc["options"], tuple(doc["columns"]), doc["rows"])

    def render(self, fmt: str) -> str:
        if fmt == "json":
            return orjson.dumps(self.as_json(), option=orjson.OPT_INDENT_2).decode() + "\n"
        if fmt == "csv":  # money to the nano-USD, as stored
            buf = io.StringIO()
            writer = csv.writer(buf, lineterminator="\n")
            writer.writerow(self.columns)
            for rec in self.records:
                writer.writerow([_cell(rec[c], c, 9) for c in self.columns])
            return buf.getvalue()
        if fmt == "table":
            return _table(self.columns, [[_cell(r[c], c, 6) for c in self.columns]
                                         for r in self.records])
        raise ValueError(f"--format must be one of {', '.join(REPORT_FORMATS)}, not {fmt!r}")


def _cell(value: Any, column: str, places: int) -> str:
    if value is None:
        return ""
    if column.endswith("_usd") and isinstance(value, int | float):
        return f"{value:.{places}f}"
    if column == "share":
        return f"{value:.4f}"
    if isinstance(value, float):
        return f"{value:.4g}" if column != "change_pct" else f"{value:.1f}"
    return str(value)


def _table(columns: tuple[str, ...], rows: list[list[str]]) -> str:
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c)
              for i, c in enumerate(columns)]
    out = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip(),
           "  ".join("-" * w for w in widths)]
    for r in rows:
        out.append("  ".join(v.rjust(w) if _numeric(v) else v.ljust(w)
                             for v, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(out) + "\n"


def _numeric(text: str) -> bool:
    return text[:1].isdigit() or (text[:1] == "-" and text[1:2].isdigit())
