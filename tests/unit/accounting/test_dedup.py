"""The dedup memory: one row per (partition, batch), the index rebuilt from rows of both forms."""

from __future__ import annotations

import json

from prsm_events.accounting.dedup import SeenEvent, SeenIndex, rows_of


def seen(n: int, partition: int = 0, ts: float = 100.0, first_offset: int = 0
         ) -> dict[str, SeenEvent]:
    return {f"e{partition}-{i}": SeenEvent(partition, first_offset + i, ts + i)
            for i in range(n)}


def test_a_batch_of_new_events_is_one_row_per_partition():
    index = SeenIndex(max_row_bytes=1_000_000)
    new = {**seen(2000, partition=0), **seen(500, partition=3)}
    rows = index.accept(new)
    assert sorted(rows) == ["seen 0:0:0", "seen 3:0:0"]
    assert rows["seen 3:0:0"][0] == 3 and len(rows["seen 3:0:0"][1][1]) == 500
    assert len(index) == 2500 and index.get("e3-7") == SeenEvent(3, 7, 107.0)
    assert index.get("nope") is None


def test_rows_stay_under_the_record_size_and_keys_name_their_first_event():
    index = SeenIndex(max_row_bytes=4096)
    long_ids = {"x" * 120 + str(i): SeenEvent(1, 10 + i // 3, 5.0, i % 3) for i in range(300)}
    rows = index.accept(long_ids)
    assert len(rows) > 1
    total = 0
    for key, (partition, value) in rows.items():
        assert partition == 1 and value[0] == 1
        assert len(json.dumps(value)) <= 4096
        first = value[1][0]
        assert key == f"seen 1:{first[1]}:{first[3] if len(first) > 3 else 0}"
        total += len(value[1])
    assert total == 300


def test_the_index_reads_back_from_rows_of_both_forms():
    index = SeenIndex(max_row_bytes=1_000_000)
    rows = rows_of(index.accept({"new": SeenEvent(2, 9, 50.0, 4), "other": SeenEvent(2, 9, 50.0)}))
    old = [("legacy", [1, 7, 40.0]), ("legacy-in-batch", [1, 8, 41.0, 3]), ("gone", None)]
    again = SeenIndex(max_row_bytes=1_000_000)
    again.rebuild(rows + old)
    assert again.get("new") == SeenEvent(2, 9, 50.0, 4)
    assert again.get("other") == SeenEvent(2, 9, 50.0, 0)
    assert again.get("legacy") == SeenEvent(1, 7, 40.0, 0)
    assert again.get("legacy-in-batch") == SeenEvent(1, 8, 41.0, 3)
    assert len(again) == 4
    again.rebuild([])
    assert len(again) == 0  # a rebuild replaces, it does not add


def test_a_row_expires_when_its_newest_event_is_past_the_horizon():
    index = SeenIndex(max_row_bytes=1_000_000)
    young = index.accept(seen(10, partition=0, ts=100.0))  # ts 100..109
    old = index.accept(seen(10, partition=1, ts=10.0))  # ts 10..19
    legacy = [("legacy", [2, 1, 12.0]), ("legacy-young", [2, 2, 500.0])]
    index.rebuild([*rows_of(young), *rows_of(old), *legacy])
    rows = [*rows_of(young), *rows_of(old), *legacy]
    assert index.expire(rows, horizon=105.0) == [("seen 1:0:0", 1), ("legacy", 2)]
    assert index.get("e1-3") is None and index.get("legacy") is None
    assert index.get("e0-0") is not None and index.get("legacy-young") is not None
    assert index.expire(rows_of(young), horizon=110.0) == [("seen 0:0:0", 0)]
    assert index.get("e0-9") is None


def test_an_event_accepted_again_after_its_row_expired_keeps_its_new_entry():
    index = SeenIndex(max_row_bytes=1_000_000)
    first = index.accept({"a": SeenEvent(0, 1, 10.0)})
    index.events.clear()  # its old entry gone, then the id accepted again later
    index.accept({"a": SeenEvent(0, 90, 900.0)})
    assert index.expire(rows_of(first), horizon=100.0) == [("seen 0:1:0", 0)]
    assert index.get("a") == SeenEvent(0, 90, 900.0)


def test_a_row_lists_its_events_in_place_order_however_they_came():
    index = SeenIndex(max_row_bytes=1_000_000)
    ordered = {"a": SeenEvent(2, 5, 1.0), "b": SeenEvent(2, 5, 1.0, 1), "c": SeenEvent(2, 7, 1.0),
               "x": SeenEvent(0, 9, 1.0)}
    shuffled = {key: ordered[key] for key in ("c", "x", "b", "a")}
    rows = index.accept(shuffled)
    assert rows == SeenIndex(max_row_bytes=1_000_000).accept(ordered)
    assert rows["seen 2:5:0"] == (2, (2, [("a", 5, 1.0), ("b", 5, 1.0, 1), ("c", 7, 1.0)]))
