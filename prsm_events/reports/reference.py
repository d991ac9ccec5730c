"""The reports' reference: each report's summary, options and default SQL as markdown, the
second half of ``docs/reports.md`` (``python -m prsm_events.reports.reference docs/reports.md``
rewrites it; a test keeps the doc equal to the code).

>>> print(reference().splitlines()[0])
## spend
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

from prsm_events.reports import REPORTS
from prsm_events.reports.options import OPTION_NAMES, ReportOptions

__all__ = ["MARK", "reference"]

MARK = "## spend\n"
"""Where the reference begins in docs/reports.md (everything before it is written by hand)."""


def reference() -> str:
    out = []
    for name, spec in REPORTS.items():
        sql = spec.build(ReportOptions(), datetime(2026, 1, 1, tzinfo=UTC)).sql
        takes = ", ".join(f"`--{n}`" for n in OPTION_NAMES if n in spec.takes)
        plot = ", `--plot FILE.png|FILE.html` (with `--every`)" if spec.measure else ""
        out.append(f"## {name}\n\n{spec.summary}\n\nOptions: {takes}{plot}.\n\n"
                   f"```sql\n{sql.replace('{db}', 'prsm')}\n```\n")
    return "\n".join(out)


if __name__ == "__main__":
    doc = Path(sys.argv[1])
    text = doc.read_text()
    doc.write_text(text[:text.index(MARK)] + reference())
