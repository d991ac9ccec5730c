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


def test_a_small_backlog_left_at_the_look_is_drained_before_intervals_count() -> None:
    """The look that finds the backlog small may still see some of it unprocessed; intervals
    count only once every message that existed then is processed (issue 13: an interval
    holding the backlog's tail was scored, and the backlog taken for a burst)."""
    c = CatchUp()
    p0, p1 = ("usage", 0), ("usage", 1)
    assert not c.observe([Backlog(100, 100, 2, {p0: 100, p1: 0}, {p0: 0, p1: 0})])
    # 2 messages left of the backlog: small next to what arrived, but not yet processed
    assert not c.observe([Backlog(2, 110, 2, {p0: 102, p1: 8}, {p0: 100, p1: 8})])
    assert not c.observe([Backlog(3, 115, 2, {p0: 105, p1: 10}, {p0: 101, p1: 9})])
    assert c.observe([Backlog(4, 120, 2, {p0: 108, p1: 12}, {p0: 102, p1: 10})])  # past 102, 8
    assert c.observe([Backlog(400, 600, 2, {p0: 500, p1: 100}, {p0: 102, p1: 98})])


def test_a_look_with_everything_processed_is_current_at_once() -> None:
    c = CatchUp()
    p0 = ("usage", 0)
    c.observe([Backlog(50, 50, 1, {p0: 50}, {p0: 0})])
    assert c.observe([Backlog(0, 60, 1, {p0: 60}, {p0: 60})])


def test_a_partition_lost_while_draining_does_not_hold_it_up() -> None:
    c = CatchUp()
    p0, p1 = ("usage", 0), ("usage", 1)
    c.observe([Backlog(10, 10, 2, {p0: 10, p1: 0}, {p0: 0, p1: 0})])
    assert not c.observe([Backlog(1, 30, 2, {p0: 20, p1: 10}, {p0: 19, p1: 10})])
    assert c.observe([Backlog(0, 25, 1, {p1: 15}, {p1: 15})])  # p0 went to another worker
