from datetime import UTC, datetime

import orjson

from prsm_events.accounting.catalog import Catalog
from prsm_events.accounting.dedup import SeenEvent
from prsm_events.accounting.ingest import IngestOutcome, RawMessage, UsageIngestor
from prsm_events.accounting.spend import SpendRow
from prsm_events.events.validation import EventLimits

NOW = datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
INGEST = UsageIngestor(Catalog.shipped(), EventLimits())


def msg(offset, value, partition=0):
    body = value if isinstance(value, bytes) else orjson.dumps(value)
    return RawMessage("prsm.usage", partition, offset, b"acme", body)


def event(event_id, **kw):
    return {"event_id": event_id, "ts": "2026-01-01T00:00:00Z", "tenant": "acme",
            "service": "chat", "model": "gpt-4o-mini", "input_tokens": 1_000_000, **kw}


def run(batch, seen=None, spend=None):
    seen = seen or {}
    spend = spend or {}
    return INGEST.process(batch, seen.get, spend.get, NOW)


def test_good_bad_and_duplicate_messages_are_sorted_out():
    out = run([msg(0, event("a")), msg(1, b"{"), msg(2, event("a")),
               msg(3, event("b", model="nope")), msg(4, event("c", cost_usd=1.0))])
    assert [p.event.event_id for p, _, _ in out.accepted_events()] == ["a", "c"]
    assert out.duplicates == 1
    assert [(d.code, d.source_offset) for d in out.dead_letters] == [
        ("invalid_json", 1), ("unknown_model", 3)]
    assert out.spend["tenant:acme|total|all"].cost_usd == 0.15 + 1.0
    assert set(out.seen) == {"a", "c"}


def test_duplicate_across_batches_uses_the_seen_table():
    seen = {"a": SeenEvent(0, 0, 0.0)}
    out = run([msg(7, event("a"))], seen=seen)
    assert out.accepted == [] and out.duplicates == 1


def test_redelivered_message_is_not_a_duplicate_and_not_double_counted():
    """After a crash the same message (same partition and offset) comes again."""
    first = run([msg(0, event("a"))])
    seen = dict(first.seen)
    spend = dict(first.spend)
    again = run([msg(0, event("a"))], seen=seen, spend=spend)
    assert again.accepted_count == 1  # re-sent to ClickHouse (idempotent there)
    assert again.duplicates == 0
    assert "tenant:acme|total|all" not in again.spend  # already counted


def test_stored_rows_accumulate():
    spend = {"tenant:acme|total|all": SpendRow(cost_usd=1.0, events=1, partition=0, offset=3)}
    out = run([msg(4, event("z"))], spend=spend)
    assert out.spend["tenant:acme|total|all"].events == 2


def test_an_event_above_the_cost_cap_is_dead_lettered_given_or_priced():
    ingest = UsageIngestor(Catalog.shipped(), EventLimits(max_cost_usd=100.0))
    out = ingest.process([msg(0, event("given", cost_usd=1e6 - 1)),
                          msg(1, event("priced", input_tokens=10**9)),  # $150 at catalog prices
                          msg(2, event("fine", cost_usd=100.0))], {}.get, {}.get, NOW)
    assert [p.event.event_id for p, _, _ in out.accepted_events()] == ["fine"]
    assert [(d.code, d.source_offset) for d in out.dead_letters] == [
        ("cost_over_cap", 0), ("cost_over_cap", 1)]
    assert "PRSM_MAX_EVENT_COST_USD" in out.dead_letters[1].reason
    assert out.spend["tenant:acme|total|all"].cost_usd == 100.0


def test_a_message_that_raises_unexpectedly_is_dead_lettered_not_retried(caplog):
    class Broken(Catalog):
        def lookup(self, model, provider=None):
            raise RuntimeError("catalog bug")

    ingest = UsageIngestor(Broken.shipped(), EventLimits())
    out = ingest.process([msg(0, event("a")), msg(1, event("b", cost_usd=1.0, model=None))],
                         {}.get, {}.get, NOW)
    assert [(d.code, d.source_offset) for d in out.dead_letters] == [("processing_error", 0)]
    assert out.dead_letters[0].reason == "processing_error: RuntimeError: catalog bug"
    assert [p.event.event_id for p, _, _ in out.accepted_events()] == ["b"]
    assert "could not be processed" in caplog.text


