"""The worker's checkpoint glue: saves and restores the watch, and a checkpoint it cannot use
or write is reported in /stats (and logged), never fatal."""

from __future__ import annotations

from pathlib import Path

from prsm_events.scoring import BatchScorer
from prsm_events.watch.spend_watch import SpendWatch
from streams.scoring_timer import ScorerCheckpoints


def watch() -> SpendWatch:
    return SpendWatch(BatchScorer("numpy"), interval_s=60.0)


async def test_saved_then_restored_in_a_new_process(tmp_path: Path) -> None:
    old = watch()
    for _ in range(5):
        old.scorer.step({"tenant:a": 1.0, "tenant:b": 2.0}, {}, bucket=0)
    old.overrun_sent["tenant:a|day"] = 123.0
    saving = ScorerCheckpoints(old, tmp_path / "scoring" / "checkpoint.npz")
    await saving.save()
    assert saving.status["saved_ticks"] == 5 and saving.status["error"] is None

    new = watch()
    ScorerCheckpoints(new, tmp_path / "scoring" / "checkpoint.npz").restore()
    assert list(new.scorer.rows) == ["tenant:a", "tenant:b"] and new.scorer.ticks == 5
    assert new.overrun_sent == {"tenant:a|day": 123.0}


async def test_unusable_or_unwritable_checkpoints_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.npz"
    path.write_bytes(b"garbage")
    fresh = watch()
    glue = ScorerCheckpoints(fresh, path)
    glue.restore()
    assert "unreadable" in glue.status["error"] and len(fresh.scorer) == 0

    ScorerCheckpoints(watch(), tmp_path / "none.npz").restore()  # no file: nothing to say
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    glue = ScorerCheckpoints(watch(), blocked / "checkpoint.npz")  # its parent is a file
    await glue.save()
    assert glue.status["error"].startswith("saving:") and glue.status["saved_ticks"] is None
