"""Spend anomaly detection: online detectors and the rule that turns scores into findings."""

from prsm_events.anomaly.detectors import (
    DETECTORS,
    Detector,
    HalfSpaceTreesDetector,
    SpendAnomalyDetector,
    ZScoreDetector,
)
from prsm_events.anomaly.findings import AnomalyFinding, AnomalyRule, find_anomalies

__all__ = ["DETECTORS", "AnomalyFinding", "AnomalyRule", "Detector", "HalfSpaceTreesDetector",
           "SpendAnomalyDetector", "ZScoreDetector", "find_anomalies"]
