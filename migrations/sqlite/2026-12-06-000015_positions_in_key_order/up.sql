-- Positions are stored in their key's order, (retailer, SKU, location), as a WITHOUT ROWID
-- table: a batch reads its positions by SKU range, and each entry of the key's index sent
-- that read on to the row by its rowid. Their ids stay, unique and indexed, and are handed
-- out by `db::positions::reserve_ids` from `position_ids`, which holds the last one given:
-- such a table has no AUTOINCREMENT, and an id is never given twice.
CREATE TABLE position_ids (last_id BIGINT NOT NULL);
INSERT INTO position_ids (last_id)
SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'inventory_positions'), 0),
           COALESCE((SELECT MAX(id) FROM inventory_positions), 0));
CREATE TABLE inventory_positions_new (
    retailer_id     TEXT NOT NULL,
    sku_ref         TEXT NOT NULL,
    location_ref    TEXT NOT NULL,
    id              INTEGER NOT NULL,
    qty             BIGINT NOT NULL,
    corrected_qty   BIGINT,
    reserved_qty    BIGINT,
    inventory_id    TEXT,
    reference       TEXT,
    inventory_type  TEXT NOT NULL,
    status          TEXT,
    attributes      TEXT,
    extra           TEXT,
    version         BIGINT NOT NULL,
    created_version BIGINT NOT NULL,
    created_on      TIMESTAMP NOT NULL,
    updated_on      TIMESTAMP NOT NULL,
    PRIMARY KEY (retailer_id, sku_ref, location_ref)
) WITHOUT ROWID;
INSERT INTO inventory_positions_new (retailer_id, sku_ref, location_ref, id, qty, corrected_qty,
    reserved_qty, inventory_id, reference, inventory_type, status, attributes, extra, version,
    created_version, created_on, updated_on)
SELECT retailer_id, sku_ref, location_ref, id, qty, corrected_qty, reserved_qty, inventory_id,
    reference, inventory_type, status, attributes, extra, version, created_version, created_on,
    updated_on
FROM inventory_positions;
DROP TABLE inventory_positions;
ALTER TABLE inventory_positions_new RENAME TO inventory_positions;
CREATE UNIQUE INDEX inventory_positions_id ON inventory_positions (id);
