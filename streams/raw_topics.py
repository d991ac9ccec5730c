"""Topic declarations shared by the agents."""

from __future__ import annotations

from typing import Any

import faust

__all__ = ["raw_topic"]


def raw_topic(app: faust.App, name: str) -> Any:
    """A topic whose keys and values the agents handle as bytes (decoded by our own code)."""
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw",
                     value_serializer="raw")
