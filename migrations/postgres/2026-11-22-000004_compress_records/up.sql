-- Compress a batch's records with lz4 where the server has it: ~10x smaller (450 KB of
-- JSON for 5000 records becomes ~50 KB), so a POST writes a tenth of the WAL, at a cost
-- far below pglz's. Servers without lz4 (or older than 14) keep the uncompressed storage;
-- EXECUTE keeps them from parsing a clause they do not know.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_settings
               WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
        EXECUTE 'ALTER TABLE batches ALTER COLUMN entities SET STORAGE EXTENDED';
        EXECUTE 'ALTER TABLE batches ALTER COLUMN entities SET COMPRESSION lz4';
    END IF;
END
$$;
