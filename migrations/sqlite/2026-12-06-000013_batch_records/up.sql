-- A batch's records move to a table of their own, written once when the batch is accepted
-- and read once when it runs. In the batches row they sat before most columns, so every
-- status change rewrote them (SQLite rewrites a whole row whose size changes) and every read
-- of a later column (the lease, the key box the claim compares) walked their overflow pages.
CREATE TABLE batch_records (
    batch_id INTEGER PRIMARY KEY,
    entities TEXT NOT NULL
);
INSERT INTO batch_records (batch_id, entities)
SELECT id, entities FROM batches WHERE entities IS NOT NULL;
ALTER TABLE batches DROP COLUMN entities;
