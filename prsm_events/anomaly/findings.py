"""From batch scores to findings: which scopes are anomalous, how badly, and why.

A scope is anomalous when its score reaches the threshold, its residual is at least
``min_sigma`` long-run deviations above normal, and its spend exceeds the expected by at least
``min_excess_usd`` in the interval (so cent-level noise never pages anyone). Severity is
``high`` from ``high_sigma`` (the seed's 5 sigma), else ``warning``. A finding names the
dimension that carries the excess: for a tenant, among its service, model, api key and team
scopes that carry at least half of the largest sub-scope excess, the one whose spend departs
most from its own expectation (observed over expected: with all traffic on one service, the
leaked key beside it is the narrower explanation); for ``global``, the tenant. The finding is
as severe as the worse of the scope and its driver. Each incident is reported once, at the
tenant level: a sub-scope is reported on its own only when its tenant is not, ``global`` only
when no tenant is.

>>> import numpy as np
>>> from prsm_events.scoring.batch import ScopeScores
>>> s = ScopeScores(["tenant:a", "tenant:a/api_key:k1", "tenant:a/api_key:k2"],
...                 observed=np.array([9.0, 8.0, 1.0]), score=np.array([0.9, 0.95, 0.1]),
...                 sigma=np.array([7.0, 9.0, 0.2]), expected=np.array([1.0, 0.1, 0.9]))
>>> [(f.scope, f.severity, f.driver) for f in find_anomalies(s, AnomalyRule(), now=0.0)]
[('tenant:a', 'high', 'tenant:a/api_key:k1')]
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import numpy as np

from prsm_events.events.alerts import Alert
from prsm_events.events.directives import ThrottleDirective
from prsm_events.scoring.batch import ScopeScores

__all__ = ["AnomalyFinding", "AnomalyRule", "find_anomalies"]


@dataclass(frozen=True, slots=True)
class AnomalyRule:
    threshold: float = 0.68
    """Score at or above which a scope is anomalous (NAB-optimal for our detector)."""
    min_sigma: float = 3.0
    high_sigma: float = 5.0
    min_excess_usd: float = 0.01


@dataclass(frozen=True, slots=True)
class AnomalyFinding:
    scope: str
    now: float
    severity: str
    score: float
    sigma: float
    observed: float
    expected: float
    driver: str | None
    driver_observed: float | None = None
    driver_expected: float | None = None

    def per(self, factor: float) -> AnomalyFinding:
        """The finding with its spend figures times ``factor`` (from a rate per scoring
        interval to the spend of an interval ``factor`` times as long)."""
        if factor == 1.0:
            return self
        return replace(
            self, observed=self.observed * factor, expected=self.expected * factor,
            driver_observed=None if self.driver_observed is None
            else self.driver_observed * factor,
            driver_expected=None if self.driver_expected is None
            else self.driver_expected * factor)

    def alert(self, interval_s: float) -> Alert:
        """The alert, for an interval of ``interval_s`` seconds."""
        stamp = datetime.fromtimestamp(self.now, UTC)
        by = "" if self.driver is None else (
            f"; driven by {self.driver} (${self.driver_observed:.4f} vs "
            f"${self.driver_expected:.4f} expected)")
        return Alert(
            alert_id=f"{self.scope}|anomaly|{stamp.isoformat()}", ts=stamp, kind="anomaly",
            scope=self.scope, severity=self.severity, observed=round(self.observed, 9),
            expected=round(self.expected, 9), score=round(self.score, 6),
            message=f"spend of {self.scope} in the last {interval_s:.4g} s is "
            f"${self.observed:.4f}, expected ${self.expected:.4f} "
            f"({self.sigma:.1f} sigma){by}",
            driver=self.driver,
            details={"sigma": round(self.sigma, 3), "interval_s": round(interval_s, 3),
                     "driver_observed": self.driver_observed,
                     "driver_expected": self.driver_expected})

    def directive(self, allow_fraction: float, hold_s: float) -> ThrottleDirective:
        """Throttle the driving scope (or the scope itself) for ``hold_s`` seconds."""
        stamp = datetime.fromtimestamp(self.now, UTC)
        target = self.driver or self.scope
        return ThrottleDirective(
            scope=target, origin="anomaly", action="throttle", allow_fraction=allow_fraction,
            until=stamp + timedelta(seconds=hold_s), reason="spend_anomaly",
            message=f"{self.severity} spend anomaly on {self.scope} ({self.sigma:.1f} sigma): "
            f"{target} throttled to {allow_fraction:.0%} for {hold_s:g} s", ts=stamp,
            details={"sigma": round(self.sigma, 3), "observed_usd": round(self.observed, 9),
                     "expected_usd": round(self.expected, 9)})


def _parent(scope: str) -> str | None:
    if scope.startswith("tenant:"):
        return scope.split("/", 1)[0] if "/" in scope else "global"
    return None


def find_anomalies(scores: ScopeScores, rule: AnomalyRule, now: float) -> list[AnomalyFinding]:
    """Findings of one tick (tenant findings name their driving dimension)."""
    excess = scores.observed - scores.expected
    hits = set(np.flatnonzero((np.asarray(scores.score) >= rule.threshold)
                              & (np.asarray(scores.sigma) >= rule.min_sigma)
                              & (excess >= rule.min_excess_usd)).tolist())
    hit_scopes = {scores.scopes[i] for i in hits}
    children: dict[str, list[int]] = {}
    if any("/" not in s for s in hit_scopes):  # a tenant or the global scope: its children
        for i, scope in enumerate(scores.scopes):
            parent = _parent(scope)
            if parent in hit_scopes:
                children.setdefault(parent, []).append(i)
    tenants_hit = any(s.startswith("tenant:") and "/" not in s for s in hit_scopes)
    out = []
    for i in sorted(hits, key=lambda j: scores.scopes[j]):
        scope = scores.scopes[i]
        if "/" in scope and _parent(scope) in hit_scopes:
            continue  # reported as its tenant's driver
        if scope == "global" and tenants_hit:
            continue  # the tenants' findings say more
        driver = None
        kids = [j for j in children.get(scope, []) if excess[j] > 0]
        if kids:
            top = max(excess[j] for j in kids)
            carriers = [j for j in kids if excess[j] >= 0.5 * top]
            driver = max(carriers,
                         key=lambda j: scores.observed[j] / max(scores.expected[j], 1e-9))
        sigma = float(scores.sigma[i])
        worst = max(sigma, float(scores.sigma[driver]) if driver is not None else 0.0)
        out.append(AnomalyFinding(
            scope, now, "high" if worst >= rule.high_sigma else "warning",
            float(scores.score[i]), sigma, float(scores.observed[i]),
            float(scores.expected[i]), None if driver is None else scores.scopes[driver],
            None if driver is None else float(scores.observed[driver]),
            None if driver is None else float(scores.expected[driver])))
    return out
