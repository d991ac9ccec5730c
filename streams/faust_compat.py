"""Every use of Faust's private or untyped internals, each naming why: the one place to check
when faust-streaming is upgraded (tested against the pinned version in
``tests/unit/streams/test_faust_compat.py``).

Commit positions
----------------
faust-streaming's consumer commits, per partition, the first run of consecutive acknowledged
offsets (``Consumer._new_offset``), filling in offsets it believes no record holds from
*gaps* it noted while fetching (``Consumer._add_gap``). On the topics our agents read strictly
in order (``PartitionProgress``: usage and requests) that goes wrong three ways:

- after a seek back (a re-read of skipped messages, or a batch refused for a gap), records
  fetched before the seek arrive ahead of the new read position and Faust notes the distance
  as a gap; those offsets are later acknowledged for real a second time, and the duplicates
  split every run, so commits crawl forward by about one offset per commit interval
  (robinhood/faust#625, "Offsets not committed due to duplicate in _acked"; still so in
  faust-streaming 0.15) and a clean stop leaves thousands uncommitted;
- the same gap, filled in before its records are processed, lets Faust commit offsets never
  processed (lost on the next crash);
- with those gap notes off, offsets that hold no record (a transaction's control record) are
  never acknowledged, and commits would stop there (robinhood/faust#401 for the kindred case
  of compacted topics).

``commit_positions`` makes Faust commit, for those topics, exactly the next offset their
agent must process (``PartitionProgress.position``), which moves past holes (probed),
offsets deleted by retention and re-reads, and turns Faust's gap notes off for them.

It also mends the commit at a clean stop. ``Consumer.commit`` returns at once, committing
nothing, when another commit is under way (``maybe_wait_for_commit_to_finish``); the stop's
final commit (``commit_and_end_transactions``) is such a call. Under load a timer commit
takes over a second (Faust warns "Timer commit is overlapping"), and its offsets were read
before the last batches were acknowledged: a stop during it left hundreds of processed
offsets uncommitted (faust-streaming 0.11 to 0.15). The final commit now waits for the one
under way and then commits.

Seeking
-------
``Consumer.seek`` calls the aiokafka consumer's ``seek`` from the app's event loop
(``ThreadDelegateConsumer._seek`` is the one method not handed to the thread). While that
consumer ran in Faust's consumer thread, the seek cleared the fetcher's buffered records
while the thread iterated them, and the thread crashed with ``KeyError`` in
``Fetcher.fetched_records`` (faust-streaming 0.11 to 0.15; the same race as
robinhood/aiokafka#19). ``seek`` goes through ``Consumer.seek_wait``, which is safe either
way (with ``consumer_on_loop`` both run on one loop).

Handing messages to the streams
-------------------------------
Faust's fetch loop (``Consumer._drain_messages``) hands every message to its stream through
``Service.wait_first(callback(message), suspend_flow.wait())``, so that a rebalance can
abandon a hand-off blocked on a full stream buffer. That starts four tasks and an
``asyncio.wait`` per message: a quarter of a no-op agent's time (faust-streaming 0.10 to
0.15; the same call is behind faust-streaming/faust#229). ``deliver_without_tasks`` first
runs the hand-off in place; only one that suspends (a full buffer, flow stopped, a full
producer buffer) goes on, from where it stopped, under ``wait_first`` as before.

How long a fetch may wait
-------------------------
Faust builds the worker's aiokafka consumer with ``fetch_max_wait_ms=1500`` written into
``AIOKafkaConsumerThread._create_worker_consumer`` (no setting; robinhood/faust#281, "Make
fetch_max_wait_ms configurable", never merged; still so in faust-streaming 0.15). aiokafka
keeps one fetch in flight per broker, and a fetch leaves out the partitions whose records
still wait to be taken. So while an agent works through a burst of one topic, the next fetch
asks only for the quiet partitions (the other topic's, say), and the broker holds it for the
whole wait; the busy partitions cannot be fetched again until it returns. Under load the
usage agent ran dry for 0.4-1.2 s after every couple of batches (a third of its time).
``fetch_wait`` sets the wait of the consumer Faust creates (``AIOKafkaConsumer
._fetch_max_wait_ms``, read when the consumer starts its fetcher).

The fetch loop has the same kind of wait one level up: it asks the consumer thread for the
records of the partitions active *now* and waits up to 1 s (``Consumer._drain_messages``
calls ``getmany(timeout=1.0)``). When an agent's buffer is full, its partitions are paused
(``on_buffer_full``); the call in flight then waits for the others only, and resuming them
(``on_buffer_drop``) cannot wake it: the agent ran dry for up to a second after each pause.
``fetch_wait`` caps that timeout too (``Consumer.getmany``, replaced on the instance before
the fetch loop starts).

The consumer on the app's loop
------------------------------
Faust runs the worker's aiokafka consumer in a thread of its own, with an event loop of its
own (``ThreadDelegateConsumer``, ``AIOKafkaConsumerThread``; no setting), and hands every
call to it, each ``getmany`` of the fetch loop included, through a queue and back
(``QueueServiceThread.call_thread``): two wake-ups across threads per fetch, and the two
threads take turns at the GIL. At 1,000 requests/s that thread held the GIL for 31% of the
worker's time, and a request's stages waited on the hand-overs (faust-streaming/faust#175
describes the races between the two threads that come with it). ``consumer_on_loop`` makes
the "thread" a plain service on the app's loop: started and stopped in place, each call run
in place. The rebalance callbacks, commits and seeks are the same calls, on one loop.

Pauses reach the fetcher
------------------------
Faust pauses a partition only in its own books (``Consumer.pause_partitions`` takes it out of
the partitions whose records ``getmany`` returns); aiokafka's fetcher keeps fetching it. The
tables' changelog partitions are paused so once the tables are read (``TableManager``,
``Recovery``) and stay so: each fetch of the worker carried the idle ones (8 of its 17
partitions at 1,000 decisions/s, their answers decoded in Python), and the records of the
written ones stayed in the fetcher for good (faust-streaming 0.10 to 0.15). On the consumer
on the loop, ``pause_partitions`` and ``resume_partitions`` also pause and resume aiokafka's
partitions to match (``AIOKafkaConsumer.pause``, public): recovery and standby reads resume
them as before, and stream partitions paused for a rebalance stop being fetched. Faust's check
for partitions aiokafka has not fetched (``verify_event_path``, run every 2.5 commit
intervals) would then log an error for every changelog partition paused before its first
fetch ("has not sent fetch request ... since start"; faust-streaming/faust#166 and #629 are
that message on partitions fetched late); it leaves out the partitions Faust itself paused.
(Its "no recent fetch" branch compares aiokafka's wall-clock stamp with monotonic time and
never fires.)

Steady state, committed offsets
-------------------------------
``steady`` reads the table recovery's state (``app.tables.recovery``, untyped);
``committed_offset`` the consumer's last committed offsets (``Consumer._committed_offset``),
where a partition's processing starts; Faust exposes neither.

Table rows and their changelogs
-------------------------------
``table_store`` is a table's local store (``Table.data``), read and written without Faust's
per-key hooks on the hot paths. For the memory store (the default) it is the store's own
dict (``Store.data``, untyped): the store's mapping methods are ``FastUserDict``'s, which
only pass each call on to that dict, in Python, and a lookup of a missing key went through
``Mapping.get`` and a caught ``KeyError`` (about 1.5 us, once per decision). ``store_rows``
writes rows of several partitions in one synchronous block: a RocksDB store picks its shard
from the stream's current event, set with ``Stream._set_current_event`` (private).
``changelog_send`` sends rows' changelog records straight to the producer (Faust flushes it
before committing offsets) instead of through ``table[key] = value``, whose per-record buffer
hand-off made the agent wait in steps of 0.1 s under load.

Record batches
--------------
Faust's producer offers only a record at a time (``Producer.send``; faust-streaming 0.10 to
0.15 have no batch send). ``record_batches`` reaches the aiokafka producer Faust started
(``Producer._ensure_producer``, private) so that ``streams.record_batches`` can hand it a
partition's records as one batch through aiokafka's public ``create_batch`` and
``send_batch``; ``changelog_send`` sends the rows that way. It refuses an app whose producer
has a partitioner of its own (keyed records are placed with Kafka's default partitioner) or
runs transactions (``send_batch`` would bypass Faust's transaction producers).

Reading a topic in batches
--------------------------
``divert_messages`` has Faust's conductor hand every message of a topic to a function in
the fetch loop (``Conductor._build_handler``, private) instead of decoding it into an event
for the topic's streams, after waiting, as Faust's own handler does, while a rebalance has
the flow stopped (``streams/batching.py`` says why). No message of such a topic is acknowledged,
so ``commit_positions`` also lists its assigned partitions among those Faust commits
(``Consumer._filter_tps_with_pending_acks``, which lists only partitions with
acknowledgements), and ``note_inbound`` keeps Faust's monitor told that the partitions' streams
take messages (``Monitor.stream_inbound_time``; without it Faust logs "Stream stopped
processing" for a busy partition).

Even so, each message went through Faust's fetch loop one at a time: an async generator's step
(``Consumer.getmany``), the consumer thread's high-water mark and the monitor's end offset,
a ``ConsumerMessage`` of 13 fields, the loop's read-offset and commit bookkeeping, the
hand-off, and the flow's lock: about a tenth of the decision agent's time under load
(faust-streaming 0.10 to 0.15 offer no batch hand-off; robinhood/faust#563, "Message
consumption is slow", is the same per-message cost).
``divert_records`` takes the fetched records of such a topic as a list per partition where
the loop gets them (``Consumer._wait_next_records``, private), under the checks its
``getmany`` makes per message (the flow is active, the partition is still active, the
consumer is not stopping, the generation stamped on each), and notes the partition's read
offset and end offset once per list. Whatever it leaves (the flow stopped for a rebalance,
a partition no longer active) goes the per-message way above, as before.

Starting and stopping
---------------------
Faust's table manager sleeps a second before it registers the tables' changelogs
(``TableManager.on_start``: ``await self.sleep(1.0)``, room for tables defined as the app
starts; faust-streaming 0.10 to 0.15), and the conductor, so the consumer's first join,
waits for it. This app makes every table in ``build_app``, before anything starts (a table
added later fails loudly: "Too late to add tables"), so the second only delayed each start
and each takeover by a restarted worker. ``prompt_tables`` registers them at once.

mode's worker, once every service has stopped and every task is gathered, runs a task that
sleeps a second before it closes the event loop (``Worker._sentinel_task``; mode-streaming
0.3 to 0.7): each clean stop took a second longer than its work. ``prompt_close`` lets the
loop run the callbacks still scheduled (transports' ``connection_lost``) and closes it.
No upstream issue tracks either wait.

Standby offsets not read yet
----------------------------
A group change that comes while the worker restores its tables (a worker killed and another
started a moment apart) hands the recovery new standby changelog partitions, whose starting
offsets Faust marks unknown (``Recovery._add``: ``None``) until that change's own recovery
run reads them (``_build_offsets``). The run under way for the previous assignment goes on
meanwhile, reaches "Starting standby partitions", and seeks every standby partition, these
too: ``Recovery._seek_offsets`` maps -1 (nothing read) to 0 but hands ``None`` to aiokafka's
``seek``, which raises ``ValueError: Offset must be a positive integer``. The recovery
service crashes, and the worker with it (exit 1, at its start; faust-streaming 0.15: a
worker of three, killed and restarted four times at random moments, crashed so in three
runs of four). No upstream issue found; the kindred race for a partition revoked meanwhile
was faust-streaming/faust#54 (fixed by #57). ``known_standby_offsets`` marks such an offset
-1 before the seek, as ``_build_offsets`` itself does when it knows nothing: the partition
is read from its start, and the recovery run the change started reads the real offsets.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import (
    Awaitable,
    Callable,
    Coroutine,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    MutableMapping,
    Sequence,
)
from typing import TYPE_CHECKING, Any

import faust
import mode
import orjson
from aiokafka.partitioner import DefaultPartitioner
from faust.exceptions import ConsumerNotStarted
from faust.stores.memory import Store as MemoryStore
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaDriverConsumer
from faust.types import TP, Message, StreamT, TableT
from faust.types.enums import ProcessingGuarantee
from mode.services import WaitResults
from mode.utils.futures import maybe_async

from streams.record_batches import RecordBatches

if TYPE_CHECKING:
    from streams.batching import Delivered

__all__ = [
    "changelog_send",
    "commit_positions",
    "committed_offset",
    "consumer_on_loop",
    "deliver_without_tasks",
    "divert_messages",
    "divert_records",
    "fetch_wait",
    "known_standby_offsets",
    "note_inbound",
    "prompt_close",
    "prompt_tables",
    "record_batches",
    "seek",
    "steady",
    "store_rows",
    "table_store",
]

TableRows = dict[str, tuple[int, Any]]
"""Changed rows of a table: key -> (source partition, value)."""


def commit_positions(app: faust.App, positions: Mapping[str, Callable[[TP], int | None]]
                     ) -> None:
    """For each topic in ``positions`` commit ``positions[topic](tp)`` (the next offset to
    process, None while unknown) instead of Faust's acknowledged run. Call once, after the
    app is built."""
    consumer: Any = app.consumer
    add_gap = consumer._add_gap
    new_offset = consumer._new_offset

    async def _add_gap(tp: TP, offset_from: int, offset_to: int) -> None:
        if tp.topic not in positions:
            await add_gap(tp, offset_from, offset_to)

    def _new_offset(tp: TP) -> int | None:
        position = positions.get(tp.topic)
        if position is None:
            result: int | None = new_offset(tp)
            return result
        consumer._acked[tp].clear()  # Faust's list is not read for these topics: keep it small
        consumer._acked_index[tp].clear()
        return position(tp)

    consumer._add_gap = _add_gap
    consumer._new_offset = _new_offset

    with_acks = consumer._filter_tps_with_pending_acks

    def _filter_tps_with_pending_acks(topics: Any = None) -> Iterator[TP]:
        listed = list(with_acks(topics))
        known = set(listed)
        try:
            assigned = consumer.assignment()
        except ConsumerNotStarted:  # a worker stopping before its consumer ever started
            return iter(listed)
        for tp in assigned:
            if tp.topic in positions and tp not in known and (
                    topics is None or tp in topics or tp.topic in topics):
                listed.append(tp)
        return iter(listed)

    consumer._filter_tps_with_pending_acks = _filter_tps_with_pending_acks

    final_commit = consumer.commit_and_end_transactions

    async def _commit_and_end_transactions() -> None:
        await consumer.maybe_wait_for_commit_to_finish()  # its offsets may predate the last acks
        await final_commit()

    consumer.commit_and_end_transactions = _commit_and_end_transactions


class _Resumed:
    """A coroutine that already ran to its first suspension (``yielded``), awaitable from
    there on: what the task awaiting it sends or throws goes on to the coroutine."""

    __slots__ = ("coro", "yielded")

    def __init__(self, coro: Coroutine[Any, Any, Any], yielded: Any) -> None:
        self.coro, self.yielded = coro, yielded

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, value = self.coro, self.yielded
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # cancellation goes on to the coroutine
                try:
                    value = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
                continue
            try:
                value = coro.send(sent)
            except StopIteration as stop:
                return stop.value


def _close(awaitable: Any) -> None:
    if inspect.iscoroutine(awaitable):
        awaitable.close()  # never started: no "never awaited" warning


def deliver_without_tasks(app: faust.App) -> None:
    """Hand each fetched message to its stream in place when that does not have to wait
    (see the module doc). Call once, after the app is built."""
    consumer: Any = app.consumer
    wait_first = consumer.wait_first

    async def _wait_first(*coros: Any, timeout: float | None = None) -> WaitResults:
        if (len(coros) == 2 and timeout is None and inspect.iscoroutine(coros[0])
                and not consumer.suspend_flow.is_set() and not consumer.should_stop):
            hand_off, other = coros
            try:
                yielded = hand_off.send(None)
            except StopIteration as done:
                _close(other)
                return WaitResults([hand_off], [done.value], False)
            except BaseException:
                _close(other)
                raise
            coros = (_Resumed(hand_off, yielded), other)
        results: WaitResults = await wait_first(*coros, timeout=timeout)
        return results

    consumer.wait_first = _wait_first


def fetch_wait(app: faust.App, max_wait_ms: int) -> None:
    """Build the worker's consumer with ``fetch_max_wait_ms=max_wait_ms`` instead of Faust's
    1500, and let the fetch loop wait at most as long for records (see the module doc). Call
    once, before the app starts."""
    thread: Any = app.consumer._thread  # type: ignore[attr-defined]
    create = thread._create_worker_consumer

    def _create_worker_consumer(transport: Any) -> Any:
        consumer = create(transport)
        consumer._fetch_max_wait_ms = max_wait_ms
        return consumer

    thread._create_worker_consumer = _create_worker_consumer

    consumer: Any = app.consumer
    getmany = consumer.getmany
    cap = max_wait_ms / 1000

    def _getmany(timeout: float) -> Any:
        return getmany(timeout=min(timeout, cap))

    consumer.getmany = _getmany


async def seek(app: faust.App, positions: Mapping[TP, int]) -> None:
    """Move each partition's fetch position to its offset, where the consumer runs."""
    await app.consumer.seek_wait(positions)


