ALTER TABLE batches DROP COLUMN unchanged_count;
ALTER TABLE batches DROP COLUMN rejected_count;
ALTER TABLE batches DROP COLUMN applied_count;
ALTER TABLE batches DROP COLUMN processed_count;
ALTER TABLE batches DROP COLUMN started_on;
ALTER TABLE batches DROP COLUMN preprocessing;
ALTER TABLE batches DROP COLUMN meta;
ALTER TABLE inventory_positions DROP COLUMN extra;
DELETE FROM tokens WHERE user_id IS NULL;
CREATE TABLE tokens_old (
    token_hash TEXT PRIMARY KEY NOT NULL,
    kind       TEXT NOT NULL,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  BIGINT NOT NULL REFERENCES oauth_clients (id) ON DELETE CASCADE,
    expires_at TIMESTAMP NOT NULL,
    used_at    TIMESTAMP,
    created_on TIMESTAMP NOT NULL
);
INSERT INTO tokens_old SELECT * FROM tokens;
DROP TABLE tokens;
ALTER TABLE tokens_old RENAME TO tokens;
CREATE INDEX tokens_expires_at ON tokens (expires_at);
ALTER TABLE oauth_clients DROP COLUMN permissions;
ALTER TABLE oauth_clients DROP COLUMN retailer_id;
