"""NAB scoring, checked against hand-computed cases, and the harness on NAB-format files."""

from __future__ import annotations

import csv
import json
import math
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from benchmarks.anomaly_nab import load_corpus, main
from benchmarks.nab_scoring import PROFILES, Series, scaled_sigmoid, score_corpus

T0 = datetime(2024, 1, 1)
STEPS = [T0 + timedelta(minutes=i) for i in range(1000)]
WINDOW = (STEPS[500], STEPS[599])  # 100 rows, well after the 150-row probation


def one(scores: list[float], windows: list[tuple[datetime, datetime]] | None = None,
        profile: str = "standard") -> float:
    s = Series("cat/x.csv", STEPS, [0.0] * 1000, [WINDOW] if windows is None else windows)
    return score_corpus({"d": [(s, scores)]})["d"][profile].score


def alarm_at(*rows: int) -> list[float]:
    return [1.0 if i in rows else 0.0 for i in range(1000)]


def test_sigmoid_matches_nab() -> None:
    assert scaled_sigmoid(-1.0) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(3.0) == -1.0 and scaled_sigmoid(10.0) == -1.0


def test_perfect_is_100_and_null_is_0_in_every_profile() -> None:
    for profile in PROFILES:
        assert one(alarm_at(500), profile=profile) == pytest.approx(100.0)
        assert one([0.0] * 1000, profile=profile) == pytest.approx(0.0)


def test_earlier_in_the_window_scores_higher_and_only_the_best_detection_counts() -> None:
    early, late = one(alarm_at(510)), one(alarm_at(590))
    assert 0 < late < early < 100
    assert one(alarm_at(510, 590)) == pytest.approx(early)  # second TP in a window adds 0


def test_false_positives_cost_their_profile_weight() -> None:
    # A FP before any window costs fp weight (sigmoid -1): standard 0.11, low-FP 0.22.
    raw_std = 1.0 - 0.11  # TP at the window start plus one early FP
    raw_lfp = 1.0 - 0.22
    assert one(alarm_at(200, 500)) == pytest.approx(100 * (raw_std + 1) / 2)
    assert one(alarm_at(200, 500), profile="reward_low_FP_rate") == pytest.approx(
        100 * (raw_lfp + 1) / 2)
    # just after the window, the penalty is smaller than far after it
    assert one(alarm_at(500, 601)) > one(alarm_at(500, 900))


def test_probationary_rows_are_not_scored() -> None:
    assert one(alarm_at(10, 500)) == pytest.approx(100.0)  # the FP at row 10 is on probation


def test_threshold_is_chosen_for_the_best_total() -> None:
    scores = [0.0] * 1000
    scores[500] = 0.9     # the TP
    scores[300] = 0.95    # a FP scored higher: the best threshold must still include the TP
    scores[700] = 0.5     # a FP below the TP: excluded by the best threshold
    result = score_corpus({"d": [(Series("c/x.csv", STEPS, [0.0] * 1000, [WINDOW]), scores)]})
    best = result["d"]["standard"]
    assert best.threshold == 0.9 and best.tp == 1 and best.fp == 1
    assert best.score == pytest.approx(100 * ((1 - 0.11) + 1) / 2)


def write_nab(root: Path) -> None:
    data = root / "data" / "cat"
    data.mkdir(parents=True)
    windows = {}
    for name, spike in (("a.csv", 700), ("b.csv", 800)):
        with (data / name).open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["timestamp", "value"])
            for i, t in enumerate(STEPS):
                w.writerow([t.strftime("%Y-%m-%d %H:%M:%S"),
                            10 + (i % 7) + (90 if spike <= i < spike + 5 else 0)])
        windows[f"cat/{name}"] = [[f"{STEPS[spike - 20]:%Y-%m-%d %H:%M:%S}.000000",
                                   f"{STEPS[spike + 20]:%Y-%m-%d %H:%M:%S}.000000"]]
    (root / "labels").mkdir()
    (root / "labels" / "combined_windows.json").write_text(json.dumps(windows))


def test_harness_writes_nab_layout_and_scores_any_nab_directory(tmp_path: Path) -> None:
    write_nab(tmp_path)
    out = tmp_path / "results"
    main(["--data", str(tmp_path / "data"), "--labels",
          str(tmp_path / "labels" / "combined_windows.json"), "--out", str(out),
          "--detector", "zscore", "--detector", "prsm"])
    path = out / "prsm" / "cat" / "prsm_a.csv"
    with path.open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["timestamp", "value", "anomaly_score", "label"]
    assert len(rows) == 1000 and sum(int(r["label"]) for r in rows) == 41
    scores = json.loads((out / "scores.json").read_text())
    assert set(scores) == {"zscore", "prsm"} and set(scores["prsm"]) == set(PROFILES)
    assert scores["prsm"]["standard"]["score"] > 50  # a clean spike in each file is found
    assert len(load_corpus(tmp_path / "data", tmp_path / "labels" / "combined_windows.json")) == 2


NAB = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "nab"


@pytest.mark.skipif(not NAB.exists(), reason=f"NAB subset not found at {NAB} (../shared/data)")
def test_real_nab_corpus_loads_with_its_windows() -> None:
    corpus = load_corpus(NAB / "data", NAB / "labels" / "combined_windows.json")
    assert len(corpus) >= 40 and sum(len(s.windows) for s in corpus) > 50
    taxi = next(s for s in corpus if s.name == "realKnownCause/nyc_taxi.csv")
    assert len(taxi.values) == 10320 and len(taxi.windows) == 5
