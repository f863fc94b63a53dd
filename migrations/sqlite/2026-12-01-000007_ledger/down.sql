DROP TABLE accept_turns;
DROP TABLE idempotency_keys;
DROP TABLE api_keys;
DROP TABLE inventory_items;
DROP TABLE inventory_movements;
ALTER TABLE batch_results DROP COLUMN data;
DELETE FROM batches WHERE job_id IS NULL;
CREATE TABLE batches_old (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id           BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    action           TEXT NOT NULL,
    entity_type      TEXT NOT NULL,
    status           TEXT NOT NULL,
    record_count     INTEGER NOT NULL,
    entities         TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_expires_at TIMESTAMP,
    created_on       TIMESTAMP NOT NULL,
    completed_on     TIMESTAMP
);
INSERT INTO batches_old SELECT id, job_id, action, entity_type, status, record_count, entities,
    attempts, lease_owner, lease_expires_at, created_on, completed_on FROM batches;
DROP TABLE batches;
ALTER TABLE batches_old RENAME TO batches;
CREATE INDEX batches_job_id ON batches (job_id, id);
CREATE INDEX batches_queue ON batches (id) WHERE status <> 'COMPLETE';
CREATE INDEX batches_created_on ON batches (created_on);
