-- One queue for both APIs. A batch now names its retailer and API; StateSet batches belong
-- to no job. `options` holds a StateSet batch's options (JSON), `dry_run` its validate_only.
-- sku_min..loc_max bound the positions a batch touches: a batch waits for every unfinished
-- earlier batch of its retailer whose box meets its own (see `db::batches::claim_next_batch`).
ALTER TABLE batches ALTER COLUMN job_id DROP NOT NULL;
ALTER TABLE batches ADD COLUMN retailer_id TEXT;
ALTER TABLE batches ADD COLUMN api TEXT NOT NULL DEFAULT 'fluent';
ALTER TABLE batches ADD COLUMN options TEXT;
ALTER TABLE batches ADD COLUMN dry_run INTEGER NOT NULL DEFAULT 0;
ALTER TABLE batches ADD COLUMN sku_min TEXT;
ALTER TABLE batches ADD COLUMN sku_max TEXT;
ALTER TABLE batches ADD COLUMN loc_min TEXT;
ALTER TABLE batches ADD COLUMN loc_max TEXT;
UPDATE batches SET retailer_id = jobs.retailer_id FROM jobs WHERE jobs.id = batches.job_id;
-- Batches still queued from before the ledger are taken to touch everything.
UPDATE batches SET sku_min = '', sku_max = chr(1114111), loc_min = '', loc_max = chr(1114111)
WHERE status <> 'COMPLETE';
ALTER TABLE batches ALTER COLUMN retailer_id SET NOT NULL;
CREATE INDEX batches_unfinished_by_retailer ON batches (retailer_id, id) WHERE status <> 'COMPLETE';

-- A StateSet item's result data (previous and new quantities, ...), as JSON.
ALTER TABLE batch_results ADD COLUMN data TEXT;

-- The ledger: every change to a position's quantity, from either API. previous_qty is 0
-- for the movement that created the position.
CREATE TABLE inventory_movements (
    id           BIGSERIAL PRIMARY KEY,
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
);

-- API keys (StateSet clients send them as bearer tokens), stored only as SHA-256 hashes.
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
);
CREATE INDEX idempotency_keys_created_on ON idempotency_keys (created_on);

-- One row per retailer, locked while a batch of that retailer is accepted, so batch ids of
-- a retailer are committed in id order.
CREATE TABLE accept_turns (
    retailer_id TEXT PRIMARY KEY NOT NULL
);
