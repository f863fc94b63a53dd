-- Cancel: a cancel asked of a RUNNING batch (its executor stops at the next safe point),
-- and the marker on a batch that ended COMPLETE because it was cancelled.
ALTER TABLE batches ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
ALTER TABLE batches ADD COLUMN cancelled INTEGER NOT NULL DEFAULT 0;
-- A job closed before the end of its day (cancelled).
ALTER TABLE jobs ADD COLUMN closed_on TIMESTAMP;
-- Days a retailer's COMPLETE batches are kept, when not the server's default.
ALTER TABLE retailers ADD COLUMN retention_days INTEGER;
-- Executors say they are alive, so a queue nobody runs is flagged stalled.
CREATE TABLE executor_heartbeats (
    owner     TEXT PRIMARY KEY NOT NULL,
    last_seen TIMESTAMP NOT NULL
);
