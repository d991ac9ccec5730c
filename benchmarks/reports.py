"""Reports on 10^6 usage rows: how long each takes on the embedded ClickHouse engine.

    python benchmarks/reports.py --rows 1000000

Writes ``--rows`` usage rows (and a decision for every tenth, an alert for every 10,000th,
and hourly snapshots of ``--budgets`` day budgets) into a fresh chDB store the way the sink
does, in inserts of ``--batch`` rows (so the
tables hold many parts, merged in the background as ClickHouse does), then runs every report
(``prsm_events.reports``) with the options below ``--repeat`` times each and prints the
median and the slowest, in milliseconds, with the rows each returned. Rows span ``--days``
days over 50 tenants, 20 services, 200 API keys, 6 models and a tag.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.harness import machine_line  # noqa: E402

MODELS = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "gemini-2.5-flash", "gpt-4.1",
          "deepseek-chat"]
ASKED = [
    ("spend", {}),
    ("spend", {"every": "day", "by": "service"}),
    ("spend", {"every": "hour", "by": "tenant", "since": "-7d"}),
    ("spend", {"by": "api_key,model"}),
    ("spend", {"by": "tag:feature", "tenant": "t7"}),
    ("top-movers", {"by": "service,model", "since": "-1d"}),
    ("decisions", {"every": "day"}),
    ("routing-savings", {}),
    ("anomalies", {}),
    ("budget-utilisation", {}),
    ("budget-utilisation", {"every": "day"}),
    ("forecast-accuracy", {}),
]


def inserts(lines: Iterable[bytes], rows: int) -> Iterator[bytes]:
    """``lines`` joined ``rows`` at a time (one insert each)."""
    held: list[bytes] = []
    for line in lines:
        held.append(line)
        if len(held) == rows:
            yield b"".join(held)
            held = []
    if held:
        yield b"".join(held)


def usage_records(n: int, days: int, start: datetime, rows: int) -> Iterator[bytes]:
    """Accepted records (``store.accepted_rows``) of ``rows`` rows each, ``n`` rows in all."""
    from prsm_events.store.accepted_rows import AcceptedRow, rows_record

    step = days * 86400.0 / n
    held: list[AcceptedRow] = []
    for i in range(n):
        ts = start + timedelta(seconds=i * step)
        held.append(AcceptedRow(
            f"e{i}", ts, f"t{i % 50}", f"s{i % 20}", f"team{i % 7}", f"k{i % 200}", f"r{i}",
            "openai", MODELS[i % 6], "llm", "ok", 500 + i % 1000, 0, 0, 100 + i % 300, 0,
            round(0.0001 * (i % 97 + 1), 9), "client", 250.0, {"feature": f"f{i % 9}"},
            i % 12, i, ts))
        if len(held) == rows or i == n - 1:
            yield rows_record(held)
            held = []


def decision_rows(n: int, days: int, start: datetime) -> Iterator[bytes]:
    from prsm_events.events.decision import Action, DecisionRecord, ReasonRecord, encode_decision
    from prsm_events.store.decision_rows import decision_row

    actions = [Action.ALLOW, Action.ROUTE, Action.REJECT, Action.DEFER]
    codes = ["within_budget", "routed_cheaper_model", "over_budget", "deferred_low_priority"]
    step = days * 86400.0 / n
    for i in range(n):
        a = i % 4
        yield decision_row(encode_decision(DecisionRecord(
            request_id=f"r{i}", ts=start + timedelta(seconds=i * step), tenant=f"t{i % 50}",
            action=actions[a], model="gpt-4o-mini" if a == 1 else "gpt-4o",
            requested_model="gpt-4o", est_cost_usd=0.0012 if a == 1 else 0.0075,
            requested_est_cost_usd=0.0075 if a == 1 else None,
            quality_given_up=0.08 if a == 1 else None, reason=ReasonRecord(codes[a], "m"),
            budget={"scope": f"tenant:t{i % 50}", "limit_usd": 100.0, "spent_usd": 1.0}
        )), i % 12, i)


def snapshot_rows(budgets: int, days: int, start: datetime) -> Iterator[bytes]:
    """Hourly snapshots of ``budgets`` day budgets and each day's closing snapshot."""
    import msgspec

    from prsm_events.store.snapshot_rows import SnapshotRow

    encode = msgspec.json.Encoder().encode
    for day in range(days):
        begin = start.replace(hour=0, minute=0, second=0) + timedelta(days=day)
        for hour in [*range(24), 23.99]:
            at = begin + timedelta(hours=hour)
            for b in range(budgets):
                used = 0.4 * hour * (1 + b % 5)
                yield encode(SnapshotRow(
                    at, f"tenant:t{b}|day", f"tenant:t{b}", "day", begin,
                    begin + timedelta(days=1), 100.0, round(used, 9), 10.0 * (1 + b % 5),
                    8.0 * (1 + b % 5), 12.0 * (1 + b % 5), None, hour < 6)) + b"\n"


def alert_rows(n: int, start: datetime) -> bytes:
    from prsm_events.events.alerts import Alert
    from prsm_events.store.alert_rows import alert_row

    return b"".join(alert_row(Alert(
        alert_id=f"a{i}", ts=start + timedelta(hours=i), kind="anomaly", scope=f"tenant:t{i}",
        severity="high", observed=10.0, expected=2.0, score=5.0, message="m",
        driver="service:s1").model_dump_json().encode()) for i in range(n))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--budgets", type=int, default=1000, help="day budgets with hourly "
                        "snapshots (and a closing one per day) over --days")
    args = parser.parse_args()

    from prsm_events.reports import run_report
    from prsm_events.store.clickhouse import ClickHouseStore

    print(machine_line())
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(days=args.days)
    with tempfile.TemporaryDirectory() as tmp:
        store = ClickHouseStore(f"chdb://{tmp}/ch")
        began = time.perf_counter()
        for record in usage_records(args.rows, args.days, start, args.batch):
            store.insert_json("usage", record)
        for chunk in inserts(decision_rows(args.rows // 10, args.days, start), args.batch):
            store.insert_json("decisions", chunk)
        store.insert_json("alerts", alert_rows(max(1, args.rows // 10_000), start))
        for chunk in inserts(snapshot_rows(args.budgets, args.days, start), args.batch):
            store.insert_json("budget_snapshots", chunk)
        wrote = time.perf_counter() - began
        [(parts,)] = store.query("SELECT count() FROM system.parts WHERE active AND "
                                 "database = '{db}' AND table = 'usage'")
        snapshots = args.budgets * args.days * 25
        print(f"wrote {args.rows:,} usage rows, {args.rows // 10:,} decisions, {snapshots:,} "
              f"budget snapshots in {wrote:.1f} s ({args.batch:,} rows an insert); usage parts "
              f"now: {parts}")
        print(f"{'report':<20} {'options':<48} {'rows':>6} {'median ms':>10} {'max ms':>8}")
        for name, given in ASKED:
            options = {k: (now + timedelta(days=-int(v[1:-1]))).isoformat()
                       if isinstance(v, str) and v.startswith("-") else v
                       for k, v in given.items()}
            times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                result = run_report(name, options, now, store.query)
                times.append(1000 * (time.perf_counter() - t0))
            shown = ", ".join(f"{k}={v}" for k, v in given.items())
            print(f"{name:<20} {shown:<48} {len(result.records):>6} "
                  f"{statistics.median(times):>10.1f} {max(times):>8.1f}")
        store.close()


if __name__ == "__main__":
    main()
