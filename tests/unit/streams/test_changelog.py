"""ChangelogWriter: each marked row's latest value goes to its changelog, and a row whose
record was not delivered goes again with the next flush."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streams.changelog import ChangelogWriter
from streams.faust_compat import table_store
from tests.unit.streams.fake_producer import FakeProducer, Sent, app_with


def writer() -> tuple[ChangelogWriter, FakeProducer, Any, Any]:
    producer = FakeProducer()
    app = app_with(producer, "changelog-test")
    return ChangelogWriter(app), producer, app.Table("a", default=None), app.Table("b",
                                                                                   default=None)


def test_marked_rows_go_with_their_value_at_flush_time_and_a_failed_one_goes_again() -> None:
    async def run() -> list[list[Sent]]:
        w, producer, a, b = writer()
        table_store(a)["x"], table_store(b)["y"], table_store(a)["z"] = [1], [2], [3]
        w.mark(a, {"x": 0})
        w.mark(b, {"y": 1})
        w.mark(a, {"z": 2})
        producer.fail = {b'"y"'}
        rounds = []
        with pytest.raises(RuntimeError, match="not delivered"):
            await w.flush()
        rounds.append(producer.sent)
        producer.sent, producer.fail = [], set()
        table_store(b)["y"] = [20]  # changed again meanwhile: its latest value goes
        await w.flush()
        rounds.append(producer.sent)
        producer.sent = []
        await w.flush()  # everything delivered: nothing more
        rounds.append(producer.sent)
        return rounds

    first, second, third = asyncio.run(run())
    assert sorted(first) == [("changelog-test-a-changelog", b'"x"', b"[1]", 0),
                             ("changelog-test-a-changelog", b'"z"', b"[3]", 2),
                             ("changelog-test-b-changelog", b'"y"', b"[2]", 1)]
    assert second == [("changelog-test-b-changelog", b'"y"', b"[20]", 1)]
    assert third == []


def test_every_row_of_a_failed_record_batch_goes_again_and_only_those() -> None:
    """Rows of one partition share a record batch (and its delivery): all of them go again."""
    async def run() -> list[list[Sent]]:
        w, producer, a, _ = writer()
        for key, value in (("p", 1), ("q", 2), ("r", 3)):
            table_store(a)[key] = [value]
        w.mark(a, {"p": 0, "q": 0, "r": 1})
        producer.fail = {b'"p"'}
        with pytest.raises(RuntimeError, match="not delivered"):
            await w.flush()
        producer.sent, producer.fail = [], set()
        await w.flush()
        again = producer.sent
        producer.sent = []
        await w.flush()
        return [again, producer.sent]

    again, after = asyncio.run(run())
    assert sorted(again) == [("changelog-test-a-changelog", b'"p"', b"[1]", 0),
                             ("changelog-test-a-changelog", b'"q"', b"[2]", 0)]
    assert after == []


def test_rows_of_a_send_that_raised_are_marked_again() -> None:
    async def run() -> list[Sent]:
        w, producer, a, _ = writer()
        table_store(a)["x"] = [1]
        w.mark(a, {"x": 0})
        real = producer.send_batch

        async def broken(*args: Any, **kwargs: Any) -> asyncio.Future[None]:
            raise RuntimeError("producer stopped")

        producer.send_batch = broken  # type: ignore[method-assign]
        with pytest.raises(RuntimeError, match="producer stopped"):
            await w.flush()
        producer.send_batch = real  # type: ignore[method-assign]
        await w.flush()
        return producer.sent

    assert asyncio.run(run()) == [("changelog-test-a-changelog", b'"x"', b"[1]", 0)]


def test_a_flush_waiting_for_the_broker_does_not_hold_up_the_next() -> None:
    """A timer's flush waits for its records; a decision batch's flush meanwhile hands its
    own to the producer at once, after the first's (their order is kept)."""

    async def run() -> tuple[bool, list[bytes]]:
        w, producer, a, _ = writer()
        producer.hold = True  # the broker has not answered yet
        table_store(a)["x"], table_store(a)["y"] = [1], [2]
        w.mark(a, {"x": 0})
        first = asyncio.create_task(w.flush())
        await asyncio.sleep(0)
        w.mark(a, {"y": 0})
        await asyncio.wait_for(w.flush(wait=False), 1.0)
        waiting = not first.done()
        for future in producer.pending:
            future.set_result(None)
        await first
        return waiting, [key for _, key, _, _ in producer.sent]

    assert asyncio.run(run()) == (True, [b'"x"', b'"y"'])


