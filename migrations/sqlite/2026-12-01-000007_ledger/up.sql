-- One queue for both APIs. A batch now names its retailer and API; StateSet batches belong
-- to no job. `options` holds a StateSet batch's options (JSON), `dry_run` its validate_only.
-- sku_min..loc_max bound the positions a batch touches: a batch waits for every unfinished
-- earlier batch of its retailer whose box meets its own (see `db::batches::claim_next_batch`).
-- SQLite cannot drop NOT NULL in place, so the table is rebuilt.
CREATE TABLE batches_new (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id           BIGINT REFERENCES jobs (id) ON DELETE CASCADE,
    retailer_id      TEXT NOT NULL,
    api              TEXT NOT NULL DEFAULT 'fluent',
    action           TEXT NOT NULL,
    entity_type      TEXT NOT NULL,
    status           TEXT NOT NULL,
    record_count     INTEGER NOT NULL,
    entities         TEXT,
    options          TEXT,
    dry_run          INTEGER NOT NULL DEFAULT 0,
    sku_min          TEXT,
    sku_max          TEXT,
    loc_min          TEXT,
    loc_max          TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_expires_at TIMESTAMP,
    created_on       TIMESTAMP NOT NULL,
    completed_on     TIMESTAMP
);
-- Batches still queued from before the ledger are taken to touch everything.
INSERT INTO batches_new (id, job_id, retailer_id, action, entity_type, status, record_count,
                         entities, sku_min, sku_max, loc_min, loc_max, attempts, lease_owner,
                         lease_expires_at, created_on, completed_on)
SELECT b.id, b.job_id, j.retailer_id, b.action, b.entity_type, b.status, b.record_count,
       b.entities,
       CASE WHEN b.status <> 'COMPLETE' THEN '' END,
       CASE WHEN b.status <> 'COMPLETE' THEN char(1114111) END,
       CASE WHEN b.status <> 'COMPLETE' THEN '' END,
       CASE WHEN b.status <> 'COMPLETE' THEN char(1114111) END,
       b.attempts, b.lease_owner, b.lease_expires_at, b.created_on, b.completed_on
FROM batches b JOIN jobs j ON j.id = b.job_id;
DROP TABLE batches;
ALTER TABLE batches_new RENAME TO batches;
CREATE INDEX batches_job_id ON batches (job_id, id);
CREATE INDEX batches_queue ON batches (id) WHERE status <> 'COMPLETE';
CREATE INDEX batches_created_on ON batches (created_on);
CREATE INDEX batches_unfinished_by_retailer ON batches (retailer_id, id) WHERE status <> 'COMPLETE';

-- A StateSet item's result data (previous and new quantities, ...), as JSON.
ALTER TABLE batch_results ADD COLUMN data TEXT;

-- The ledger: every change to a position's quantity, from either API. previous_qty is 0
-- for the movement that created the position.
CREATE TABLE inventory_movements (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    position_id  BIGINT NOT NULL,
    batch_id     BIGINT NOT NULL,
    item_index   INTEGER NOT NULL,
    api          TEXT NOT NULL,
    operation    TEXT NOT NULL,
    previous_qty BIGINT NOT NULL,
    new_qty      BIGINT NOT NULL,
    reason       TEXT,
    reference    TEXT,
    created_on   TIMESTAMP NOT NULL
);
CREATE INDEX inventory_movements_position ON inventory_movements (position_id, id);

-- Item properties (name, price, reorder_point, ...) per retailer and SKU, as JSON.
CREATE TABLE inventory_items (
    retailer_id TEXT NOT NULL,
    sku         TEXT NOT NULL,
    properties  TEXT NOT NULL,
    created_on  TIMESTAMP NOT NULL,
    updated_on  TIMESTAMP NOT NULL,
    PRIMARY KEY (retailer_id, sku)
) WITHOUT ROWID;

-- API keys (StateSet clients send them as bearer tokens), stored only as SHA-256 hashes.
CREATE TABLE api_keys (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    name             TEXT NOT NULL UNIQUE,
    key_hash         TEXT NOT NULL UNIQUE,
    retailer_id      TEXT NOT NULL,
    permissions      TEXT NOT NULL,
    default_location TEXT NOT NULL,
    revoked          INTEGER NOT NULL DEFAULT 0,
    created_on       TIMESTAMP NOT NULL
);

-- Idempotency-Key: a request's fingerprint and its answer, per principal scope and key.
-- `response` holds a static answer; StateSet batches are answered from `batch_id`.
CREATE TABLE idempotency_keys (
    scope       TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status      INTEGER NOT NULL,
    response    TEXT,
    batch_id    BIGINT,
    created_on  TIMESTAMP NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_keys_created_on ON idempotency_keys (created_on);

-- One row per retailer, locked while a batch of that retailer is accepted, so batch ids of
-- a retailer are committed in id order (PostgreSQL; SQLite has one writer anyway).
CREATE TABLE accept_turns (
    retailer_id TEXT PRIMARY KEY NOT NULL
);
