from datetime import UTC, datetime

import orjson
import pytest

from prsm_events.store.reports import SpendReport, spend_query

ROWS = [("acme", "chat", 3.0, 10, 1000, 100), ("beta", "search", 1.0, 5, 10, 1)]


def test_query_groups_and_filters():
    sql, params = spend_query("model", datetime(2026, 1, 1, tzinfo=UTC))
    assert "GROUP BY provider, model" in sql and "FINAL" in sql
    assert params == {"since": datetime(2026, 1, 1, tzinfo=UTC)}
    with pytest.raises(ValueError, match="--by"):
        spend_query("colour", None)


def test_json_has_shares_summing_to_one():
    doc = orjson.loads(SpendReport("service", ROWS).render("json"))
    assert [r["share"] for r in doc["rows"]] == [0.75, 0.25]
    assert doc["rows"][0] == {"tenant": "acme", "service": "chat", "cost_usd": 3.0,
                              "events": 10, "input_tokens": 1000, "output_tokens": 100,
                              "share": 0.75}


def test_table_and_csv_render_every_row():
    table = SpendReport("service", ROWS).render("table")
    assert table.splitlines()[0].split() == ["tenant", "service", "cost_usd", "events",
                                             "input_tokens", "output_tokens", "share"]
    assert len(table.splitlines()) == 4
    csv = SpendReport("service", ROWS).render("csv").splitlines()
    assert csv[2] == "beta,search,1.000000,5,10,1,0.2500"


def test_empty_report_and_bad_format():
    assert SpendReport("tenant", []).render("table").startswith("tenant")
    with pytest.raises(ValueError, match="--format"):
        SpendReport("tenant", ROWS[:0]).render("xml")