def batch(offset, events, partition=0):
    """A batch envelope: one message carrying ``events`` as a JSON array."""
    return msg(offset, orjson.dumps(events), partition)


def test_a_batch_message_is_judged_event_by_event():
    out = run([batch(5, [event("a"), event("b", model="nope"), "x", event("c")]),
               msg(6, event("d"))])
    assert [p.event.event_id for p, _, _ in out.accepted_events()] == ["a", "c", "d"]
    assert [(p, o) for _, p, o in out.accepted_events()] == [(0, 5), (0, 5), (0, 6)]
    assert [(d.code, d.source_offset, d.source_index) for d in out.dead_letters] == [
        ("unknown_model", 5, 1), ("not_an_object", 5, 2)]
    assert orjson.loads(out.dead_letters[0].original)["event_id"] == "b"
    assert out.spend["tenant:acme|total|all"].events == 3
    assert out.seen["c"] == SeenEvent(0, 5, out.seen["c"].ts, 3)
    events = [p for p, _, _ in out.accepted_events()]
    assert out.accepted == [((0, 5), events[:2]), ((0, 6), events[2:])]


def test_a_redelivered_batch_counts_once_and_its_events_are_not_duplicates():
    first = run([batch(5, [event("a"), event("b"), event("c")])])
    assert first.spend["tenant:acme|total|all"].events == 3
    seen, spend = dict(first.seen), dict(first.spend)
    again = run([batch(5, [event("a"), event("b"), event("c")])], seen=seen, spend=spend)
    assert again.duplicates == 0 and again.accepted_count == 3  # ClickHouse collapses them
    assert again.spend == {}  # every row folded message 5 before
    later = run([batch(6, [event("a"), event("d")])], seen=seen, spend=spend)
    assert later.duplicates == 1 and later.spend["tenant:acme|total|all"].events == 4


def test_the_same_event_twice_in_one_batch_counts_once():
    out = run([batch(1, [event("a"), event("a"), event("b")])])
    assert out.duplicates == 1
    assert out.spend["tenant:acme|total|all"].events == 2


def test_a_message_delivered_twice_in_one_batch_is_processed_once():
    body = [event("a"), event("b")]
    out = run([batch(1, body), batch(1, body), msg(2, event("c"))])
    assert out.duplicates == 0 and out.accepted_count == 3
    assert out.spend["tenant:acme|total|all"].events == 3


def test_seen_rows_written_before_batches_read_back_as_index_zero():
    assert SeenEvent.from_list([0, 7, 1.5]) == SeenEvent(0, 7, 1.5, 0)
    assert SeenEvent.from_list(SeenEvent(0, 7, 1.5, 4).to_list()) == SeenEvent(0, 7, 1.5, 4)
    assert SeenEvent(0, 7, 1.5).to_list() == [0, 7, 1.5]  # the format single events had


def test_a_batch_alternating_partitions_is_taken_partition_by_partition():
    """Fetched batches alternate partitions message by message; the events are taken
    partition by partition, each in its order, and a replay of part of the batch (after a
    crash) counts nothing twice."""
    batch = [msg(offset, event(f"{partition}-{offset}"), partition)
             for offset in range(3) for partition in (1, 0)]
    out = run(batch)
    assert [(p, o) for _, p, o in out.accepted_events()] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1),
                                                    (1, 2)]
    total = out.spend["tenant:acme|total|all"]
    assert (total.events, total.partition, total.offset) == (6, 1, 2)
    again = run([msg(2, event("1-2"), 1), msg(3, event("1-3"), 1)], seen=dict(out.seen),
                spend=dict(out.spend))
    assert again.spend["tenant:acme|total|all"].events == 7


