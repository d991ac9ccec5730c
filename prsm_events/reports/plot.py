"""A report with a time axis as a picture: one line per group over the periods, PNG or HTML.

The busiest ``MAX_LINES`` groups (by their total) get a line each; the rest are summed into
one line, ``other``, so the picture stays readable and no money leaves it. A period in which
a group has no row is a zero. HTML is one page: the picture as inline SVG and the report's
table beneath it (no script, nothing fetched).
"""

from __future__ import annotations

import html
import io
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from prsm_events.reports.result import ReportResult

__all__ = ["MAX_LINES", "check_target", "lines_of", "plot_report"]

MAX_LINES = 8


def lines_of(records: Sequence[dict[str, Any]], measure: str, series: Sequence[str]
             ) -> tuple[list[str], dict[str, list[float]]]:
    """The periods, and each line's values over them (the busiest ``MAX_LINES``, then
    ``other``).

    >>> recs = [{"period": "p1", "m": "a", "v": 1.0}, {"period": "p2", "m": "b", "v": 2.0}]
    >>> lines_of(recs, "v", ["m"])
    (['p1', 'p2'], {'b': [0.0, 2.0], 'a': [1.0, 0.0]})
    """
    periods = sorted({r["period"] for r in records})
    at = {p: i for i, p in enumerate(periods)}
    values: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(periods))
    for r in records:
        name = " / ".join(str(r[c]) for c in series) or measure
        values[name][at[r["period"]]] += float(r[measure] or 0.0)
    ranked = sorted(values, key=lambda n: (-sum(values[n]), n))
    lines = {n: values[n] for n in ranked[:MAX_LINES]}
    rest = ranked[MAX_LINES:]
    if rest:
        lines["other"] = [sum(values[n][i] for n in rest) for i in range(len(periods))]
    return periods, lines


def check_target(path: Path, time_axis: bool) -> None:
    """ValueError unless a picture can be drawn to ``path`` (``.png`` or ``.html``) of a
    report with a ``time_axis`` (``--every``)."""
    if path.suffix.lower() not in (".png", ".html"):
        raise ValueError(f"--plot writes .png or .html, not {path.name!r}")
    if not time_axis:
        raise ValueError("a picture needs a time axis: give --every hour or --every day")


def plot_report(result: ReportResult, measure: str, series: Sequence[str], path: Path) -> None:
    """Draw ``measure`` of ``result`` (which has a ``period`` column) to ``path``: ``.png``
    or ``.html``."""
    check_target(path, "period" in result.columns)
    suffix = path.suffix.lower()
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    periods, lines = lines_of(result.records, measure, series)
    times = mdates.date2num(  # type: ignore[no-untyped-call]
        [datetime.fromisoformat(p) for p in periods])
    fig, ax = plt.subplots(figsize=(10, 5), layout="constrained")
    for name, values in lines.items():
        ax.plot(times, values, marker="o" if len(times) < 50 else None, label=name)
    every = result.options.get("every", "")
    ax.set_title(f"{result.name}: {measure} per {every}"
                 + "".join(f", {k} {v}" for k, v in result.options.items() if k != "every"))
    ax.set_ylabel(measure)
    ax.set_xlabel("UTC")
    ax.xaxis_date()
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(  # type: ignore[no-untyped-call]
        ax.xaxis.get_major_locator()))
    ax.grid(alpha=0.3)
    if lines:
        ax.legend(title=" / ".join(series), fontsize="small")
    else:
        ax.text(0.5, 0.5, "no rows", transform=ax.transAxes, ha="center")
    if suffix == ".png":
        fig.savefig(path, dpi=110)
    else:
        svg = io.StringIO()
        fig.savefig(svg, format="svg")
        path.write_text(
            "<!doctype html><meta charset='utf-8'><title>prsm report "
            f"{html.escape(result.name)}</title><body style='font-family:sans-serif'>"
            f"{svg.getvalue()[svg.getvalue().find('<svg'):]}"
            f"<pre>{html.escape(result.render('table'))}</pre></body>")
    plt.close(fig)
