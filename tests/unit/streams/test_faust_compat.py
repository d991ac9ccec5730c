"""Commits on Faust's real consumer (no broker needed to build it): Faust's own bookkeeping
after a seek back (the bugs) and with ``commit_positions`` (the fix)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from faust.exceptions import ConsumerNotStarted
from faust.types import TP
from mode.utils.collections import FastUserDict

from streams.faust_compat import commit_positions

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


def final_commit_during_a_timer_commit(c, position: dict[TP, int]) -> list[int | None]:
    """A timer commit reads the position (100), then flushes the producer; meanwhile the last
    batches are acknowledged (position 250) and the worker stops: the offsets committed."""
    committed: list[int | None] = []

    async def force_commit(topics: Any = None, start_new_transaction: bool = True) -> bool:
        offset = c._new_offset(USAGE)  # read first, as Faust's _commit_tps does
        await asyncio.sleep(0.05)  # the producer flush before the offsets go out
        committed.append(offset)
        return True

    c.force_commit = force_commit

    async def stop_during_a_timer_commit() -> None:
        c.loop = asyncio.get_running_loop()
        timer = asyncio.ensure_future(c.commit())
        await asyncio.sleep(0)
        position[USAGE] = 250
        await c.commit_and_end_transactions()  # what Consumer.on_stop calls
        await timer

    asyncio.run(stop_during_a_timer_commit())
    return committed


def test_faust_alone_skips_the_final_commit_while_a_timer_commit_runs():
    position = {USAGE: 100}
    c = consumer()
    c._new_offset = lambda tp: position[tp]  # Faust's own run, in the form of a position
    assert final_commit_during_a_timer_commit(c, position) == [100]  # 100..249 never committed


def test_the_final_commit_waits_for_the_one_under_way_then_commits_the_last_position():
    position = {USAGE: 100}
    c = consumer(position)
    assert final_commit_during_a_timer_commit(c, position) == [100, 250]


def test_seek_runs_in_the_consumer_thread():
    """``seek`` goes through ``seek_wait`` (the consumer thread), never ``Consumer.seek``."""
    from types import SimpleNamespace

    from streams.faust_compat import seek

    calls: list[dict[TP, int]] = []

    class Consumer:
        async def seek_wait(self, positions: dict[TP, int]) -> None:
            calls.append(dict(positions))

        async def seek(self, tp: TP, offset: int) -> None:
            raise AssertionError("Consumer.seek runs aiokafka's seek outside its thread")

    app: Any = SimpleNamespace(consumer=Consumer())
    asyncio.run(seek(app, {USAGE: 7}))
    assert calls == [{USAGE: 7}]
    real: Any = faust.App("seek-test", broker="kafka://127.0.0.1:1", autodiscover=False).consumer
    assert hasattr(real, "seek_wait") and hasattr(real._thread, "seek_wait")


def test_every_internal_it_touches_exists_on_the_pinned_faust() -> None:
    """A Faust upgrade that renames one of them fails here, not in production."""
    from streams.faust_compat import committed_offset, steady, table_store

    app = faust.App("compat-test", broker="kafka://127.0.0.1:1", autodiscover=False)
    table = app.Table("rows", default=None)
    c: Any = app.consumer
    for name in ("_committed_offset", "_add_gap", "_new_offset", "_acked", "_acked_index",
                 "maybe_wait_for_commit_to_finish", "commit_and_end_transactions",
                 "_filter_tps_with_pending_acks", "wait_first", "suspend_flow", "assignment",
                 "on_buffer_full", "on_buffer_drop", "_wait_next_records", "_read_offset",
                 "_buffered_partitions", "_paused_partitions", "flow_active", "should_stop",
                 "highwater"):
        assert hasattr(c, name), name
    conductor: Any = app.topics
    assert hasattr(conductor, "_build_handler") and hasattr(app.flow_control, "acquire")
    assert hasattr(app.monitor, "stream_inbound_time")
    c._committed_offset[USAGE] = 42
    assert committed_offset(app, USAGE) == 42
    assert committed_offset(app, TP("other", 0)) is None
    assert steady(app) in (True, False)  # reads the recovery's state without error
    store = table_store(table)
    store["k"] = [1]
    assert store.get("k") == [1] and table.changelog_topic.get_topic_name() == (
        "compat-test-rows-changelog")
    # the memory store's dict: what the store itself reads and writes
    assert type(store) is dict and table.data["k"] == [1] and "k" in table.data
    for method in ("__getitem__", "__setitem__", "__delitem__", "__contains__", "__iter__"):
        assert getattr(type(table.data), method) is getattr(FastUserDict, method), method
    stream = app.stream(app.topic("t"))
    assert hasattr(stream, "_set_current_event")
    producer: Any = app.producer
    assert hasattr(producer, "_ensure_producer") and hasattr(producer, "partitioner")


def test_rows_go_to_the_shard_of_their_partition() -> None:
    """``store_rows`` sets the current event per source partition while it writes (what a
    RocksDB store reads to pick its shard: ``faust.current_event()``), on Faust's real stream,
    and restores the stream's own afterwards."""
    from streams.batching import Delivered
    from streams.faust_compat import store_rows

    app = faust.App("shard-test", broker="kafka://127.0.0.1:1", autodiscover=False)
    stream: Any = app.stream(app.topic("t"))
    seen: list[tuple[str, int | None]] = []

    class Store(dict):  # type: ignore[type-arg]
        def __setitem__(self, key: str, value: Any) -> None:
            current: Any = faust.current_event()
            seen.append((key, current.message.partition))
            super().__setitem__(key, value)

    table = SimpleNamespace(data=Store())
    events = [Delivered(SimpleNamespace(partition=p), 0.0) for p in (0, 2)]  # type: ignore[arg-type]
    store_rows(stream, events, [(table, {"a": (2, 1), "b": (0, 2), "c": (2, 3)})])  # type: ignore[list-item]
    assert seen == [("a", 2), ("b", 0), ("c", 2)]
    assert stream.current_event is None


