-- Money as Decimal, not Float64: the ledger's unit (nano-USD), so a report's sums are exact and
-- equal the ledger's. Rows written before this migration are converted in place (ClickHouse
-- parses each Float64 as a decimal of 9 places). Applying it again changes nothing.

ALTER TABLE {database}.usage MODIFY COLUMN cost_usd Decimal(38, 9);

ALTER TABLE {database}.decisions MODIFY COLUMN est_cost_usd Decimal(38, 9);
