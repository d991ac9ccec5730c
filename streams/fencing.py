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
- a decision batch is handed only if no rebalance began since it was taken
  (``decision_agent``), together with its reservations' changelog records, not after the
  broker has them: the decision carries its reservation, and a new owner reads the
  decisions answered since the last recorded offset back (``streams.answered_log``). A
  worker giving partitions up flushes its producer before it rejoins, so the new owner,
  reading after restoring, sees every decision handed before the revocation.

A batch fenced off is not acknowledged: its messages come again, to whichever worker owns
their partitions. What this does not fence is a worker so stalled that the group evicted it
(no heartbeat for the session timeout) before it noticed: Kafka transactions with
generation fencing (KIP-447) would; they cost a transaction per batch (docs/operations.md).
"""

from __future__ import annotations

__all__ = ["Fenced"]


class Fenced(RuntimeError):
    """A rebalance began: the records were not handed to the producer (the rows stay marked,
    the messages come again)."""