def hand_offs() -> faust.transport.consumer.Consumer:
    """Faust's consumer with ``deliver_without_tasks`` (built in the running loop: its
    events belong to it)."""
    from streams.faust_compat import deliver_without_tasks

    app = faust.App("hand-off-test", broker="kafka://127.0.0.1:1", autodiscover=False)
    deliver_without_tasks(app)
    return app.consumer


def test_a_hand_off_that_need_not_wait_runs_in_place_without_tasks() -> None:
    import gc
    import warnings

    ran_in: list[object] = []

    async def ready() -> None:
        return None

    async def hand_off() -> str:
        await ready()  # an await that does not suspend
        ran_in.append(asyncio.current_task())
        return "delivered"

    async def deliver() -> tuple[object, Any]:
        c: Any = hand_offs()
        before = len(asyncio.all_tasks())
        result = await c.wait_first(hand_off(), c.suspend_flow.wait())
        assert len(asyncio.all_tasks()) == before
        return asyncio.current_task(), result

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        task, result = asyncio.run(deliver())
        gc.collect()
    assert not [w for w in caught if "never awaited" in str(w.message)]
    assert ran_in == [task]
    assert result.results == ["delivered"] and not result.stopped


def test_a_hand_off_that_waits_for_room_goes_on_under_wait_first() -> None:
    steps: list[str] = []

    async def deliver() -> Any:
        c: Any = hand_offs()
        queue: asyncio.Queue[int] = asyncio.Queue(maxsize=1)
        queue.put_nowait(1)  # the stream's buffer is full

        async def hand_off() -> str:
            steps.append("started")
            await queue.put(2)
            steps.append("put")
            return "delivered"

        waiting = asyncio.ensure_future(c.wait_first(hand_off(), c.suspend_flow.wait()))
        await asyncio.sleep(0.01)
        assert steps == ["started"] and not waiting.done()
        assert await queue.get() == 1  # the agent takes one: room for the hand-off
        result = await waiting
        assert await queue.get() == 2
        return result

    result = asyncio.run(deliver())
    assert steps == ["started", "put"] and result.results[0] == "delivered"


