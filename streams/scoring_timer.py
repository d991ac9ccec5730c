"""The scoring timer: every PRSM_SCORING_INTERVAL_S, one batch-scorer tick for all scopes.

Thin: take the metered interval, run ``SpendWatch.tick`` (pure; in a thread on snapshots of the
ledger, so that decisions are not held up by it), hand pacing actions and forecasts to the
decision desk, publish alerts and directives.

Intervals are not scored while the worker catches up (after it starts, a rebalance or a table
recovery; ``CatchUp`` says when it reads the usage and request topics as they are written
again): what it reads then is a backlog, and one interval holding minutes of spend would be
learned as a burst. What the scorer has learned is checkpointed to
``PRSM_HOME/scoring/checkpoint.npz`` every ``PRSM_CHECKPOINT_INTERVAL_S`` and when the worker
stops, and restored when it starts; at each checkpoint (and at a clean stop) the state of the
scopes of the tenants the worker answers for is also published for the worker that owns them
next (``streams.scorer_handoff``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import faust
import mode
from aiokafka.errors import KafkaError

from prsm_events.accounting.budget_figures import BudgetFigures
from prsm_events.accounting.budgets import Budget
from prsm_events.anomaly.findings import AnomalyRule
from prsm_events.kafka.partitioning import KeyPartitions
from prsm_events.scoring.batch import BatchScorer
from prsm_events.scoring.checkpoint import CheckpointError, read_checkpoint, write_checkpoint
from prsm_events.scoring.forecast_params import ForecastParams
from prsm_events.scoring.pacing_step import PacingParams
from prsm_events.settings import Settings
from prsm_events.store.snapshot_rows import SnapshotClock, snapshot_records
from prsm_events.watch.meter import MeterInterval
from prsm_events.watch.spend_watch import Answers, SpendWatch, WatchReport
from streams.catch_up import CatchUp
from streams.config_feeds import ConfigFeeds
from streams.control import SpendControl
from streams.faust_compat import record_batches, steady
from streams.record_batches import RecordBatches
from streams.scorer_handoff import ScorerHandoff

__all__ = ["FORGET_AFTER_S", "ScorerCheckpoints", "build_watch",
           "checkpoint_path", "pacing_records", "pacing_to_policies", "register_scoring",
           "tick_off_loop"]

log = logging.getLogger("prsm.scoring")
FORGET_AFTER_S = 14 * 86400.0
"""A scope with neither spend nor demand for this long is dropped from the scorer."""
FIGURES_AT_ONCE = 5_000
"""Budgets whose ledger figures the tick reads between two chances for decisions to run
(about 5 ms of the loop)."""
RECORDS_AT_ONCE = 10_000
"""Pacing records handed to the record batches between two chances for decisions to run."""


class ScorerCheckpoints(mode.Service):
    """Restores the watch's scorer and memory from ``path`` (``restore``, when the worker is
    built) and saves them (``save``: every ``every_s`` from the timer, and when the worker
    stops)."""

    def __init__(self, watch: SpendWatch, path: Path,
                 every_s: float = 300.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.watch = watch
        self.path = path
        self.every_s = every_s
        self.saved_at = time.monotonic()
        self.saving = asyncio.Lock()  # the timer's save and the stop's must not interleave
        self.status: dict[str, Any] = {"path": str(path), "restored_scopes": 0,
                                       "saved_ticks": None, "error": None}

    def restore(self) -> None:
        try:
            state, memory = read_checkpoint(self.path, self.watch.interval_s)
            self.watch.scorer.load(state)
        except FileNotFoundError:
            return
        except (CheckpointError, ValueError) as exc:
            self.status["error"] = str(exc)
            log.warning("scorer checkpoint not used, learning from scratch: %s", exc)
            return
        self.watch.recall(memory)
        self.status["restored_scopes"] = len(state.scopes)
        log.warning("scorer restored from %s: %d scopes, %d ticks learned", self.path,
                    len(state.scopes), state.ticks)

    async def save(self) -> None:
        async with self.saving:
            state = self.watch.scorer.export()  # a copy, taken between ticks
            memory = self.watch.memory()
            self.saved_at = time.monotonic()
            try:
                await asyncio.to_thread(write_checkpoint, self.path, state,
                                        self.watch.interval_s, memory)
            except OSError as exc:
                self.status["error"] = f"saving: {exc}"
                log.error("scorer checkpoint not saved to %s: %s", self.path, exc)
                return
            self.status["saved_ticks"] = state.ticks
            self.status["error"] = None

    def due(self) -> bool:
        return time.monotonic() - self.saved_at >= self.every_s

    async def on_stop(self) -> None:
        await self.save()


async def tick_off_loop(watch: SpendWatch, interval: MeterInterval, budgets: list[Budget],
                        figures: Callable[[Sequence[Budget]], BudgetFigures], now: float,
                        lock: asyncio.Lock, answers: Answers | None = None,
                        partitions: frozenset[int] | None = None) -> WatchReport:
    """``watch.tick`` with the event loop free to decide meanwhile (with 10^6 budgets a tick
    takes seconds). The ledger's figures are read here, in the loop, where the agents change
    the ledger (``figures(slice)``, ``FIGURES_AT_ONCE`` budgets at a time: each budget's
    figures are whole, and decisions run in between); the tick runs in a thread on them,
    holding ``lock`` until the thread is done, also when cancelled, so that a checkpoint save
    does not read the scorer halfway through a tick. ``answers``, ``partitions``:
    ``SpendWatch.tick``'s."""
    parts: list[BudgetFigures] = []
    for lo in range(0, len(budgets), FIGURES_AT_ONCE):
        parts.append(figures(budgets[lo:lo + FIGURES_AT_ONCE]))
        await asyncio.sleep(0)  # let decisions in between
    read = BudgetFigures.concat(parts) if parts else BudgetFigures.of_views([], now)
    async with lock:
        ticking = asyncio.ensure_future(asyncio.to_thread(
            watch.tick, interval, budgets, read, now, answers, partitions))
        try:
            return await asyncio.shield(ticking)
        except asyncio.CancelledError:  # the worker stops: the thread cannot be; the lock
            await asyncio.wait([ticking])  # is held until it is done (a save comes next)
            raise


