"""The contracts on the wire: the pydantic models of every message on the prsm topics,
the strict decoding of raw bytes into them, dead letters, and their JSON Schemas.

Each module has its own ``__all__``; import names from the module.
"""

__all__ = [
    "alerts",
    "dead_letter",
    "decision",
    "directives",
    "envelope",
    "json_schemas",
    "request",
    "usage",
    "validation",
]
