"""Which partition Kafka's default partitioner gives a key: murmur2, as in every Kafka client.

The ledger shards global budgets by the partition a tenant's records land on; it is handed
this function, so that the pure domain imports no Kafka client.

>>> owner_partition("acme", 4) == owner_partition("acme", 4) < 4
True
"""

from __future__ import annotations

from functools import lru_cache

from aiokafka.partitioner import murmur2

__all__ = ["owner_partition"]


@lru_cache(maxsize=65536)
def owner_partition(key: str, partitions: int) -> int:
    """The partition of ``key`` among ``partitions`` (Kafka's default partitioner)."""
    hashed: int = murmur2(key.encode())
    return (hashed & 0x7FFFFFFF) % partitions
