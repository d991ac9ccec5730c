"""Report pictures: lines per group over the periods, busiest first, the rest as ``other``;
PNG or a self-contained HTML page."""

from __future__ import annotations

import pytest

from prsm_events.reports import ReportResult
from prsm_events.reports.plot import MAX_LINES, lines_of, plot_report

PERIODS = [f"2026-11-0{d}T00:00:00+00:00" for d in (1, 2, 3)]


def spend(groups: int) -> ReportResult:
    records = [{"period": p, "service": f"s{g}", "cost_usd": float(g + 1) * (i + 1)}
               for g in range(groups) for i, p in enumerate(PERIODS) if (g + i) % 4]
    return ReportResult("spend", {"every": "day", "by": "service"},
                        ("period", "service", "cost_usd"), records)


def test_the_busiest_groups_get_lines_and_the_rest_is_one_line_with_their_money():
    result = spend(MAX_LINES + 3)
    periods, lines = lines_of(result.records, "cost_usd", ["service"])
    assert periods == PERIODS and len(lines) == MAX_LINES + 1
    totals: dict[str, float] = {}
    for r in result.records:
        totals[r["service"]] = totals.get(r["service"], 0.0) + r["cost_usd"]
    busiest = sorted(totals, key=lambda n: (-totals[n], n))
    assert list(lines) == [*busiest[:MAX_LINES], "other"]
    assert lines["other"] == [sum(r["cost_usd"] for r in result.records
                                  if r["period"] == p and r["service"] in busiest[MAX_LINES:])
                              for p in PERIODS]
    assert sum(map(sum, lines.values())) == pytest.approx(
        sum(r["cost_usd"] for r in result.records))  # nothing leaves the picture
    two = lines_of(spend(2).records, "cost_usd", ["service"])[1]
    assert two["s0"] == [0.0, 2.0, 3.0]  # a period without a row of s0 is a zero


def test_png_and_html_are_written(tmp_path):
    png, page = tmp_path / "spend.png", tmp_path / "spend.html"
    plot_report(spend(3), "cost_usd", ["service"], png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    plot_report(spend(3), "cost_usd", ["service"], page)
    text = page.read_text()
    assert "<svg" in text and "<script" not in text and "s2" in text
    assert "period" in text.split("<pre>")[1]  # the table beneath


def test_a_picture_needs_a_time_axis_and_a_known_file_type(tmp_path):
    flat = ReportResult("spend", {}, ("service", "cost_usd"), [])
    with pytest.raises(ValueError, match="--every"):
        plot_report(flat, "cost_usd", ["service"], tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"\.png or \.html"):
        plot_report(spend(1), "cost_usd", ["service"], tmp_path / "x.pdf")