def test_a_rebalance_still_abandons_a_waiting_hand_off_and_errors_still_propagate() -> None:
    async def deliver() -> tuple[Any, bool]:
        c: Any = hand_offs()
        queue: asyncio.Queue[int] = asyncio.Queue(maxsize=1)
        queue.put_nowait(1)
        cancelled = asyncio.Event()

        async def hand_off() -> None:
            try:
                await queue.put(2)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        waiting = asyncio.ensure_future(c.wait_first(hand_off(), c.suspend_flow.wait()))
        await asyncio.sleep(0.01)
        c.stop_flow()  # what a rebalance does
        result = await waiting
        await asyncio.sleep(0)
        return result, cancelled.is_set() and queue.qsize() == 1

    result, cancelled = asyncio.run(deliver())
    assert "delivered" not in result.results and cancelled

    async def failing() -> None:
        raise ValueError("bad hand-off")

    async def deliver_failing() -> None:
        c: Any = hand_offs()
        await c.wait_first(failing(), c.suspend_flow.wait())

    try:
        asyncio.run(deliver_failing())
    except ValueError as exc:
        assert str(exc) == "bad hand-off"
    else:
        raise AssertionError("the hand-off's error was swallowed")


def test_a_diverted_topics_messages_skip_its_streams_and_other_topics_keep_them() -> None:
    from streams.faust_compat import divert_messages

    async def run() -> tuple[list[int], bool]:
        app = faust.App("divert-test", broker="kafka://127.0.0.1:1", autodiscover=False)
        received: list[int] = []
        divert_messages(app, "prsm.usage", lambda m: received.append(m.offset))
        conductor: Any = app.topics
        usage = conductor._build_handler(USAGE, set())
        other = conductor._build_handler(TP("other", 0), set())
        app.flow_control.resume()  # what the app does once it started
        await asyncio.wait_for(usage(SimpleNamespace(offset=7, tp=USAGE)), 1)
        app.flow_control.suspend()  # a rebalance: the hand-off waits for the flow
        waiting = asyncio.ensure_future(usage(SimpleNamespace(offset=8, tp=USAGE)))
        await asyncio.sleep(0.01)
        held = not waiting.done()
        app.flow_control.resume()
        await asyncio.wait_for(waiting, 1)
        return received, held and other is not usage and not hasattr(other, "__wrapped__")

    received, held = asyncio.run(run())
    assert received == [7, 8] and held


def test_assigned_partitions_of_position_topics_are_committed_without_acks() -> None:
    from streams.faust_compat import note_inbound

    position = {USAGE: 40}
    c: Any = consumer(position)
    other = TP("compacted", 0)
    c.assignment = lambda: {USAGE, other}
    assert list(c._filter_tps_with_pending_acks()) == [USAGE]  # no ack ever recorded
    c._acked[other].append(3)  # Faust's own topics keep Faust's rule
    assert set(c._filter_tps_with_pending_acks()) == {USAGE, other}
    assert list(c._filter_tps_with_pending_acks({"compacted"})) == [other]
    assert c._filter_committable_offsets([USAGE]) == {USAGE: 40}

    def not_started() -> set[TP]:
        raise ConsumerNotStarted("Consumer thread not yet started")
    c.assignment = not_started  # a worker stopping before its consumer started: Faust's rule
    assert set(c._filter_tps_with_pending_acks()) == set(
        type(c)._filter_tps_with_pending_acks(c))
    app = faust.App("inbound-test", broker="kafka://127.0.0.1:1", autodiscover=False)
    note_inbound(app, [USAGE])
    assert USAGE in app.monitor.stream_inbound_time


