"""CatchUp: intervals count as ordinary once what is left to read is small next to what
arrives, or merely in flight; a rebalance makes it look again."""

from __future__ import annotations

from streams.catch_up import CatchUp
from streams.partition_progress import Backlog


def test_behind_until_the_backlog_is_small_next_to_what_arrives() -> None:
    c = CatchUp(share=0.1)
    assert not c.observe([Backlog(0, 0, 3)])  # the first look has nothing to compare with
    assert not c.observe([Backlog(900, 1000, 3), Backlog(0, 0, 3)])  # 900 left of 1000 new
    assert not c.observe([Backlog(50, 1400, 3), Backlog(0, 0, 3)])  # 50 > 40 (10% of 400)
    assert c.observe([Backlog(30, 1700, 3), Backlog(0, 0, 3)])  # 30 <= 30
    assert c.observe([Backlog(100, 1800, 3), Backlog(0, 0, 3)])  # once current, stays so
    c.lost_track()
    assert c.behind and not c.observe([Backlog(0, 1800, 3)])


def test_a_quiet_topic_or_messages_in_flight_are_current() -> None:
    c = CatchUp()
    c.observe([Backlog(0, 10, 2)])
    assert c.observe([Backlog(2, 13, 2)])  # one message per partition on its way


def test_partitions_lost_in_a_rebalance_do_not_count_as_arrivals() -> None:
    c = CatchUp()
    c.observe([Backlog(500, 5000, 3)])
    assert not c.observe([Backlog(10, 1000, 1)])  # ends shrank: nothing to judge by
    assert c.observe([Backlog(10, 1200, 1)])
