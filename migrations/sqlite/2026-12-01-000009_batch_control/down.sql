DROP TABLE executor_heartbeats;
ALTER TABLE retailers DROP COLUMN retention_days;
ALTER TABLE jobs DROP COLUMN closed_on;
ALTER TABLE batches DROP COLUMN cancelled;
ALTER TABLE batches DROP COLUMN cancel_requested;
