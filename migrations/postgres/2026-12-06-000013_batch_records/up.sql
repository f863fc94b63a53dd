-- A batch's records move to a table of their own, written once when the batch is accepted
-- and read once when it runs: the batches row, updated at every change of state, stays
-- small. Compressed with lz4 where the server has it, as before (000004).
CREATE TABLE batch_records (
    batch_id BIGINT PRIMARY KEY,
    entities TEXT NOT NULL
);
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_settings
               WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
        EXECUTE 'ALTER TABLE batch_records ALTER COLUMN entities SET COMPRESSION lz4';
    END IF;
END
$$;
INSERT INTO batch_records (batch_id, entities)
SELECT id, entities FROM batches WHERE entities IS NOT NULL;
ALTER TABLE batches DROP COLUMN entities;
