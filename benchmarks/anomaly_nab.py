"""Anomaly detection quality on a NAB-format corpus, scored with NAB's method.

    python benchmarks/anomaly_nab.py --data ../shared/data/nab/data \
        --labels ../shared/data/nab/labels/combined_windows.json --out /tmp/nab-results

Runs each detector online over every series listed in the labels file, writes NAB-layout
result files ``OUT/<detector>/<category>/<detector>_<file>.csv`` (``timestamp,value,
anomaly_score,label``; label 1 inside a labelled window) and prints, for every detector, the
normalised scores of the three application profiles at its best corpus-wide threshold.
Works on any NAB-format directory (the full NAB corpus included).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.harness import machine_line  # noqa: E402
from benchmarks.nab_scoring import PROFILES, Series, score_corpus  # noqa: E402
from prsm_events.anomaly import DETECTORS  # noqa: E402


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.strip())


def load_corpus(data: Path, labels: Path) -> list[Series]:
    """Every series named in the labels file (``{"<category>/<file>.csv": [[start, end]]}``)."""
    windows = json.loads(labels.read_text())
    corpus = []
    for name in sorted(windows):
        with (data / name).open(newline="") as f:
            rows = list(csv.DictReader(f))
        corpus.append(Series(
            name,
            [_time(r["timestamp"]) for r in rows],
            [float(r["value"]) for r in rows],
            [(_time(a), _time(b)) for a, b in windows[name]],
        ))
    return corpus


def write_results(out: Path, detector: str, series: Series, scores: list[float]) -> None:
    category, file = series.name.split("/", 1)
    path = out / detector / category / f"{detector}_{file}"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "value", "anomaly_score", "label"])
        for t, v, s in zip(series.timestamps, series.values, scores, strict=True):
            label = int(any(a <= t <= b for a, b in series.windows))
            w.writerow([t.strftime("%Y-%m-%d %H:%M:%S"), repr(v), f"{s:.12g}", label])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="NAB data/ directory")
    ap.add_argument("--labels", type=Path, required=True, help="combined_windows.json")
    ap.add_argument("--out", type=Path, required=True, help="where result files go")
    ap.add_argument("--detector", action="append", choices=sorted(DETECTORS),
                    help="repeatable; default: all")
    args = ap.parse_args(argv)
    if not args.labels.exists():
        sys.exit(f"labels file not found: {args.labels}")
    names = args.detector or list(DETECTORS)
    corpus = load_corpus(args.data, args.labels)
    rows = sum(len(s.values) for s in corpus)
    windows = sum(len(s.windows) for s in corpus)
    print(machine_line())
    print(f"corpus: {len(corpus)} series, {rows} rows, {windows} windows ({args.data})")
    results = {}
    for name in names:
        started = time.perf_counter()
        runs = []
        for series in corpus:
            detector = DETECTORS[name]()
            scores = [detector.update(x, t) for t, x in zip(series.timestamps, series.values,
                                                            strict=True)]
            write_results(args.out, name, series, scores)
            runs.append((series, scores))
        results[name] = runs
        print(f"  ran {name} in {time.perf_counter() - started:.1f} s")
    scored = score_corpus(results)
    header = f"{'detector':16s}" + "".join(f"{p:>20s}" for p in PROFILES)
    print(header + f"{'threshold':>12s}{'TP':>5s}{'FP':>6s}{'FN':>5s}")
    for name in names:
        std = scored[name]["standard"]
        print(f"{name:16s}" + "".join(f"{scored[name][p].score:20.1f}" for p in PROFILES)
              + f"{std.threshold:12.4f}{std.tp:5d}{std.fp:6d}{std.fn:5d}")
    (args.out / "scores.json").write_text(json.dumps(
        {d: {p: vars(s) for p, s in prof.items()} for d, prof in scored.items()}, indent=1))


if __name__ == "__main__":
    main()
