"""A report's records rendered: table, JSON, CSV (money to the nano-USD)."""

from __future__ import annotations

import orjson
import pytest

from prsm_events.reports import ReportResult

RESULT = ReportResult(
    "top-movers", {"by": "service"}, ("service", "cost_usd", "previous_usd", "change_pct"),
    [{"service": "chat", "cost_usd": 3.000000001, "previous_usd": 1.5, "change_pct": 100.0},
     {"service": "search", "cost_usd": 0.25, "previous_usd": 0.0, "change_pct": None}])


def test_csv_keeps_nano_usd_and_an_unknown_as_empty():
    assert RESULT.render("csv").splitlines() == [
        "service,cost_usd,previous_usd,change_pct",
        "chat,3.000000001,1.500000000,100.0",
        "search,0.250000000,0.000000000,"]


def test_json_reads_back_as_the_same_result():
    doc = orjson.loads(RESULT.render("json"))
    assert doc["report"] == "top-movers" and doc["options"] == {"by": "service"}
    assert ReportResult.of_json(doc) == RESULT


def test_table_has_a_line_per_record_and_columns_aligned():
    lines = RESULT.render("table").splitlines()
    assert lines[0].split() == list(RESULT.columns) and len(lines) == 4
    assert lines[2].index("3.000000") == lines[3].index("0.250000")
    assert ReportResult("spend", {}, ("tenant",), []).render("table").startswith("tenant")


def test_an_unknown_format_is_refused():
    with pytest.raises(ValueError, match="--format must be one of table, json, csv"):
        RESULT.render("xml")
