"""The escrow round: every PRSM_ESCROW_INTERVAL_S (at once when a request waits for
allotment), move the allotments of global budgets between partitions.

Thin: ``SpendControl.move_allotments`` runs ``Escrow.step`` for each hard global budget,
writes the moves to the ledger table, and publishes them on the allotments topic once the
broker has them; ``ConfigFeeds`` reads that topic back into every worker's escrow.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import faust

from prsm_events.settings import Settings
from streams.config_feeds import ConfigFeeds
from streams.control import SpendControl
from streams.faust_compat import steady
from streams.fencing import Fenced

__all__ = ["register_allotments"]

log = logging.getLogger("prsm.allotments")


def register_allotments(app: faust.App, settings: Settings, control: SpendControl,
                        feeds: ConfigFeeds) -> None:
    @app.task  # type: ignore[untyped-decorator]
    async def move_allotments() -> None:
        while not app.should_stop:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(control.escrow_due.wait(), settings.escrow_interval_s)
            control.escrow_due.clear()
            if not (steady(app) and feeds.ready.is_set()):
                continue
            try:
                control.stats.allotment_records += await control.move_allotments(time.time())
            except asyncio.CancelledError:
                raise
            except Fenced:  # a rebalance began: the next round, steady again, moves them
                continue
            except Exception:  # the broker may be away: the next round writes them again
                log.exception("allotments could not be moved this round")
