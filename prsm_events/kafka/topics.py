"""The prsm topics, with partitions, retention and compaction set explicitly.

>>> specs = topic_specs("prsm.", partitions=4)
>>> [s.name for s in specs][:3]
['prsm.usage', 'prsm.requests', 'prsm.decisions']
>>> next(s for s in specs if s.name == "prsm.budgets").configs["cleanup.policy"]
'compact'
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["CO_PARTITIONED", "DEFAULT_TOPIC_MAX_MESSAGE_BYTES", "TopicSpec", "topic_specs"]

DAY_MS = 86_400_000
CO_PARTITIONED = ("usage", "requests", "decisions")
"""The topics a worker reads and answers partition by partition, with the tables' changelogs
(a partition's ledger rows, and the decisions read back on taking it over): each must have
exactly PRSM_PARTITIONS partitions, or a worker refuses to start."""
DEFAULT_TOPIC_MAX_MESSAGE_BYTES = 1_000_000 + 1024
"""``Settings().topic_max_message_bytes``: PRSM_MAX_MESSAGE_BYTES plus batch framing."""


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)


def topic_specs(
    prefix: str, partitions: int, max_message_bytes: int = DEFAULT_TOPIC_MAX_MESSAGE_BYTES,
) -> list[TopicSpec]:
    """Every topic of DESIGN.md. Per-tenant topics share ``partitions`` (co-partitioning);
    every topic takes records up to ``max_message_bytes`` (from PRSM_MAX_MESSAGE_BYTES)."""
    size = {"max.message.bytes": str(max_message_bytes)}

    def delete(days: int) -> dict[str, str]:
        return {"cleanup.policy": "delete", "retention.ms": str(days * DAY_MS), **size}

    compact = {"cleanup.policy": "compact", "retention.ms": "-1", "min.compaction.lag.ms": "0",
               **size}
    return [
        TopicSpec(f"{prefix}usage", partitions, delete(7)),
        TopicSpec(f"{prefix}requests", partitions, delete(1)),
        TopicSpec(f"{prefix}decisions", partitions, delete(1)),
        TopicSpec(f"{prefix}policies", partitions, dict(compact)),
        TopicSpec(f"{prefix}budgets", partitions, dict(compact)),
        TopicSpec(f"{prefix}catalog", 1, dict(compact)),
        TopicSpec(f"{prefix}alerts", partitions, delete(30)),
        TopicSpec(f"{prefix}dlq", partitions, delete(30)),
        # accepted, priced usage events on their way to ClickHouse (the sink's input)
        TopicSpec(f"{prefix}accepted", partitions, delete(7)),
        # budget snapshots on their way to ClickHouse (the sink's input)
        TopicSpec(f"{prefix}snapshots", partitions, delete(7)),
        # the allotments of global budgets, as their owners and the grantor publish them
        TopicSpec(f"{prefix}allotments", 1, dict(compact)),
        # what a worker learned of the tenants it hands over, for the one that takes them
        TopicSpec(f"{prefix}scorer-states", partitions,
                  {**compact, "cleanup.policy": "compact,delete", "retention.ms": str(7 * DAY_MS)}),
    ]
