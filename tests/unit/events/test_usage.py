from datetime import UTC, datetime

import jsonschema
import orjson
import pytest

from prsm_events.events.json_schemas import render_schemas, schema_dir
from prsm_events.events.usage import UsageEvent

BASE = {"event_id": "e1", "ts": "2026-01-01T00:00:00Z", "tenant": "acme", "service": "chat",
        "model": "gpt-4o", "input_tokens": 10, "output_tokens": 5}


def test_timestamps_are_normalised_to_utc():
    e = UsageEvent.model_validate({**BASE, "ts": "2026-01-01T02:00:00+02:00"})
    assert e.ts == datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"ts": "2026-01-01T00:00:00"}, "time zone"),
        ({"input_tokens": -1}, "greater than or equal to 0"),
        ({"cost_usd": -0.01}, "greater than or equal to 0"),
        ({"tenant": ""}, "at least 1 character"),
        ({"tenant": "a/b"}, "pattern"),
        ({"surprise": 1}, "Extra inputs are not permitted"),
        ({"kind": "gpu"}, "'llm'"),
        ({"status": "fine"}, "'ok'"),
        ({"cached_input_tokens": 11}, "must not exceed input_tokens"),
        ({"kind": "compute", "model": None}, "cost_usd is required"),
    ],
)
def test_invalid_usage_is_rejected_with_reason(change, fragment):
    with pytest.raises(ValueError, match=fragment):
        UsageEvent.model_validate({**BASE, **change})


def test_nan_cost_is_rejected():
    with pytest.raises(ValueError):
        UsageEvent.model_validate_json(orjson.dumps(BASE)[:-1] + b', "cost_usd": NaN}')


def test_checked_in_json_schemas_match_the_models():
    for filename, text in render_schemas().items():
        on_disk = (schema_dir() / filename).read_text()
        assert on_disk == text, (
            f"{filename} is stale: run python -m prsm_events.events.json_schemas")


def test_json_schema_agrees_with_the_model_on_examples():
    schema = orjson.loads((schema_dir() / "usage.schema.json").read_bytes())
    jsonschema.validate(BASE, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**BASE, "input_tokens": -3}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**BASE, "unknown": 1}, schema)
