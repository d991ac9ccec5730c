"""The batch-scoring benchmark runs end to end on NumPy (tiny sizes; no timing asserted)."""

from __future__ import annotations

import pytest

from benchmarks.scoring import main


def test_the_scoring_benchmark_reports_the_fused_step_and_the_whole_tick(
        capsys: pytest.CaptureFixture[str]) -> None:
    main(["--sizes", "1000", "2000", "--backend", "numpy", "--repeat", "2"])
    out = capsys.readouterr().out
    assert "448 bytes/scope" in out and "992 bytes/scope" in out
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in (["1000"], ["2000"])]
    assert [r[0] for r in rows] == ["1000", "2000"]
    for r in rows:
        fused, tick = float(r[1]), float(r[4])  # each waited for (b2b: back to back)
        assert 0 < fused < tick  # the tick adds the outlook and demand forecasters
