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
    UNIQUE (retailer_id, location_ref, sku_ref)
);
INSERT INTO inventory_positions_new SELECT * FROM inventory_positions;
-- Ids are never reused: the new table's sequence goes on from the old one's.
UPDATE sqlite_sequence SET seq = MAX(seq, (SELECT seq FROM sqlite_sequence
    WHERE name = 'inventory_positions')) WHERE name = 'inventory_positions_new';
DROP TABLE inventory_positions;
ALTER TABLE inventory_positions_new RENAME TO inventory_positions;
CREATE INDEX inventory_positions_sku ON inventory_positions (retailer_id, sku_ref);
