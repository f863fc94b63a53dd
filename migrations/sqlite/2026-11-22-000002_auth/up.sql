-- Retailers known to this service; users of a retailer see only its data.
CREATE TABLE retailers (
    id         TEXT PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL,
    created_on TIMESTAMP NOT NULL
);

-- Users log in with the OAuth password grant. `retailer_id` NULL marks an account
-- administrator over all retailers. `password_hash` is an argon2id PHC string.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    retailer_id   TEXT REFERENCES retailers (id),
    permissions   TEXT NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_on    TIMESTAMP NOT NULL
);

CREATE TABLE oauth_clients (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id   TEXT NOT NULL UNIQUE,
    secret_hash TEXT NOT NULL,
    disabled    INTEGER NOT NULL DEFAULT 0,
    created_on  TIMESTAMP NOT NULL
);

-- Access and refresh tokens, stored only as SHA-256 hashes of their random values.
CREATE TABLE tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    kind       TEXT NOT NULL,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  BIGINT NOT NULL REFERENCES oauth_clients (id) ON DELETE CASCADE,
    expires_at TIMESTAMP NOT NULL,
    used_at    TIMESTAMP,
    created_on TIMESTAMP NOT NULL
);
CREATE INDEX tokens_expires_at ON tokens (expires_at);

-- Consecutive failed logins per username (known or not), for the lockout rule.
CREATE TABLE login_failures (
    username     TEXT PRIMARY KEY NOT NULL,
    failures     INTEGER NOT NULL,
    locked_until TIMESTAMP
);
