"""Which partition Kafka's default partitioner gives a key: murmur2, as in every Kafka client.

The ledger shards global budgets by the partition a tenant's records land on; it is handed
this function, so that the pure domain imports no Kafka client.

>>> owner_partition("acme", 4) == owner_partition("acme", 4) < 4
True
"""

from __future__ import annotations

from functools import lru_cache

from aiokafka.partitioner import murmur2

__all__ = ["KeyPartitions", "owner_partition"]


def _partition(key: str, partitions: int) -> int:
    hashed: int = murmur2(key.encode())
    return (hashed & 0x7FFFFFFF) % partitions


@lru_cache(maxsize=65536)
def owner_partition(key: str, partitions: int) -> int:
    """The partition of ``key`` among ``partitions`` (Kafka's default partitioner)."""
    return _partition(key, partitions)


class KeyPartitions:
    """The partitions of keys that come back again and again (more than ``owner_partition``
    keeps): each key is hashed once while the partition count stays the same.

    >>> places = KeyPartitions()
    >>> places.of(["acme", "beta"], 4) == [owner_partition("acme", 4), owner_partition("beta", 4)]
    True
    """

    def __init__(self) -> None:
        self._partitions = 0
        self._known: dict[str, int] = {}

    def of(self, keys: list[str], partitions: int) -> list[int]:
        if partitions != self._partitions:
            self._known, self._partitions = {}, partitions
        known, out = self._known, []
        for key in keys:
            partition = known.get(key)
            if partition is None:
                partition = known[key] = _partition(key, partitions)
            out.append(partition)
        return out

    def forget(self, keys: list[str]) -> None:
        """Keys not asked for again soon (a lifted directive's)."""
        for key in keys:
            self._known.pop(key, None)
