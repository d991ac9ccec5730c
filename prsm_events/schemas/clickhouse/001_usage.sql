-- Every accepted usage event, once. Re-inserts of the same event_id (at-least-once delivery)
-- collapse on merge; reports read with FINAL.
CREATE DATABASE IF NOT EXISTS {database};

CREATE TABLE IF NOT EXISTS {database}.usage
(
    event_id                 String,
    ts                       DateTime64(3, 'UTC'),
    tenant                   LowCardinality(String),
    service                  LowCardinality(String),
    team                     LowCardinality(String),
    api_key_id               String,
    request_id               String,
    provider                 LowCardinality(String),
    model                    LowCardinality(String),
    kind                     LowCardinality(String),
    status                   LowCardinality(String),
    input_tokens             UInt64,
    cached_input_tokens      UInt64,
    cache_write_input_tokens UInt64,
    output_tokens            UInt64,
    reasoning_tokens         UInt64,
    cost_usd                 Float64,
    priced_by                LowCardinality(String),
    latency_ms               Nullable(Float64),
    tags                     Map(String, String),
    src_partition            UInt32,
    src_offset               UInt64,
    ingested_at              DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (tenant, event_id);
