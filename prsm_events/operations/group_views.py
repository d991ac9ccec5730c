"""The answers of every worker of a group read as one view (``prsm budget outlook``).

Each worker answers ``GET /budgets`` for what it holds: the budgets of the tenants of its
own partitions, and every budget over tenants as it knows it, with the partitions it owns
and the consumer generation it owns them in. The answers are one view of the group when
every worker answered in one generation and their partitions are each partition once
(:func:`why_not_whole`); then :func:`merged_budgets` lists each budget once.

>>> a = {"generation": 4, "partitions": [0, 1], "budgets": [
...     {"key": "global|day", "spent_usd": 3.0, "allotment_usd": 6.0,
...      "partitions": [{"partition": 0, "allotment_usd": 4.0},
...                     {"partition": 1, "allotment_usd": 2.0}]},
...     {"key": "tenant:a|day", "spent_usd": 1.0, "partitions": None}]}
>>> b = {"generation": 4, "partitions": [2], "budgets": [
...     {"key": "global|day", "spent_usd": 2.5, "allotment_usd": 3.0,
...      "partitions": [{"partition": 2, "allotment_usd": 3.0}]},
...     {"key": "tenant:b|day", "spent_usd": 2.0, "partitions": None}]}
>>> why_not_whole([a, b], 3) is None
True
>>> [(r["key"], r["spent_usd"]) for r in merged_budgets([b, a])]
[('global|day', 3.0), ('tenant:a|day', 1.0), ('tenant:b|day', 2.0)]
>>> whole = merged_budgets([a, b])[0]
>>> whole["allotment_usd"], [p["partition"] for p in whole["partitions"]]
(9.0, [0, 1, 2])
>>> why_not_whole([a, {**b, "generation": 5}], 3)
'the workers answered in consumer generations 4, 5: a rebalance is under way'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["merged_budgets", "why_not_whole"]


def why_not_whole(answers: Sequence[Mapping[str, Any]], partitions: int) -> str | None:
    """Why ``answers`` (the bodies of one endpoint, asked of every worker of the group) are
    not one view of the group's ``partitions``; None when they are."""
    for answer in answers:
        if "partitions" not in answer:  # 503: rebalancing, or recovering its tables
            return str(answer.get("error") or "a worker did not say which partitions it owns")
    generations = sorted({int(a["generation"]) for a in answers})
    if len(generations) != 1:
        return (f"the workers answered in consumer generations "
                f"{', '.join(map(str, generations))}: a rebalance is under way")
    held = sorted(int(p) for a in answers for p in a["partitions"])
    if held != list(range(partitions)):
        return (f"the workers own partitions {held}, not each of the group's {partitions} "
                f"once: a rebalance is under way, or a worker is missing")
    return None


def merged_budgets(answers: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each budget of whole ``answers`` (``GET /budgets``) once, by key. A tenant's: as
    the worker that owns its partition says (no other lists it). One over tenants: its
    figures as the worker owning partition 0 knows them (the one that answers for it: its
    snapshots, alerts and metrics), with each worker's allotments and holdings of its own
    partitions, and their sum as ``allotment_usd``."""
    ordered = sorted(answers, key=lambda a: 0 not in a["partitions"])  # partition 0 first
    out: dict[str, dict[str, Any]] = {}
    for answer in ordered:
        for row in answer["budgets"]:
            key = str(row["key"])
            parts = row.get("partitions")
            if key not in out:
                out[key] = {**row, "partitions": None if parts is None else list(parts)}
            elif parts is not None and out[key]["partitions"] is not None:
                out[key]["partitions"].extend(parts)
    for row in out.values():
        if row["partitions"] is not None:
            row["partitions"].sort(key=lambda p: int(p["partition"]))
            row["allotment_usd"] = sum(float(p["allotment_usd"]) for p in row["partitions"])
    return [out[key] for key in sorted(out)]
