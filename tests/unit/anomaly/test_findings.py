from __future__ import annotations

import numpy as np

from prsm_events.anomaly import AnomalyRule, find_anomalies
from prsm_events.scoring.batch import ScopeScores


def scores(rows: dict[str, tuple[float, float, float, float]]) -> ScopeScores:
    """scope -> (observed, score, sigma, expected)"""
    cols = list(zip(*rows.values(), strict=True))
    return ScopeScores(list(rows), *(np.array(c) for c in (cols[0], cols[1], cols[2], cols[3])))


def test_threshold_sigma_and_minimum_excess_all_apply() -> None:
    s = scores({
        "tenant:a": (5.0, 0.9, 6.0, 1.0),      # anomalous, high
        "tenant:b": (5.0, 0.5, 6.0, 1.0),      # score below threshold
        "tenant:c": (5.0, 0.9, 2.0, 1.0),      # under 3 sigma
        "tenant:d": (1.005, 0.9, 6.0, 1.0),    # a fraction of a cent over
        "tenant:e": (2.0, 0.9, 4.0, 1.0),      # anomalous, warning
    })
    found = {f.scope: f.severity for f in find_anomalies(s, AnomalyRule(), now=0.0)}
    assert found == {"tenant:a": "high", "tenant:e": "warning"}


def test_tenant_finding_names_the_narrowest_dimension_that_carries_the_excess() -> None:
    s = scores({
        "tenant:a": (9.0, 0.9, 7.0, 1.0),
        "tenant:a/model:gpt-4o": (5.0, 0.4, 1.0, 4.0),      # +1: too small a part
        "tenant:a/api_key:leaked": (6.0, 0.95, 9.0, 0.5),   # +5.5, 12x its normal: the driver
        "tenant:a/service:chat": (9.0, 0.9, 6.0, 1.0),      # +8, but all traffic is here (9x)
    })
    [f] = find_anomalies(s, AnomalyRule(), now=0.0)
    assert f.scope == "tenant:a" and f.driver == "tenant:a/api_key:leaked"
    alert = f.alert(60.0)
    assert alert.kind == "anomaly" and alert.driver == "tenant:a/api_key:leaked"
    assert alert.observed == 9.0 and alert.expected == 1.0
    directive = f.directive(0.5, 900.0)
    assert directive.scope == "tenant:a/api_key:leaked" and directive.origin == "anomaly"
    assert directive.allow_fraction == 0.5


def test_a_dimension_with_a_small_part_of_the_excess_is_not_the_driver() -> None:
    s = scores({
        "tenant:a": (9.0, 0.9, 7.0, 1.0),
        "tenant:a/model:new": (0.5, 0.9, 9.0, 0.001),       # 500x, but +0.5 of +8
        "tenant:a/service:chat": (9.0, 0.9, 6.0, 1.0),
    })
    [f] = find_anomalies(s, AnomalyRule(), now=0.0)
    assert f.driver == "tenant:a/service:chat"


def test_sub_scope_alone_is_reported_when_its_tenant_is_not() -> None:
    s = scores({
        "tenant:a": (3.0, 0.3, 1.0, 2.5),
        "tenant:a/api_key:k1": (2.0, 0.9, 8.0, 0.1),
    })
    [f] = find_anomalies(s, AnomalyRule(), now=0.0)
    assert f.scope == "tenant:a/api_key:k1" and f.driver is None
