DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression') THEN
        EXECUTE 'ALTER TABLE batches ALTER COLUMN entities SET COMPRESSION DEFAULT';
    END IF;
END
$$;
ALTER TABLE batches ALTER COLUMN entities SET STORAGE EXTERNAL;
