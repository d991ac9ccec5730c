"""The tick benchmark runs both ways on a small book (its figures are for docs/benchmarks.md)."""

from __future__ import annotations

import pytest

from benchmarks.watch_tick import main


def test_it_times_the_tick_in_and_beside_the_loop(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--budgets", "40", "--period", "day", "24h", "--warm", "12", "--repeat", "1"])
    out = capsys.readouterr().out.splitlines()
    assert out[1:3] == ["backend: numpy", "publish: made, not sent"]
    rows = [line.split() for line in out[4:]]
    assert [(r[0], r[1], " ".join(r[2:-5])) for r in rows] == [
        ("40", "day", "in the loop"), ("40", "day", "beside the loop"),
        ("40", "24h", "in the loop"), ("40", "24h", "beside the loop")]
    assert all(float(r[-5]) > 0 for r in rows)  # the tick took time
    # warmed up past the overrun alerts: the paced half of the day budgets throttles
    assert [int(r[-4]) for r in rows] == [20, 20, 0, 0]


def test_a_backend_that_is_not_there_is_refused_with_the_reason() -> None:
    with pytest.raises(SystemExit, match="--backend tpu: unknown scoring backend 'tpu'"):
        main(["--backend", "tpu", "--budgets", "40"])