def test_a_message_whose_decoding_raises_is_the_only_one_dead_lettered(monkeypatch, caplog):
    """The batch's messages are decoded together; should that raise (a bug), each is decoded
    alone, and only the one that raises becomes a processing error."""
    import prsm_events.accounting.ingest as ingest_module

    real = ingest_module.decode_envelope

    def together(*args, **kwargs):
        raise RuntimeError("decoder bug")

    def alone(raw, *args, **kwargs):
        if b'"b"' in raw:
            raise RuntimeError("decoder bug")
        return real(raw, *args, **kwargs)

    monkeypatch.setattr(ingest_module, "decode_batches", together)
    monkeypatch.setattr(ingest_module, "decode_envelope", alone)
    ingest = UsageIngestor(Catalog.shipped(), EventLimits())
    out = ingest.process([msg(0, event("a")), msg(1, event("b")), msg(2, event("c"))],
                         {}.get, {}.get, NOW)
    assert [(d.code, d.source_offset) for d in out.dead_letters] == [("processing_error", 1)]
    assert [p.event.event_id for p, _, _ in out.accepted_events()] == ["a", "c"]
    assert "could not be processed" in caplog.text


def test_a_batch_decoded_whole_is_priced_folded_and_dead_lettered_as_element_by_element(
        monkeypatch):
    """A batch written as the SDK writes it is decoded whole (``fast_path.usage_array``): the
    events a later step refuses carry their JSON as written, and every figure is what the
    element-by-element path gives."""
    import prsm_events.accounting.ingest as ingest
    from prsm_events.events.fast_path import usage_array, usage_json
    from prsm_events.events.usage import UsageEvent

    events = [event("a"), event("b", model="nope"), event("c", cost_usd=5000.0),
              event("d", tags={"team": "x"}), event("a")]
    raw = b"[" + b",".join(usage_json(UsageEvent.model_validate(e)) for e in events) + b"]"
    assert usage_array(raw) is not None
    whole = run([msg(5, raw), msg(6, event("e"))])
    monkeypatch.setattr(ingest, "usage_array", lambda raw: None)
    alone = run([msg(5, raw), msg(6, event("e"))])
    assert [(p.event, p.cost_usd, s, o) for p, s, o in whole.accepted_events()] == [
        (p.event, p.cost_usd, s, o) for p, s, o in alone.accepted_events()]
    assert [p.event.event_id for p, _, _ in whole.accepted_events()] == ["a", "d", "e"]
    assert whole.duplicates == alone.duplicates == 1
    assert whole.spend == alone.spend and whole.seen == alone.seen
    assert [(d.code, d.reason, d.source_index, orjson.loads(d.original))
            for d in whole.dead_letters] == [
        (d.code, d.reason, d.source_index, orjson.loads(d.original)) for d in alone.dead_letters]
    assert [(d.code, orjson.loads(d.original)) for d in whole.dead_letters] == [
        ("unknown_model", events[1]), ("cost_over_cap", events[2])]


def test_a_batch_decoded_whole_writes_again_only_the_events_it_refuses(monkeypatch):
    """Proving the batch is one encoding of all its events; after that, only a refused
    event's JSON is written (its dead letter's original), not every accepted one's."""
    import prsm_events.events.fast_path as fast_path
    from prsm_events.events.usage import UsageEvent

    events = [event(f"e{i}") for i in range(50)] + [event("x", cost_usd=5000.0)]
    raw = b"[" + b",".join(fast_path.usage_json(UsageEvent.model_validate(e))
                           for e in events) + b"]"
    encoded: list[object] = []
    real = fast_path._ENCODE

    def counted(obj: object) -> bytes:
        encoded.append(obj)
        return real(obj)

    monkeypatch.setattr(fast_path, "_ENCODE", counted)
    out = run([msg(7, raw)])
    assert out.accepted_count == 50 and [d.code for d in out.dead_letters] == ["cost_over_cap"]
    assert orjson.loads(out.dead_letters[0].original) == events[-1]
    assert [type(o) for o in encoded] == [list, fast_path.UsageRecord]  # the batch, then x


