"""docs/reports.md shows every report's summary, options and default SQL as the code builds
them (``python -m prsm_events.reports.reference docs/reports.md`` rewrites that part)."""

from __future__ import annotations

from pathlib import Path

from prsm_events.reports.reference import MARK, reference

DOC = Path(__file__).resolve().parents[3] / "docs" / "reports.md"


def test_the_doc_s_reference_is_the_code_s():
    text = DOC.read_text()
    assert text[text.index(MARK):] == reference()