def steady(app: faust.App) -> bool:
    """True when no rebalance or table recovery is under way."""
    recovery: Any = app.tables.recovery  # type: ignore[attr-defined]
    return bool(not app.rebalancing and app.flow_control.is_active()
                and recovery.completed.is_set() and not recovery.in_recovery)


def committed_offset(app: faust.App, tp: TP) -> int | None:
    """The offset last committed for ``tp`` by this consumer (None when unknown)."""
    committed: Mapping[TP, int | None] = app.consumer._committed_offset  # type: ignore[attr-defined]
    return committed.get(tp)


def table_store(table: TableT[str, Any]) -> MutableMapping[str, Any]:
    """The table's local store: reads and writes that skip Faust's per-key hooks (the
    memory store's own dict, see the module doc)."""
    store: MutableMapping[str, Any] = table.data
    inner = getattr(store, "data", None)
    if isinstance(store, MemoryStore) and type(inner) is dict:
        return inner
    return store


def store_rows(stream: StreamT[Any], events: Sequence[Delivered],
               changes: Sequence[tuple[TableT[str, Any], TableRows]]) -> None:
    """Write each row to its table's store in the shard of its source partition (one of
    ``events``' partitions). Does not await: the stream never sees the events set here."""
    by_partition: dict[int, Delivered] = {e.message.partition: e for e in events}
    saved = stream.current_event
    current = -1
    try:
        for table, rows in changes:
            store = table_store(table)
            for key, (partition, value) in rows.items():
                if partition != current:
                    stream._set_current_event(by_partition[partition])  # type: ignore[attr-defined]
                    current = partition
                store[key] = value
    finally:
        stream._set_current_event(saved)  # type: ignore[attr-defined]


