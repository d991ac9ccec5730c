-- Each budget's figures and forecast as the scorer saw them, every PRSM_SNAPSHOT_INTERVAL_S
-- (default hourly, on the hour), so that forecast against actual and utilisation over time can
-- be queried. One row per (budget, snapshot time); a snapshot written twice collapses.
-- used_usd is spent + reserved. forecast_*: the period-end spend (mean, 90% interval); for a
-- rolling window the peak of the window within one window ahead, period_end being when.

CREATE TABLE IF NOT EXISTS {database}.budget_snapshots
(
    ts                DateTime64(3, 'UTC'),
    budget_key        String,
    scope             String,
    period            LowCardinality(String),
    period_start      DateTime64(3, 'UTC'),
    period_end        DateTime64(3, 'UTC'),
    limit_usd         Decimal(38, 9),
    used_usd          Decimal(38, 9),
    forecast_usd      Float64,
    forecast_low_usd  Float64,
    forecast_high_usd Float64,
    exhaustion_ts     Nullable(DateTime64(3, 'UTC'))
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (budget_key, ts);
