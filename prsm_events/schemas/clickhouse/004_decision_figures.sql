-- A decision's figures as columns: what routing saved (the requested model's estimate and the
-- quality given up), the driving budget's figures and its forecast. Rows written before this
-- migration read them from their `budget` JSON (the column defaults); the forecast and the
-- routing figures are not known for them (NULL, and the requested estimate is est_cost_usd).

ALTER TABLE {database}.decisions
    ADD COLUMN IF NOT EXISTS requested_est_cost_usd Decimal(38, 9) DEFAULT est_cost_usd,
    ADD COLUMN IF NOT EXISTS quality_given_up Nullable(Float64),
    ADD COLUMN IF NOT EXISTS budget_scope LowCardinality(String)
        DEFAULT JSONExtractString(budget, 'scope'),
    ADD COLUMN IF NOT EXISTS budget_period LowCardinality(String)
        DEFAULT JSONExtractString(budget, 'period'),
    ADD COLUMN IF NOT EXISTS budget_limit_usd Nullable(Decimal(38, 9))
        DEFAULT JSONExtract(budget, 'limit_usd', 'Nullable(Decimal(38, 9))'),
    ADD COLUMN IF NOT EXISTS budget_spent_usd Nullable(Decimal(38, 9))
        DEFAULT JSONExtract(budget, 'spent_usd', 'Nullable(Decimal(38, 9))'),
    ADD COLUMN IF NOT EXISTS budget_reserved_usd Nullable(Decimal(38, 9))
        DEFAULT JSONExtract(budget, 'reserved_usd', 'Nullable(Decimal(38, 9))'),
    ADD COLUMN IF NOT EXISTS budget_remaining_usd Nullable(Decimal(38, 9))
        DEFAULT JSONExtract(budget, 'remaining_usd', 'Nullable(Decimal(38, 9))'),
    ADD COLUMN IF NOT EXISTS budget_period_end Nullable(DateTime64(3, 'UTC'))
        DEFAULT parseDateTime64BestEffortOrNull(JSONExtractString(budget, 'period_end'), 3, 'UTC'),
    ADD COLUMN IF NOT EXISTS forecast_period_end_usd Nullable(Float64),
    ADD COLUMN IF NOT EXISTS forecast_exhaustion_ts Nullable(DateTime64(3, 'UTC'));
