from __future__ import annotations

from typing import Any

from aiokafka.partitioner import DefaultPartitioner, murmur2
from hypothesis import given
from hypothesis import strategies as st

from prsm_events.kafka.partitioning import KeyPartitions, murmur2_many, owner_partition


def test_key_partitions_are_kafkas_default_partitioners_and_follow_the_partition_count() -> None:
    keys = [f'tenant:t{i}|pacing:day' for i in range(2_000)] + ['tenant:"\\|pacing:24h', "ü"]
    places = KeyPartitions()
    for partitions in (3, 3, 12, 1):  # the same count again, then more, then one
        all_partitions = list(range(partitions))
        assert places.of(keys, partitions) == [
            DefaultPartitioner()(k.encode(), all_partitions, all_partitions) for k in keys]
        assert places.of(keys, partitions) == [owner_partition(k, partitions) for k in keys]


def test_each_key_is_hashed_once_until_forgotten_or_the_count_changes(monkeypatch) -> None:
    from prsm_events.kafka import partitioning

    hashed: list[bytes] = []
    murmur2_many = partitioning.murmur2_many

    def counted(keys: list[bytes]) -> Any:
        hashed.extend(keys)
        return murmur2_many(keys)
    monkeypatch.setattr(partitioning, "murmur2_many", counted)
    places = KeyPartitions()
    first = places.of(["a", "b"], 7)
    assert places.of(["b", "a", "b"], 7) == [first[1], first[0], first[1]]
    assert hashed == [b"a", b"b"]
    places.forget(["a", "never-asked"])
    assert places.of(["b", "a"], 7) == [first[1], first[0]] and hashed[2:] == [b"a"]
    places.of(["a"], 8)
    assert hashed[3:] == [b"a"]


@given(st.lists(st.binary(max_size=40), max_size=60))
def test_murmur2_of_many_keys_is_kafkas_of_each(keys: list[bytes]) -> None:
    """Keys of every length (each remainder of 4, none), repeated, in any order."""
    assert murmur2_many(keys).tolist() == [murmur2(k) for k in keys]