def pacing_records(report: WatchReport, partitions: int, places: KeyPartitions
                   ) -> list[tuple[int, bytes, bytes | None]]:
    """(partition, key, value) of each pacing directive of ``report`` and each lift (a null
    value), for a policies topic of ``partitions``."""
    keys = report.paced.keys() + report.lifts
    values: list[bytes | None] = [*report.paced.values(), *[None] * len(report.lifts)]
    records = [(partition, key.encode(), value) for key, partition, value
               in zip(keys, places.of(keys, partitions), values, strict=True)]
    places.forget(report.lifts)
    return records


async def pacing_to_policies(batches: RecordBatches, topic: str, report: WatchReport,
                             places: KeyPartitions) -> None:
    """Publish ``report``'s pacing directives and lifts to ``topic`` as record batches (at
    10^6 budgets a tick may have hundreds of thousands), their JSON built beside the loop,
    and wait until the broker has them (``KafkaError`` if it refused them)."""
    partitions = len(await batches.producer.partitions_for(topic))
    records = await asyncio.to_thread(pacing_records, report, partitions, places)
    for lo in range(0, len(records), RECORDS_AT_ONCE):
        for partition, key, value in records[lo:lo + RECORDS_AT_ONCE]:
            batches.add(topic, partition, key, value)
        await asyncio.sleep(0)  # let decisions in between
    for sent in dict.fromkeys(await batches.send()):  # (one per record batch)
        await sent


def build_watch(settings: Settings) -> SpendWatch:
    """The spend watch and batch scorer a worker runs with ``settings`` (nothing learned)."""
    interval, timescale = settings.scoring_interval_s, settings.scoring_timescale_s
    scorer = BatchScorer(settings.scoring_backend,
                         forecast=ForecastParams.every(interval, timescale),
                         pacing=PacingParams.every(interval, timescale),
                         forget_after=round(FORGET_AFTER_S / interval))
    return SpendWatch(
        scorer, interval,
        AnomalyRule(threshold=settings.anomaly_threshold,
                    min_excess_usd=settings.anomaly_min_excess_usd),
        settings.anomaly_throttle_fraction, settings.anomaly_throttle_s)


def checkpoint_path(settings: Settings) -> Path:
    """Where a worker keeps its scorer's checkpoint."""
    return settings.home / "scoring" / "checkpoint.npz"


