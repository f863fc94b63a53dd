CREATE TABLE inventory_positions_new (
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
    extra           TEXT,
    UNIQUE (retailer_id, sku_ref, location_ref)
);
INSERT INTO inventory_positions_new (id, retailer_id, location_ref, sku_ref, qty, corrected_qty,
    reserved_qty, inventory_id, reference, inventory_type, status, attributes, version,
    created_version, created_on, updated_on, extra)
SELECT id, retailer_id, location_ref, sku_ref, qty, corrected_qty, reserved_qty, inventory_id,
    reference, inventory_type, status, attributes, version, created_version, created_on,
    updated_on, extra
FROM inventory_positions;
DELETE FROM sqlite_sequence WHERE name = 'inventory_positions_new';
INSERT INTO sqlite_sequence (name, seq) SELECT 'inventory_positions_new', last_id FROM position_ids;
DROP TABLE inventory_positions;
ALTER TABLE inventory_positions_new RENAME TO inventory_positions;
DROP TABLE position_ids;
