"""Fencing: a worker hands records for its partitions to the producer only while it still
owns them, so one that lost them in a rebalance can no longer change their state or answer
for them.

Kafka hands partitions over in a rebalance: the worker giving one up runs its revocation
(Faust suspends its flow at once, flushes its producer) before it rejoins, and the worker
taking it over restores the tables from their changelogs only once everyone has rejoined.
So a record handed to the producer before the revocation began is in the changelog before
the new owner reads it; one handed after may land after, and is stale there. Hence:

- changelog records are handed only while no rebalance is under way (``steady``), checked
  before each record batch (``RecordBatches.send``): otherwise ``Fenced`` is raised, the
  rows stay marked, and once the group is steady again the rows of partitions now owned by
  others are dropped (``ChangelogWriter``);
- a decision is handed only once the records of its reservation are with the broker (every
  changelog record handed before it: an ``already_decided`` answer stands on an earlier
  batch's reservation), and only if no rebalance began since its batch was taken: the new
  owner, restoring after the revocation, sees every reservation a decision was sent for
  (``decision_agent``).

A batch fenced off is not acknowledged: its messages come again, to whichever worker owns
their partitions. What this does not fence is a worker so stalled that the group evicted it
(no heartbeat for the session timeout) before it noticed: Kafka transactions with
generation fencing (KIP-447) would; they cost a transaction per batch (docs/operations.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Protocol

__all__ = ["Fenced", "answer_once_reserved"]


class Records(Protocol):
    """Records gathered to be handed at once (``streams.record_batches.RecordBatches``)."""

    def __len__(self) -> int: ...

    async def send(self) -> list[asyncio.Future[Any]]: ...


class Fenced(RuntimeError):
    """A rebalance began: the records were not handed to the producer (the rows stay marked,
    the messages come again)."""


async def answer_once_reserved(reserved: Sequence[asyncio.Future[Any]], answers: Records,
                               current: Callable[[], bool]) -> list[asyncio.Future[Any]]:
    """Hand ``answers`` (a batch's decisions) to the producer once every record of
    ``reserved`` (its changelog records) is with the broker, if ``current()`` still holds
    (no rebalance began since the batch was taken); else raise ``Fenced``, handing none.
    Returns the decisions' delivery futures."""
    await asyncio.gather(*reserved)
    if not current():
        raise Fenced(f"a rebalance began: {len(answers)} decisions withheld, their requests "
                     "are read again by the partitions' owner")
    return await answers.send()
