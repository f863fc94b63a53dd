DROP TABLE accept_turns;
DROP TABLE idempotency_keys;
DROP TABLE api_keys;
DROP TABLE inventory_items;
DROP TABLE inventory_movements;
ALTER TABLE batch_results DROP COLUMN data;
DROP INDEX batches_unfinished_by_retailer;
DELETE FROM batches WHERE job_id IS NULL;
ALTER TABLE batches DROP COLUMN loc_max, DROP COLUMN loc_min, DROP COLUMN sku_max,
    DROP COLUMN sku_min, DROP COLUMN dry_run, DROP COLUMN options, DROP COLUMN api,
    DROP COLUMN retailer_id;
ALTER TABLE batches ALTER COLUMN job_id SET NOT NULL;
