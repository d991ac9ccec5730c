from __future__ import annotations

import pytest

from prsm_events.decisions.provider_health import ProviderHealth


def test_failures_lower_availability_and_decay_away() -> None:
    h = ProviderHealth(half_life_s=60)
    for i in range(9):
        h.observe("openai", "gpt-4o", "timeout", None, 100.0 + i)
    low = h.availability("openai", "gpt-4o", 110.0)
    assert low == pytest.approx(0.106, abs=0.005)  # 9 decayed timeouts, 1 prior success
    assert h.availability("openai", "gpt-4o", 110.0 + 600) > 0.9
    for i in range(20):
        h.observe("openai", "gpt-4o", "ok", 500.0, 120.0 + i)
    row = h.snapshot(140.0)[0]
    assert row["timeout_share"] < 0.5 and row["latency_ms"] == pytest.approx(500.0)
    assert h.availability("azure", "gpt-4o", 0.0) == 1.0