async def changelog_send(app: faust.App, changes: Sequence[tuple[TableT[str, Any], TableRows]]
                         ) -> list[Any]:
    """Hand each changed row's changelog record (``value`` None: a tombstone) to the producer,
    for its source partition, in record batches, each only while no rebalance is under way
    (``streams.fencing``); return the delivery futures (one per row, shared by the rows of a
    batch)."""
    batches = record_batches(app)
    for table, rows in changes:
        topic = table.changelog_topic.get_topic_name()
        for key, (partition, value) in rows.items():
            batches.add(topic, partition, orjson.dumps(key),
                        None if value is None else orjson.dumps(value))
    return await batches.send(fence=lambda: steady(app))


def record_batches(app: faust.App) -> RecordBatches:
    """An empty ``RecordBatches`` on the aiokafka producer of ``app``'s started producer."""
    guarantee: Any = app.conf.processing_guarantee  # typed as the enum class upstream
    if guarantee != ProcessingGuarantee.AT_LEAST_ONCE:
        raise RuntimeError("record batches bypass Faust's transaction producers: "
                           "processing_guarantee must be at_least_once")
    producer: Any = app.producer
    if producer.partitioner is not None and not isinstance(producer.partitioner,
                                                           DefaultPartitioner):
        raise RuntimeError("record batches place keyed records with Kafka's default "
                           "partitioner; the app's producer has another")
    return RecordBatches(producer._ensure_producer())


