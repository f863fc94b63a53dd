CREATE TABLE api_keys (
    id               BIGSERIAL PRIMARY KEY,
    name             TEXT NOT NULL UNIQUE,
    key_hash         TEXT NOT NULL UNIQUE,
    retailer_id      TEXT NOT NULL,
    permissions      TEXT NOT NULL,
    default_location TEXT NOT NULL,
    revoked          INTEGER NOT NULL DEFAULT 0,
    created_on       TIMESTAMP NOT NULL
);