def test_fetch_wait_builds_the_workers_consumer_with_a_short_fetch_wait() -> None:
    """Faust writes 1500 ms into the consumer it builds; ``fetch_wait`` replaces it on that
    consumer (the one aiokafka's fetcher reads at start), on Faust's real consumer thread."""
    from streams.faust_compat import fetch_wait

    def built(app: faust.App) -> Any:
        thread: Any = app.consumer._thread
        return thread._create_worker_consumer(app.transport)

    async def both() -> tuple[int, int]:
        plain = faust.App("fetch-wait-plain", broker="kafka://127.0.0.1:1", autodiscover=False)
        short = faust.App("fetch-wait-short", broker="kafka://127.0.0.1:1", autodiscover=False)
        fetch_wait(short, 50)
        return built(plain)._fetch_max_wait_ms, built(short)._fetch_max_wait_ms

    assert asyncio.run(both()) == (1500, 50)


def test_fetch_wait_caps_how_long_the_fetch_loop_waits_for_records() -> None:
    """Faust's fetch loop asks for records with ``getmany(timeout=1.0)``; after ``fetch_wait``
    the consumer is asked with the cap (a resumed partition waits at most that long)."""
    from streams.faust_compat import fetch_wait

    app = faust.App("fetch-wait-loop", broker="kafka://127.0.0.1:1", autodiscover=False)
    consumer: Any = app.consumer
    asked: list[float] = []
    consumer.getmany = lambda timeout: asked.append(timeout)  # what the loop calls
    fetch_wait(app, 50)
    consumer.getmany(timeout=1.0)
    consumer.getmany(timeout=0.01)
    assert asked == [0.05, 0.01]


def test_a_diverted_topics_fetched_records_go_as_lists_and_the_rest_goes_fausts_way() -> None:
    """``divert_records`` on Faust's real consumer: the records of active partitions of the
    diverted topics go to their receiver as they were fetched, stamped with the generation;
    an inactive partition's, another topic's, and everything while the flow is stopped stay
    for Faust's per-message loop."""
    from streams.faust_compat import divert_records

    app = faust.App("divert-records", broker="kafka://127.0.0.1:1", autodiscover=False)
    c: Any = app.consumer
    requests, usage1, other = TP("prsm.requests", 0), TP("prsm.usage", 1), TP("other", 0)

    def rec(offset: int) -> Any:
        return SimpleNamespace(offset=offset, value=b"v")

    fetched = {USAGE: [rec(5), rec(6)], usage1: [rec(9)], requests: [rec(2)], other: [rec(1)]}

    async def wait_next_records(timeout: float) -> tuple[Any, Any]:
        return dict(fetched), {USAGE, requests, other}  # usage1 is no longer active

    c._wait_next_records = wait_next_records
    c.highwater = lambda tp: 100
    got: list[tuple[TP, list[int], int]] = []
    for topic in ("prsm.usage", "prsm.requests"):
        divert_records(app, topic,
                       lambda tp, records, gen: got.append((tp, [r.offset for r in records], gen)))
    app.consumer_generation_id = 4
    app.flow_control.resume()  # what the app does once it started

    left, _ = asyncio.run(c._wait_next_records(1.0))
    assert got == [(USAGE, [5, 6], 4), (requests, [2], 4)]
    assert left == {usage1: fetched[usage1], other: fetched[other]}
    assert c._read_offset[USAGE] == 6 and app.monitor.tp_end_offsets[USAGE] == 100

    got.clear()
    app.flow_control.suspend()  # a rebalance: Faust's loop holds or drops them, as before
    left, _ = asyncio.run(c._wait_next_records(1.0))
    assert got == [] and left == fetched
    app.flow_control.resume()
    c.flow_active = False
    left, _ = asyncio.run(c._wait_next_records(1.0))
    assert got == [] and left == fetched


def test_consumer_on_loop_runs_faust_s_consumer_calls_in_place_on_the_app_s_loop():
    """No thread of its own: the consumer's service lives on the app's loop, and a call
    handed to it (``call_thread``) runs at once, in this thread."""
    import threading

    from streams.faust_compat import consumer_on_loop

    app = faust.App("on-loop-test", broker="kafka://127.0.0.1:1", autodiscover=False)
    consumer_on_loop(app)
    thread = app.consumer._thread
    assert thread.thread_loop is app.loop and thread.loop is app.loop
    seen = []

    async def call(x: int) -> int:
        seen.append(threading.current_thread())
        return x + 1

    async def go() -> int:
        return await thread.call_thread(call, 41)

    assert app.loop.run_until_complete(go()) == 42
    assert seen == [threading.current_thread()] and thread._thread is None