def register_scoring(
    app: faust.App, settings: Settings, control: SpendControl, feeds: ConfigFeeds
) -> SpendWatch:
    watch = build_watch(settings)
    scorer = watch.scorer
    log.warning("batch scoring on %s every %g s", scorer.backend, settings.scoring_interval_s)

    checkpoints = ScorerCheckpoints(watch, checkpoint_path(settings),
                                    settings.checkpoint_interval_s)
    checkpoints.restore()
    app.add_dependency(checkpoints)
    handoff = ScorerHandoff(app, settings, watch, answers=control.answering,
                            ticking=checkpoints.saving)
    app.add_dependency(handoff)
    catch_up = CatchUp()
    skipped = 0
    snapshots = SnapshotClock(settings.snapshot_interval_s)
    snapshots_topic = settings.topic("snapshots")

    written: dict[str, Any] = {"records": 0, "last": None}
    """Snapshot records written, and when the last were (``/stats`` scoring)."""

    async def write_snapshots(report: WatchReport, every: bool) -> None:
        """The outlooks of the budgets this worker answers for (``every``: all, else those
        whose period closes before the next tick), to the snapshots topic (the sink writes
        them to ``budget_snapshots``)."""
        control.sync_generation()
        records = await asyncio.to_thread(
            snapshot_records, report.outlooks, control.answers_for, every=every,
            closing_within_s=settings.scoring_interval_s,
            max_bytes=settings.max_message_bytes // 2)
        if not records:
            return
        batches = record_batches(app)
        for i, value in enumerate(records):
            batches.add(snapshots_topic, i % settings.partitions, None, value)
        try:
            for sent in await batches.send():
                await sent
        except KafkaError as exc:  # derived figures: the next interval writes them again
            log.error("budget snapshots not written (%d records): %r", len(records), exc)
            return
        written["records"] += len(records)
        written["last"] = time.time()

    places = KeyPartitions()  # the same keys come back at every tick while they throttle

    async def publish(report: WatchReport) -> None:
        for alert in report.alerts:
            tenant = alert.scope.split("/")[0].removeprefix("tenant:")
            await control.alerts_topic.send(key=tenant.encode(),
                                            value=alert.model_dump_json().encode())
            log.warning("alert %s: %s", alert.kind, alert.message)
        for directive in report.directives:
            await control.policies_topic.send(key=directive.key.encode(),
                                              value=directive.model_dump_json().encode())
        control.stats.alerts += len(report.alerts)
        control.stats.directives += len(report.directives)
        if len(report.paced) or report.lifts:
            await publish_pacing(report)

    async def publish_pacing(report: WatchReport) -> None:
        try:
            await pacing_to_policies(record_batches(app),
                                     control.policies_topic.get_topic_name(), report, places)
        except KafkaError as exc:  # directives come again next interval; a lift's directive
            log.error("pacing directives not published (%d directives, %d lifts): %r",
                      len(report.paced), len(report.lifts), exc)  # lapses by itself
            return
        control.stats.directives += len(report.paced)

    @app.timer(interval=settings.scoring_interval_s)  # type: ignore[untyped-decorator]
    async def score_spend() -> None:
        nonlocal skipped
        if not (steady(app) and feeds.ready.is_set()):
            catch_up.lost_track()
            return
        if catch_up.behind:  # this interval holds (part of) a backlog: not learned
            backlogs = [await tracker.backlog() for tracker in control.trackers]
            catch_up.observe(backlogs)
            control.meter.take()  # after the look, no wait between: it holds what was read
            skipped += 1
            control.scoring = {**control.scoring, "skipped": skipped,
                               "checkpoint": checkpoints.status}
            log.info("interval not scored: catching up (%d messages to read)",
                     sum(b.waiting for b in backlogs))
            return
        control.sync_generation()  # (which partitions it owns: after a rebalance too)
        if control.ledger.owned is not None:  # what was learned of partitions it gained
            await handoff.recover(control.ledger.owned)  # (before the interval is taken)
        now = time.time()
        interval = control.meter.take()
        control.sync_generation()  # (which budgets it answers for: after a rebalance too)
        budgets = await asyncio.to_thread(control.watched, list(control.book))
        report = await tick_off_loop(
            watch, interval, budgets,
            lambda some: control.ledger.figures(some, now), now, checkpoints.saving,
            control.answering, control.ledger.owned)
        handoff.stats["adopted"] += len(report.adopted)
        control.scoring = {"backend": scorer.backend, "ticks": scorer.ticks,
                           "scopes": len(scorer), "parked": len(scorer.parked),
                           "handoff": dict(handoff.stats), "budgets": len(budgets),
                           "tick_ms": round(1000 * (time.time() - now), 3),
                           "interval_s": None if interval.seconds is None
                           else round(interval.seconds, 3),
                           "findings": len(report.findings), "skipped": skipped,
                           "checkpoint": checkpoints.status, "snapshots": written}
        control.outlooks = report.outlooks
        control.desk.pacing = report.pacing
        control.desk.forecasts = report.outlooks.figures()
        await publish(report)
        if report.parked:
            await handoff.publish(report.parked)
        if settings.snapshot_interval_s > 0:
            await write_snapshots(report, every=snapshots.due(now))
        if checkpoints.due():
            await checkpoints.save()
            await handoff.publish_learned()

    return watch
