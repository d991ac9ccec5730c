"""The commit bookkeeping fix, on Faust's real consumer (no broker needed to build it)."""

from __future__ import annotations

import asyncio

import faust
import pytest
from faust.types import TP

from streams.faust_internals import keep_commits_contiguous

USAGE = TP("prsm.usage", 0)


def consumer(fixed: bool) -> faust.transport.consumer.Consumer:
    app = faust.App(f"commit-test-{fixed}", broker="kafka://127.0.0.1:1", autodiscover=False)
    if fixed:
        keep_commits_contiguous(app, {USAGE.topic})
    return app.consumer


def ack(c, offsets: range) -> None:
    for offset in offsets:  # what Consumer.ack records for an in-order agent
        c._acked_index[USAGE].add(offset)
        c._acked[USAGE].append(offset)


def commits(c, rounds: int) -> list[int | None]:
    """The offsets ``rounds`` commit timer ticks would commit, one after the other."""
    out = []
    for _ in range(rounds):
        offset = c._new_offset(USAGE)
        if offset is not None:
            c._committed_offset[USAGE] = offset
        out.append(offset)
    return out


def after_a_seek_back(c, processed: range) -> None:
    """Committed at 100, 100..150 processed; the agent seeks back to 151 and a record
    fetched before the seek (offset 300) arrives first: Faust notes 151..300 as a gap."""
    c._committed_offset[USAGE] = 100
    ack(c, range(100, 151))
    asyncio.run(c._add_gap(USAGE, 151, 300))
    ack(c, processed)


@pytest.mark.parametrize(("fixed", "expected"), [
    (False, [152, 153, 154, 155]),  # robinhood/faust#625: one offset per commit interval
    (True, [401, None, None, None]),
])
def test_commits_follow_the_work_after_a_seek_back(fixed, expected):
    c = consumer(fixed)
    after_a_seek_back(c, range(151, 401))
    assert commits(c, 4) == expected


@pytest.mark.parametrize(("fixed", "expected"), [
    (False, 301),  # 161..300 never processed: lost on the next crash
    (True, 161),
])
def test_a_gap_never_commits_unprocessed_offsets(fixed, expected):
    c = consumer(fixed)
    after_a_seek_back(c, range(151, 161))
    commits(c, 20)
    assert c._committed_offset[USAGE] == expected


def test_other_topics_keep_fausts_gap_handling():
    c = consumer(True)
    other = TP("compacted", 0)
    c._committed_offset[other] = 10
    for offset in (10, 11, 15):  # 12..14 removed by compaction
        c._acked_index[other].add(offset)
        c._acked[other].append(offset)
    asyncio.run(c._add_gap(other, 12, 14))
    assert c._new_offset(other) == 16