def divert_messages(app: faust.App, topic: str, receive: Callable[[Message], None]) -> None:
    """Hand every fetched message of ``topic`` to ``receive`` instead of the topic's streams
    (see the module doc). Call once, before the app starts."""
    conductor: Any = app.topics
    build_handler = conductor._build_handler
    flow_control = app.flow_control

    def _build_handler(tp: TP, channels: Any) -> Callable[[Message], Awaitable[None]]:
        if tp.topic != topic:
            handler: Callable[[Message], Awaitable[None]] = build_handler(tp, channels)
            return handler

        async def on_message(message: Message) -> None:
            await flow_control.acquire()  # waits while a rebalance stopped the flow
            receive(message)

        return on_message

    conductor._build_handler = _build_handler


ReceiveRecords = Callable[[TP, list[Any], int], None]
"""(partition, its fetched aiokafka records in order, the consumer generation) -> None."""


def divert_records(app: faust.App, topic: str, receive: ReceiveRecords) -> None:
    """Hand the records of ``topic`` fetched while the flow runs to ``receive``, a list per
    partition, before Faust's fetch loop iterates them (see the module doc). Call once per
    topic, with ``divert_messages`` for what is left, before the app starts."""
    consumer: Any = app.consumer
    receivers: dict[str, ReceiveRecords] | None = getattr(consumer, "_prsm_record_receivers",
                                                          None)
    if receivers is not None:
        receivers[topic] = receive
        return
    receivers = consumer._prsm_record_receivers = {topic: receive}
    wait_next_records = consumer._wait_next_records
    read_offset = consumer._read_offset
    flow_control = app.flow_control

    async def _wait_next_records(timeout: float) -> tuple[Any, Any]:
        records, active = await wait_next_records(timeout)
        if (not records or not consumer.flow_active or consumer.should_stop
                or consumer.suspend_flow.is_set() or not flow_control.is_active()):
            return records, active
        generation = app.consumer_generation_id
        buffered = consumer._buffered_partitions
        monitor = app.monitor
        for tp in [tp for tp in records if tp.topic in receivers]:
            if active is not None and tp not in active and tp not in buffered:
                continue
            fetched = records.pop(tp)
            if not fetched:
                continue
            read_offset[tp] = fetched[-1].offset
            if monitor is not None:
                monitor.track_tp_end_offset(tp, consumer.highwater(tp))
            receivers[tp.topic](tp, fetched, generation)
        return records, active

    consumer._wait_next_records = _wait_next_records


