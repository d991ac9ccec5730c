"""Commits on Faust's real consumer (no broker needed to build it): Faust's own bookkeeping
after a seek back (the bugs) and with ``commit_positions`` (the fix)."""

from __future__ import annotations

import asyncio

import faust
from faust.types import TP

from streams.faust_internals import commit_positions

USAGE = TP("prsm.usage", 0)


def consumer(position: dict[TP, int] | None = None) -> faust.transport.consumer.Consumer:
    """Faust's consumer; with ``position``, the agent's next offsets are what it commits."""
    app = faust.App(f"commit-test-{position is not None}", broker="kafka://127.0.0.1:1",
                    autodiscover=False)
    if position is not None:
        commit_positions(app, {USAGE.topic: position.get})
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
        if offset is not None and c._should_commit(USAGE, offset):
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


def test_faust_alone_crawls_one_offset_per_commit_after_a_seek_back():
    c = consumer()  # robinhood/faust#625
    after_a_seek_back(c, range(151, 401))
    assert commits(c, 4) == [152, 153, 154, 155]


def test_faust_alone_commits_offsets_never_processed():
    c = consumer()
    after_a_seek_back(c, range(151, 161))  # 161..300 never processed: lost on a crash
    commits(c, 20)
    assert c._committed_offset[USAGE] == 301


def test_committed_offsets_are_the_agents_position():
    position = {USAGE: 401}
    c = consumer(position)
    after_a_seek_back(c, range(151, 401))
    assert commits(c, 2) == [401, 401]
    assert c._committed_offset[USAGE] == 401 and not c._acked[USAGE] and not c._gap[USAGE]
    position[USAGE] = 520  # moved past a transaction marker, or offsets deleted by retention
    assert commits(c, 1) == [520]


def test_an_unknown_position_commits_nothing_and_other_topics_keep_fausts_rules():
    c = consumer({})
    ack(c, range(0, 10))
    assert commits(c, 1) == [None]
    other = TP("compacted", 0)
    c._committed_offset[other] = 10
    for offset in (10, 11, 15):  # 12..14 removed by compaction
        c._acked_index[other].add(offset)
        c._acked[other].append(offset)
    asyncio.run(c._add_gap(other, 12, 14))
    assert c._new_offset(other) == 16
