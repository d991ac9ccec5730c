-- Whether a snapshot's forecast rested on too little history for its horizon (the scorer
-- shows no interval then; forecast accuracy leaves such snapshots out). Rows written before
-- this migration read false.

ALTER TABLE {database}.budget_snapshots ADD COLUMN IF NOT EXISTS learning Bool DEFAULT false;
