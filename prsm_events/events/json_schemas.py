"""JSON Schemas of the events, generated from the pydantic models into ``schemas/``.

Run ``python -m prsm_events.events.json_schemas`` after changing a model; a test fails when the
checked-in files and the models drift apart.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from prsm_events.accounting.budgets import Budget
from prsm_events.events.alerts import Alert
from prsm_events.events.decision import Decision
from prsm_events.events.directives import ThrottleDirective
from prsm_events.events.request import RequestEvent
from prsm_events.events.usage import UsageEvent

__all__ = ["EVENT_MODELS", "render_schemas", "schema_dir", "write_schemas"]

EVENT_MODELS: dict[str, type[BaseModel]] = {
    "usage": UsageEvent,
    "request": RequestEvent,
    "decision": Decision,
    "budget": Budget,
    "policy": ThrottleDirective,
    "alert": Alert,
}


def schema_dir() -> Path:
    return Path(str(resources.files("prsm_events").joinpath("schemas")))


def render_schemas() -> dict[str, str]:
    """File name -> JSON text of every event's schema."""
    out = {}
    for name, model in EVENT_MODELS.items():
        schema: dict[str, Any] = model.model_json_schema()
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
                  "$id": f"prsm-events/{name}.schema.json", **schema}
        out[f"{name}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    batch = {"$schema": "https://json-schema.org/draft/2020-12/schema",
             "$id": "prsm-events/usage-batch.schema.json", "title": "UsageBatch",
             "description": "A batch envelope: one prsm.usage message carrying many usage "
             "events, each validated (and dead-lettered) on its own (events.envelope).",
             "type": "array", "minItems": 1, "items": {"$ref": "usage.schema.json"}}
    out["usage-batch.schema.json"] = json.dumps(batch, indent=2, sort_keys=True) + "\n"
    return out


def write_schemas(directory: Path | None = None) -> list[Path]:
    directory = directory or schema_dir()
    paths = []
    for filename, text in render_schemas().items():
        path = directory / filename
        path.write_text(text)
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write_schemas():
        print(written)
