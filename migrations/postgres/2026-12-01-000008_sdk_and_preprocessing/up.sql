-- A client bound to a retailer gets tokens for itself (client_credentials): such tokens
-- belong to no user.
ALTER TABLE oauth_clients ADD COLUMN retailer_id TEXT;
ALTER TABLE oauth_clients ADD COLUMN permissions TEXT;
ALTER TABLE tokens ALTER COLUMN user_id DROP NOT NULL;

-- Every field of a record beyond the documented ones (the SDK's uom, lot, expiry,
-- effectiveFrom, and any other), kept as sent: a JSON object.
ALTER TABLE inventory_positions ADD COLUMN extra TEXT;

-- A batch's own fields as sent (source, event, catalogueRef, conditions), as JSON;
-- whether Batch Pre-Processing applies to it; its progress and, once COMPLETE, its counts.
ALTER TABLE batches ADD COLUMN meta TEXT;
ALTER TABLE batches ADD COLUMN preprocessing INTEGER NOT NULL DEFAULT 1;
ALTER TABLE batches ADD COLUMN started_on TIMESTAMP;
ALTER TABLE batches ADD COLUMN processed_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE batches ADD COLUMN applied_count INTEGER;
ALTER TABLE batches ADD COLUMN rejected_count INTEGER;
ALTER TABLE batches ADD COLUMN unchanged_count INTEGER;
