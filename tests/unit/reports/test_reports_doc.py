"""docs/reports.md shows every report's default SQL as the code builds it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from prsm_events.reports import REPORTS, ReportOptions

DOC = Path(__file__).resolve().parents[3] / "docs" / "reports.md"


def test_the_doc_shows_each_report_s_default_sql():
    text = DOC.read_text()
    for name, spec in REPORTS.items():
        sql = spec.build(ReportOptions(), datetime.now(UTC)).sql.replace("{db}", "prsm")
        assert f"## {name}\n" in text and f"```sql\n{sql}\n```" in text, name
