"""The forecaster's smoothing weights, and how they spread over a scoring interval.

>>> round(ForecastParams.every(60.0).alpha, 6)
0.002018
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CHECK_HORIZON_S",
    "TUNED_EVERY_S",
    "ForecastParams",
    "per_step",
]

TUNED_EVERY_S = 600.0
"""The step (10 minutes) at which the level weight and the pacing controller were tuned."""

CHECK_HORIZON_S = 6 * 3600.0
"""How far ahead a forecaster checks its own interval (``check_step``)."""


def per_step(weight: float, steps: float) -> float:
    """The weight per step that compounds to ``weight`` over ``steps`` steps.

    >>> round(per_step(0.2, 1440.0), 8), round(per_step(0.3, 1.0), 12)
    (0.00015495, 0.3)
    """
    return float(1.0 - (1.0 - weight) ** (1.0 / max(steps, 1e-12)))


@dataclass(frozen=True)


class ForecastParams:
    """Smoothing weights; chosen on the forecasting benchmark
    (docs/decisions/2026-11-28-forecasters.md)."""

    alpha: float = 0.02  # level (1 / (n + 1) before that: the running mean while young)
    gamma: float = 0.05  # seasonal profile (per visit of a bucket)
    beta: float = 0.01  # error variance and residual autocorrelation
    weekly: float = 0.2  # weekday offsets (per day of that weekday)
    intervals_per_day: float = 1440.0  # spreads ``weekly`` over a day's intervals
    weekly_after_days: float = 7.0  # offsets learn once a scope has seen every weekday
    carry_damping: float = 0.93  # the residual's forecast j intervals ahead is damped by this^j
    carry_trust: float = 10.0  # AR coefficients scaled by n / (n + this): young fits are noise
    check_intervals: float = CHECK_HORIZON_S / TUNED_EVERY_S  # a self-check's horizon
    check_weight: float = 0.1  # weight of one self-check in the interval's scale

    @classmethod
    def every(cls, interval_s: float, timescale_s: float = TUNED_EVERY_S) -> ForecastParams:
        """The defaults for a forecaster stepped every ``interval_s``: weekday offsets spread
        over a day's intervals, and the level's weight per ``timescale_s`` (where ``alpha``
        was chosen) spread over the intervals in it (the level forgets 2% per 10 minutes
        whether it learns every minute or every 10).

        >>> round(ForecastParams.every(600.0).alpha, 6), round(ForecastParams.every(60.0).alpha, 6)
        (0.02, 0.002018)
        """
        base = cls()
        return cls(alpha=per_step(base.alpha, timescale_s / interval_s),
                   intervals_per_day=86400.0 / interval_s,
                   check_intervals=CHECK_HORIZON_S / interval_s)

    def __post_init__(self) -> None:
        if not 0.0 <= self.carry_damping < 1.0:
            raise ValueError(f"carry_damping must be in [0, 1), not {self.carry_damping}")
        if self.carry_trust < 0.0:
            raise ValueError(f"carry_trust must be >= 0, not {self.carry_trust}")

    @property
    def delta(self) -> float:
        """Weight of one interval in its weekday's offset."""
        return per_step(self.weekly, max(self.intervals_per_day, 1.0))
