"""Batch scoring on NumPy or CuPy: anomaly, forecast and pacing steps for many scopes."""

from prsm_events.scoring.anomaly_step import AnomalyOut, AnomalyParams, anomaly_step
from prsm_events.scoring.backend import array_module, backend_name, to_host
from prsm_events.scoring.batch import BatchScorer, Rest, ScopeScores
from prsm_events.scoring.calendar_math import (
    following,
    hourly_counts,
    profile_place,
    profile_weights,
    weekday_counts,
)
from prsm_events.scoring.forecast_params import ForecastParams
from prsm_events.scoring.forecast_step import forecast_step
from prsm_events.scoring.pacing_step import PacingOut, PacingParams, pacing_step
from prsm_events.scoring.rest_of_period import RestOfPeriod, forecast_rest
from prsm_events.scoring.spend_step import BYTES_PER_SCOPE, spend_step

__all__ = ["BYTES_PER_SCOPE", "AnomalyOut", "AnomalyParams", "BatchScorer", "ForecastParams",
           "PacingOut", "PacingParams", "Rest", "RestOfPeriod", "ScopeScores", "anomaly_step",
           "array_module", "backend_name", "following", "forecast_rest", "forecast_step",
           "hourly_counts", "pacing_step", "profile_place", "profile_weights", "spend_step",
           "to_host", "weekday_counts"]
