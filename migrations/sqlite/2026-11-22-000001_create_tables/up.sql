-- Jobs group the batches a retailer integration posts in one UTC day.
CREATE TABLE jobs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL,
    retailer_id TEXT NOT NULL,
    meta        TEXT,
    created_on  TIMESTAMP NOT NULL
);

-- The queue: one row per accepted batch. `entities` holds the raw records until the
-- batch is COMPLETE; `lease_owner`/`lease_expires_at` mark the executor running it.
CREATE TABLE batches (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id           BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    action           TEXT NOT NULL,
    entity_type      TEXT NOT NULL,
    status           TEXT NOT NULL,
    record_count     INTEGER NOT NULL,
    entities         TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_expires_at TIMESTAMP,
    created_on       TIMESTAMP NOT NULL,
    completed_on     TIMESTAMP
);
CREATE INDEX batches_job_id ON batches (job_id, id);
CREATE INDEX batches_queue ON batches (id) WHERE status <> 'COMPLETE';
CREATE INDEX batches_created_on ON batches (created_on);

-- One result per record, keyed by the record's position in its batch.
CREATE TABLE batch_results (
    batch_id      BIGINT NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
    seq           INTEGER NOT NULL,
    entity_id     BIGINT,
    entity_ref    TEXT,
    response_code INTEGER NOT NULL,
    message       TEXT NOT NULL,
    PRIMARY KEY (batch_id, seq)
) WITHOUT ROWID;

-- The inventory positions the batches maintain. `version` orders writes
-- (batch id * 8192 + record index): a write only lands when it is newer.
CREATE TABLE inventory_positions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    retailer_id     TEXT NOT NULL,
    location_ref    TEXT NOT NULL,
    sku_ref         TEXT NOT NULL,
    qty             BIGINT NOT NULL,
    corrected_qty   BIGINT,
    reserved_qty    BIGINT,
    inventory_id    TEXT,
    reference       TEXT,
    inventory_type  TEXT NOT NULL,
    status          TEXT,
    attributes      TEXT,
    version         BIGINT NOT NULL,
    created_version BIGINT NOT NULL,
    created_on      TIMESTAMP NOT NULL,
    updated_on      TIMESTAMP NOT NULL,
    UNIQUE (retailer_id, location_ref, sku_ref)
);
CREATE INDEX inventory_positions_sku ON inventory_positions (retailer_id, sku_ref);
