"""Report options: one parser for the CLI and the HTTP API; bad input refused with the
reason, before any SQL is built."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from prsm_events.reports import REPORTS, ReportError, ReportOptions
from prsm_events.reports.options import OPTION_NAMES

ALL = frozenset(OPTION_NAMES)


@pytest.mark.parametrize(("given", "message"), [
    ({"every": "week"}, "every: 'week' is not one of hour, day"),
    ({"by": "colour"}, "by: 'colour' is not a dimension"),
    ({"by": "tag:"}, "by: 'tag:' is not a dimension"),
    ({"by": "tag:" + "k" * 129}, "is not a dimension"),
    ({"by": "model,model"}, "a dimension is named twice"),
    ({"by": "model;DROP TABLE usage"}, "is not a dimension"),
    ({"since": "yesterday"}, "since: 'yesterday' is not an ISO 8601 time"),
    ({"until": "2026-13-01"}, "until: '2026-13-01' is not an ISO 8601 time"),
    ({"since": "2026-02-01", "until": "2026-01-01"}, "must be before until"),
    ({"since": "2026-01-01", "until": "2026-01-01"}, "must be before until"),
    ({"limit": "0"}, "limit: '0' is not a whole number"),
    ({"limit": "-5"}, "limit: '-5'"),
    ({"limit": "1e3"}, "limit: '1e3'"),
    ({"limit": "100001"}, "limit: '100001'"),
])
def test_bad_options_are_refused_with_the_reason(given, message):
    with pytest.raises(ReportError, match=message.replace("(", r"\(")):
        ReportOptions.parse(given, ALL)


def test_an_option_the_report_does_not_take_is_refused_naming_those_it_takes():
    with pytest.raises(ReportError, match="does not take every; it takes by, tenant, since, "
                                          "until, limit"):
        ReportOptions.parse({"every": "day"}, REPORTS["top-movers"].takes)


def test_times_without_a_zone_are_utc_and_others_keep_theirs():
    o = ReportOptions.parse({"since": "2026-11-01", "until": "2026-11-02T01:00:00+01:00"}, ALL)
    assert o.since == datetime(2026, 11, 1, tzinfo=UTC)
    assert o.until == datetime(2026, 11, 2, 1, tzinfo=timezone(timedelta(hours=1)))


def test_empty_values_are_not_given_and_options_read_back_the_same():
    o = ReportOptions.parse({"every": "hour", "by": " model , tag:team ", "tenant": "acme",
                             "since": "2026-11-01T00:00:00Z", "until": None, "limit": ""}, ALL)
    assert (o.by, o.until, o.limit) == (("model", "tag:team"), None, None)
    assert ReportOptions.parse(o.query_params(), ALL) == o