def note_inbound(app: faust.App, tps: Iterable[TP]) -> None:
    """Tell Faust's monitor that the partitions' messages reach their agent (see the module
    doc)."""
    monitor: Any = app.monitor
    if monitor is not None:
        now = time.monotonic()
        for tp in tps:
            monitor.stream_inbound_time[tp] = now


class _ConsumerOnLoop(AIOKafkaConsumerThread):
    """Faust's aiokafka consumer "thread", run on the app's own event loop (see the module
    doc): started and stopped as a plain service, each call made in place."""

    def __init__(self, consumer: Any, *, loop: asyncio.AbstractEventLoop, **kwargs: Any
                 ) -> None:
        super().__init__(consumer, loop=loop, thread_loop=loop, **kwargs)

    async def start(self) -> None:
        self._thread_started.set()
        await self._default_start()

    async def stop(self) -> None:
        if self._started.is_set() and not self._stopped.is_set():
            self._stopped.set()
            await self.on_stop()
            await self._shutdown_thread()
            await self.on_shutdown()

    async def call_thread(self, fun: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await maybe_async(fun(*args, **kwargs))

    def follow_pauses(self) -> None:
        """Pause aiokafka's fetching of exactly the assigned partitions Faust has paused."""
        consumer = self._consumer
        if consumer is None:
            return  # not started: the first pause after the assignment sets it
        paused = self.consumer._paused_partitions
        now = consumer.paused()
        assigned = consumer.assignment()
        stop = [tp for tp in assigned if tp in paused and tp not in now]
        go = [tp for tp in now if tp not in paused and tp in assigned]
        if stop:
            consumer.pause(*stop)
        if go:
            consumer.resume(*go)

    def verify_event_path(self, now: float, tp: TP) -> None:
        if tp not in self.consumer._paused_partitions:  # paused on purpose: not fetched
            super().verify_event_path(now, tp)


class _LoopConsumer(AIOKafkaDriverConsumer):
    _thread: _ConsumerOnLoop

    def _new_consumer_thread(self) -> _ConsumerOnLoop:
        return _ConsumerOnLoop(self, loop=self.loop, beacon=self.beacon)

    def pause_partitions(self, tps: Iterable[TP]) -> None:
        super().pause_partitions(tps)
        self._thread.follow_pauses()

    def resume_partitions(self, tps: Iterable[TP]) -> None:
        super().resume_partitions(tps)
        self._thread.follow_pauses()


def consumer_on_loop(app: faust.App) -> None:
    """Run the worker's consumer on the app's event loop instead of a thread of its own (see
    the module doc). Call before anything reads ``app.consumer``."""
    transport: Any = app.transport
    transport.Consumer = _LoopConsumer


def prompt_tables(app: faust.App) -> None:
    """Register the app's tables as their manager starts, without its one-second wait (see
    the module doc). Call once every table is made."""
    tables: Any = app.tables

    async def on_start() -> None:
        if not tables.should_stop:
            await tables._update_channels()
            await tables.recovery.start()

    tables.on_start = on_start


def known_standby_offsets(app: faust.App) -> None:
    """Seek a standby changelog partition whose starting offset Faust has not read yet from
    its start, not with ``None`` (a crash; see the module doc)."""
    tables: Any = app.tables
    recovery = tables.recovery
    seek_offsets = recovery._seek_offsets

    async def _seek_offsets(consumer: Any, tps: Iterable[TP], offsets: Any, title: str
                            ) -> None:
        unknown = sorted(tp for tp in tps if tp in offsets and offsets[tp] is None)
        if unknown:
            recovery.log.info("%s partitions whose offsets are not read yet (the group changed "
                              "during the recovery) are read from their start: %s", title,
                              ", ".join(f"{tp.topic}[{tp.partition}]" for tp in unknown))
            for tp in unknown:
                offsets[tp] = -1
        await seek_offsets(consumer, tps, offsets, title)

    recovery._seek_offsets = _seek_offsets


def prompt_close(worker: mode.Worker) -> None:
    """Close ``worker``'s event loop once the callbacks left by the stop have run, not a
    second later (see the module doc)."""

    async def settle() -> None:
        for _ in range(3):
            await asyncio.sleep(0)

    worker_any: Any = worker
    worker_any._sentinel_task = settle