def test_what_a_batch_in_flight_holds_per_event_is_not_tracked_by_the_collector():
    """Each accepted event's record, its priced form, its seen entry, its settlement and
    its accepted row hold values only (no cycle can pass through them), so Python's
    collector does not track them: up to four batches in flight would otherwise make each
    young collection walk thousands of them, and then the middle ones again."""
    import gc

    from prsm_events.accounting.ledger import Settlement
    from prsm_events.events.fast_path import usage_json
    from prsm_events.events.usage import UsageEvent
    from prsm_events.store.accepted_rows import AcceptedRow

    raw = b"[" + b",".join(usage_json(UsageEvent.model_validate(event(f"e{i}", tags={"a": "b"})))
                           for i in range(3)) + b"]"
    out = run([msg(1, raw), msg(2, event("single"))])
    priced = [p for p, _, _ in out.accepted_events()]
    assert len(priced) == 4 and len(out.seen) == 4
    assert not any(gc.is_tracked(p) for p in priced)
    assert not any(gc.is_tracked(p.event) for p in priced[:3])  # records decoded by msgspec
    assert not any(gc.is_tracked(s) for s in out.seen.values())
    p = priced[0]
    assert not gc.is_tracked(Settlement("acme", "r", 1, p.at, []))
    assert not gc.is_tracked(AcceptedRow.of(p, 0, 1, NOW))


def outcome_facts(out):
    """What an outcome says, rows' costs rounded (a sum's order may differ in the last bit)."""
    return (
        [(p.event.event_id, part, offset, p.cost_usd) for p, part, offset in out.accepted_events()],
        [(d.code, d.source_partition, d.source_offset, d.source_index) for d in out.dead_letters],
        out.duplicates, out.seen,
        {k: (round(r.cost_usd, 9), r.events, r.input_tokens, r.output_tokens, r.partition,
             r.offset) for k, r in out.spend.items()},
    )


def test_a_batch_taken_in_parts_has_the_outcome_of_the_batch_taken_whole():
    """Parts of every size (a message each, a few messages, the whole batch) give one
    outcome: an event id seen in an earlier part is a duplicate in a later one, a message
    delivered twice is taken once wherever its copies fall, spend rows carry each part's
    events to the next, and a stored row's offset (counted before a crash) holds across
    parts."""
    by_partition: list[list[RawMessage]] = [[], []]
    for partition in (0, 1):
        for offset in range(12):
            evs = [event(f"{partition}-{offset}-{i}", tenant=f"t{(offset + i) % 3}",
                         output_tokens=offset + i) for i in range(4)]
            if offset % 4 == 1:
                evs = [*evs[:2], event("0-0-1"), "junk", evs[3]]  # a duplicate, a non-object
            by_partition[partition].append(msg(offset, evs[0], partition) if offset % 5 == 3
                                           else batch(offset, evs, partition))  # one alone
    by_partition[0].insert(6, by_partition[0][2])  # delivered again after a rewind
    by_partition[1].append(msg(99, b"{", 1))
    # fetched alternating partitions, each in its order
    messages = [m for pair in zip(by_partition[1], by_partition[0], strict=False) for m in pair]
    messages += by_partition[0][len(by_partition[1]):]
    seen = {"1-2-0": SeenEvent(1, 0, 0.0, 0)}  # accepted before, elsewhere: a duplicate
    spend = dict(run([by_partition[0][0]]).spend)  # partition 0's first message, counted

    whole = INGEST.process(messages, seen.get, spend.get, NOW)
    assert (whole.duplicates, len(whole.dead_letters), whole.accepted_count) == (7, 7, 77)
    assert whole.spend["tenant:t0|total|all"].events == 26  # each event of t0 once
    for size in (1, 300, 2000, None):
        out = IngestOutcome()
        for part in INGEST.parts(messages, seen.get, spend.get, NOW, part_bytes=size):
            out.absorb(part)
        assert outcome_facts(out) == outcome_facts(whole), size
    assert len(list(INGEST.parts(messages, seen.get, spend.get, NOW, part_bytes=1))) == 25
