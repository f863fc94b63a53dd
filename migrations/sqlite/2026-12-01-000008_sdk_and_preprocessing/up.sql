-- A client bound to a retailer gets tokens for itself (client_credentials): such tokens
-- belong to no user. SQLite cannot drop NOT NULL in place, so the table is rebuilt.
ALTER TABLE oauth_clients ADD COLUMN retailer_id TEXT;
ALTER TABLE oauth_clients ADD COLUMN permissions TEXT;
CREATE TABLE tokens_new (
    token_hash TEXT PRIMARY KEY NOT NULL,
    kind       TEXT NOT NULL,
    user_id    BIGINT REFERENCES users (id) ON DELETE CASCADE,
    client_id  BIGINT NOT NULL REFERENCES oauth_clients (id) ON DELETE CASCADE,
    expires_at TIMESTAMP NOT NULL,
    used_at    TIMESTAMP,
    created_on TIMESTAMP NOT NULL
);
INSERT INTO tokens_new SELECT * FROM tokens;
DROP TABLE tokens;
ALTER TABLE tokens_new RENAME TO tokens;
CREATE INDEX tokens_expires_at ON tokens (expires_at);

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