def test_delivered_waits_for_rows_another_flush_took() -> None:
    """A row marked by one caller but sent by another's flush (which took the lock first):
    ``delivered`` returns only once that flush's records are with the broker, and raises
    if they were not (the escrow round counts its moves only after it)."""
    async def run() -> list[str]:
        w, producer, a, _ = writer()
        producer.hold = True
        table_store(a)["x"] = [1]
        w.mark(a, {"x": 0})
        await w.flush(wait=False)  # someone else's flush took the row
        steps = []
        waiting = asyncio.ensure_future(w.delivered())
        await asyncio.sleep(0)
        steps.append("waiting" if not waiting.done() else "returned early")
        for future in producer.pending:
            future.set_result(None)
        await waiting
        steps.append("delivered")
        table_store(a)["y"] = [2]
        w.mark(a, {"y": 1})
        await w.flush(wait=False)
        producer.pending[-1].set_exception(RuntimeError("not delivered"))
        with pytest.raises(RuntimeError, match="not delivered"):
            await w.delivered()
        steps.append("raised")
        return steps

    assert asyncio.run(run()) == ["waiting", "delivered", "raised"]


def test_nothing_is_handed_during_a_rebalance_and_lost_partitions_are_not_written() -> None:
    """Fencing: during a rebalance a flush hands nothing (``Fenced``) and keeps the rows
    marked; once the group is steady again the rows of partitions now another worker's are
    dropped (it restored them and writes them itself), the others sent. A rebalance that
    begins between two record batches of one flush stops it there."""
    from streams.fencing import Fenced

    async def run() -> list[list[Sent]]:
        producer = FakeProducer()
        app = app_with(producer, "changelog-test")
        owned = {0, 1, 2}
        w = ChangelogWriter(app, lambda: frozenset(owned))
        a = app.Table("a", default=None)
        for key, value in (("x", 1), ("y", 2), ("z", 3)):
            table_store(a)[key] = [value]
        w.mark(a, {"x": 0, "y": 1, "z": 2})
        app.flow_control.suspend()  # a revocation began
        with pytest.raises(Fenced):
            await w.flush()
        rounds = [list(producer.sent)]
        owned.discard(1)  # the rebalance gave partition 1 to another worker
        app.flow_control.resume()
        await w.flush()
        rounds.append(producer.sent[len(rounds[0]):])
        # a flush of two record batches: the rebalance begins while the first is handed
        sent_before = len(producer.sent)
        real = producer.send_batch

        async def then_revoked(*args: Any, **kwargs: Any) -> asyncio.Future[None]:
            done = await real(*args, **kwargs)
            app.flow_control.suspend()
            return done

        producer.send_batch = then_revoked  # type: ignore[method-assign]
        w.mark(a, {"x": 0, "z": 2})
        with pytest.raises(Fenced):
            await w.flush()
        rounds.append(producer.sent[sent_before:])
        producer.send_batch = real  # type: ignore[method-assign]
        app.flow_control.resume()
        sent_before = len(producer.sent)
        await w.flush()
        rounds.append(producer.sent[sent_before:])
        return rounds

    during, after, split, rest = asyncio.run(run())
    assert during == []
    assert sorted(after) == [("changelog-test-a-changelog", b'"x"', b"[1]", 0),
                             ("changelog-test-a-changelog", b'"z"', b"[3]", 2)]
    assert len(split) == 1  # the first record batch only: the other row stays marked
    other = next(r for r in after if r != split[0])
    assert other in rest  # (the row handed goes again too: its latest value, harmless)
