ALTER TABLE batches DROP COLUMN unchanged_count, DROP COLUMN rejected_count,
    DROP COLUMN applied_count, DROP COLUMN processed_count, DROP COLUMN started_on,
    DROP COLUMN preprocessing, DROP COLUMN meta;
ALTER TABLE inventory_positions DROP COLUMN extra;
DELETE FROM tokens WHERE user_id IS NULL;
ALTER TABLE tokens ALTER COLUMN user_id SET NOT NULL;
ALTER TABLE oauth_clients DROP COLUMN permissions, DROP COLUMN retailer_id;
