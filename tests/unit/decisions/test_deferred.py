"""DeferredRequests: a deferred request asked again counts as a retry until it is decided
otherwise or forgotten; memory stays bounded."""

from __future__ import annotations

from prsm_events.decisions.deferred import DeferredRequests


def test_a_retry_is_known_until_decided_or_expired() -> None:
    d = DeferredRequests(ttl_s=100.0)
    d.note("a", "r1", deferred=True, now=0.0)
    d.note("b", "r1", deferred=False, now=0.0)  # another tenant's id, served at once
    assert d.retry("a", "r1", 50.0) and not d.retry("b", "r1", 50.0)
    d.note("a", "r1", deferred=True, now=90.0)  # deferred again: remembered anew
    assert d.retry("a", "r1", 180.0)
    assert not d.retry("a", "r1", 191.0)  # not asked again within the ttl: forgotten


def test_expired_and_excess_entries_are_dropped_oldest_first() -> None:
    d = DeferredRequests(ttl_s=100.0, max_entries=3)
    for i in range(5):
        d.note("a", f"r{i}", deferred=True, now=float(i))
    assert len(d) == 3 and [d.retry("a", f"r{i}", 5.0) for i in range(5)] == [
        False, False, True, True, True]
    d.note("a", "x", deferred=False, now=103.5)  # r2 and r3 expired by now
    assert len(d) == 1 and d.retry("a", "r4", 103.5)
