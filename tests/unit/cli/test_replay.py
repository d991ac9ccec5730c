from datetime import UTC, datetime
from pathlib import Path

import pytest

from prsm_events.cli.replay import (
    TraceRow,
    WorkloadSpread,
    read_trace,
    synthetic_trace,
    trace_events,
)

START = datetime(2026, 1, 1, tzinfo=UTC)
SHARED = Path(__file__).resolve().parents[4] / "shared/data/azure-llm-2023"


def test_spread_is_deterministic_by_seed_and_varies_with_it():
    rows = synthetic_trace(200, seed=1)
    a = [e for _, e in trace_events(rows, WorkloadSpread(seed=3), START, 10)]
    b = [e for _, e in trace_events(rows, WorkloadSpread(seed=3), START, 10)]
    c = [e for _, e in trace_events(rows, WorkloadSpread(seed=4), START, 10)]
    assert a == b
    assert [e.tenant for e in a] != [e.tenant for e in c]
    assert len({e.tenant for e in a}) == 5


def test_time_is_compressed():
    rows = [TraceRow(0, 1, 1), TraceRow(120, 1, 1)]
    at = [t for t, _ in trace_events(rows, WorkloadSpread(), START, speed=60)]
    assert at == [0, 2]
    with pytest.raises(ValueError):
        list(trace_events(rows, WorkloadSpread(), START, speed=0))


def test_reads_trace_csv(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n"
                    "2023-11-16 18:17:04.0319600,3180,8\n2023-11-16 18:17:03.9799600,4808,10\n")
    rows = read_trace(path)
    assert rows[0] == TraceRow(0.0, 4808, 10)
    assert rows[1].offset_s == pytest.approx(0.052)
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="missing columns"):
        read_trace(tmp_path / "bad.csv")


@pytest.mark.skipif(not SHARED.exists(), reason="../shared/data (Azure LLM trace) is absent")
def test_reads_the_real_azure_trace():
    rows = read_trace(SHARED / "AzureLLMInferenceTrace_code.csv")
    assert len(rows) == 8819  # the data README says 8,818; the file holds 8,819 rows
    assert 3400 < rows[-1].offset_s <= 3600  # about one hour