def _assigned_consumer(app: faust.App) -> Any:
    """The aiokafka consumer Faust builds for ``app`` (not started), assigned a changelog's two
    partitions and a stream partition."""
    from aiokafka import TopicPartition

    thread: Any = app.consumer._thread
    thread._consumer = thread._create_consumer(loop=app.loop)
    thread._consumer.assign([TopicPartition("t-changelog", 0), TopicPartition("t-changelog", 1),
                             TopicPartition("s", 0)])
    return thread._consumer


def test_faust_alone_pauses_in_its_books_only_and_aiokafka_keeps_fetching() -> None:
    app = faust.App("pause-alone-test", broker="kafka://127.0.0.1:1", autodiscover=False)

    async def go() -> set[Any]:
        kafka = _assigned_consumer(app)
        app.consumer.pause_partitions({TP("t-changelog", 0), TP("t-changelog", 1)})
        paused: set[Any] = kafka.paused()
        await kafka.stop()
        return paused

    assert app.loop.run_until_complete(go()) == set()


def test_on_the_loop_faust_s_pauses_and_resumes_reach_aiokafka_s_fetcher() -> None:
    """Changelog partitions Faust pauses once the tables are read stop being fetched, and are
    fetched again when Faust resumes them (a recovery, standby reads); a partition no longer
    assigned is left alone."""
    from streams.faust_compat import consumer_on_loop

    app = faust.App("pause-loop-test", broker="kafka://127.0.0.1:1", autodiscover=False)
    consumer_on_loop(app)

    async def go() -> list[set[tuple[str, int]]]:
        kafka = _assigned_consumer(app)
        seen = []
        app.consumer.pause_partitions({TP("t-changelog", 0), TP("t-changelog", 1), TP("gone", 3)})
        seen.append({tuple(tp) for tp in kafka.paused()})
        app.consumer.resume_partitions({TP("t-changelog", 1)})
        seen.append({tuple(tp) for tp in kafka.paused()})
        app.consumer.resume_partitions({TP("t-changelog", 0), TP("gone", 3)})
        seen.append({tuple(tp) for tp in kafka.paused()})
        await kafka.stop()
        return seen

    assert app.loop.run_until_complete(go()) == [
        {("t-changelog", 0), ("t-changelog", 1)}, {("t-changelog", 0)}, set()]


def test_the_fetch_check_leaves_out_partitions_faust_paused(monkeypatch: Any) -> None:
    """Faust's check for partitions aiokafka has not fetched lately would log an error for
    every paused changelog partition; it checks only the others."""
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    from streams.faust_compat import consumer_on_loop

    app = faust.App("pause-check-test", broker="kafka://127.0.0.1:1", autodiscover=False)
    consumer_on_loop(app)
    checked: list[TP] = []
    monkeypatch.setattr(AIOKafkaConsumerThread, "verify_event_path",
                        lambda self, now, tp: checked.append(tp))
    app.consumer.pause_partitions({TP("t-changelog", 0)})
    thread: Any = app.consumer._thread
    thread.verify_event_path(0.0, TP("t-changelog", 0))
    thread.verify_event_path(0.0, TP("s", 0))
    assert checked == [TP("s", 0)]


