-- Every decision and alert the workers sent, once (the sink writes them from the decisions
-- and alerts topics). A record read twice (at-least-once delivery) collapses on merge: a
-- decision by its place in the topic, an alert by its alert_id (re-sends carry the same).
-- Reports read with FINAL.

CREATE TABLE IF NOT EXISTS {database}.decisions
(
    request_id      String,
    ts              DateTime64(3, 'UTC'),
    tenant          LowCardinality(String),
    action          LowCardinality(String),
    model           LowCardinality(String),
    provider        LowCardinality(String),
    requested_model LowCardinality(String),
    priority        LowCardinality(String),
    est_cost_usd    Float64,
    reason_code     LowCardinality(String),
    reason_message  String,
    retry_after_s   Nullable(Float64),
    budget          String,
    source          LowCardinality(String),
    src_partition   UInt32,
    src_offset      UInt64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (tenant, src_partition, src_offset);

CREATE TABLE IF NOT EXISTS {database}.alerts
(
    alert_id        String,
    ts              DateTime64(3, 'UTC'),
    kind            LowCardinality(String),
    scope           String,
    severity        LowCardinality(String),
    observed        Float64,
    expected        Float64,
    score           Float64,
    message         String,
    period          Nullable(String),
    driver          Nullable(String),
    details         String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (scope, alert_id);
