"""The scoring timer: every PRSM_SCORING_INTERVAL_S, one batch-scorer tick for all scopes.

Thin: take the metered interval, run ``SpendWatch.tick`` (pure), hand pacing actions and
forecasts to the decision desk, publish alerts and directives.
"""

from __future__ import annotations

import logging
import time

import faust

from prsm_events.anomaly.findings import AnomalyRule
from prsm_events.scoring.batch import BatchScorer
from prsm_events.scoring.forecast_step import ForecastParams
from prsm_events.settings import Settings
from prsm_events.spend_watch import SpendWatch, WatchReport
from streams.config_feeds import ConfigFeeds
from streams.control import SpendControl
from streams.ingest import steady

__all__ = ["register_scoring"]

log = logging.getLogger("prsm.scoring")


def register_scoring(
    app: faust.App, settings: Settings, control: SpendControl, feeds: ConfigFeeds
) -> SpendWatch:
    per_day = 86400.0 / settings.scoring_interval_s  # weekday offsets learn per day
    scorer = BatchScorer(settings.scoring_backend,
                         forecast=ForecastParams(intervals_per_day=per_day))
    log.warning("batch scoring on %s every %g s", scorer.backend, settings.scoring_interval_s)
    watch = SpendWatch(
        scorer, settings.scoring_interval_s,
        AnomalyRule(threshold=settings.anomaly_threshold,
                    min_excess_usd=settings.anomaly_min_excess_usd),
        settings.anomaly_throttle_fraction, settings.anomaly_throttle_s)

    async def publish(report: WatchReport) -> None:
        for alert in report.alerts:
            tenant = alert.scope.split("/")[0].removeprefix("tenant:")
            await control.alerts_topic.send(key=tenant.encode(),
                                            value=alert.model_dump_json().encode())
            log.warning("alert %s: %s", alert.kind, alert.message)
        for directive in report.directives:
            await control.policies_topic.send(key=directive.key.encode(),
                                              value=directive.model_dump_json().encode())
        for key in report.lifts:
            await control.policies_topic.send(key=key.encode(), value=None)
        control.stats.alerts += len(report.alerts)
        control.stats.directives += len(report.directives)

    @app.timer(interval=settings.scoring_interval_s)  # type: ignore[untyped-decorator]
    async def score_spend() -> None:
        if not (steady(app) and feeds.ready.is_set()):
            return
        now = time.time()
        report = watch.tick(control.meter.take(), control.book,
                            lambda b: control.ledger.view(b, b.tenant or "", now), now)
        control.scoring = {"backend": scorer.backend, "ticks": scorer.ticks,
                           "scopes": len(scorer), "tick_ms": round(1000 * (time.time() - now), 3),
                           "findings": len(report.findings)}
        control.outlooks = report.outlooks
        control.desk.pacing = report.pacing
        control.desk.forecasts = {k: o.figures() for k, o in report.outlooks.items()}
        await publish(report)

    return watch