def test_tables_are_registered_as_their_manager_starts_without_fausts_second() -> None:
    """Faust's table manager sleeps a second before it registers the changelogs (what the
    conductor waits for before the consumer joins); ``prompt_tables`` registers them at once,
    the same way."""
    from streams.faust_compat import prompt_tables

    def manager(prompt: bool) -> tuple[Any, list[float], list[Any]]:
        app = faust.App(f"prompt-tables-{prompt}", broker="kafka://127.0.0.1:1",
                        autodiscover=False)
        table: Any = app.Table("rows", default=None)
        if prompt:
            prompt_tables(app)
        tables: Any = app.tables
        slept: list[float] = []
        started: list[Any] = []
        changelog = TP(table.changelog_topic.get_topic_name(), 0)
        consumer: Any = app.consumer  # not started: what it holds, what it is told
        consumer.assignment = lambda: {changelog, TP("prsm.usage", 0)}
        consumer.pause_partitions = lambda tps: started.append(("paused", set(tps)))

        async def sleep(seconds: float) -> None:
            slept.append(seconds)

        async def recovery_started() -> None:
            started.append("recovery")

        async def table_started() -> None:  # Faust's would declare its changelog topic
            started.append("rows")

        tables.sleep = sleep
        tables.recovery.start = recovery_started
        table.maybe_start = table_started
        return tables, slept, started

    for prompt, waits in ((False, [1.0]), (True, [])):
        tables, slept, started = manager(prompt)
        asyncio.run(tables.on_start())
        paused = ("paused", {TP(f"prompt-tables-{prompt}-rows-changelog", 0)})
        assert slept == waits and started == ["rows", paused, "recovery"]
        assert [t.name for t in tables._channels] == ["rows"]  # its changelog channel
        assert tables._tables_registered.is_set()  # what the conductor waits for


def test_the_workers_loop_closes_once_the_callbacks_left_ran_not_a_second_later(
        monkeypatch: Any) -> None:
    """mode's worker sleeps a second before closing its loop; after ``prompt_close`` the
    loop only runs what is already scheduled (a transport's ``connection_lost``)."""
    import mode

    from streams.faust_compat import prompt_close

    real_sleep = asyncio.sleep
    slept: list[float] = []

    async def sleep(seconds: float, result: Any = None) -> Any:
        slept.append(seconds)
        return await real_sleep(0, result)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    for prompt, waits in ((False, [1.0]), (True, [0, 0, 0])):
        loop = asyncio.new_event_loop()
        worker = mode.Worker(mode.Service(loop=loop), loop=loop, quiet=True)
        if prompt:
            prompt_close(worker)
        ran: list[str] = []
        loop.call_soon(ran.append, "connection_lost")
        slept.clear()
        worker._shutdown_loop()
        assert ran == ["connection_lost"] and loop.is_closed()
        assert slept == waits


def test_a_standby_offset_not_read_yet_is_sought_from_the_start_not_a_crash() -> None:
    """A standby changelog partition added by a group change while the previous change's
    recovery run goes on has no starting offset yet (Faust marks it None); that run's seek of
    the standby partitions hands None to aiokafka, whose ``seek`` raises. With
    ``known_standby_offsets`` it is sought from its start (as Faust does for an offset it
    knows nothing of, -1), and the others where they were."""
    from streams.faust_compat import known_standby_offsets

    new, read = TP("t-changelog", 0), TP("t-changelog", 1)

    def seeks(known: bool) -> dict[TP, Any]:
        app = faust.App(f"standby-seek-{known}", broker="kafka://127.0.0.1:1",
                        autodiscover=False)
        table: Any = app.Table("t", default=None)
        if known:
            known_standby_offsets(app)
        recovery: Any = app.tables.recovery
        recovery.add_standby(table, new)  # a memory store: no offset of its own
        recovery.standby_offsets[read] = 7  # one Faust has read up to
        assert recovery.standby_offsets[new] is None
        sought: dict[TP, Any] = {}

        class Consumer:  # what the seek asks of the consumer
            async def seek_wait(self, partitions: dict[TP, Any]) -> None:
                sought.update(partitions)

        app.loop.run_until_complete(recovery._seek_offsets(
            Consumer(), {new, read}, recovery.standby_offsets, "standby"))
        return sought

    assert seeks(known=False) == {new: None, read: 7}
    app = faust.App("standby-seek-kafka", broker="kafka://127.0.0.1:1", autodiscover=False)

    async def refused() -> None:  # aiokafka refuses that None
        kafka = _assigned_consumer(app)
        try:
            with pytest.raises(ValueError, match="Offset must be a positive integer"):
                kafka.seek(new, None)
        finally:
            await kafka.stop()

    app.loop.run_until_complete(refused())
    assert seeks(known=True) == {new: 0, read: 7}
