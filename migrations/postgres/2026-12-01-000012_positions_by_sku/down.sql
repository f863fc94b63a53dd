CREATE INDEX inventory_positions_sku ON inventory_positions (retailer_id, sku_ref);
ALTER TABLE inventory_positions
    DROP CONSTRAINT inventory_positions_key,
    ADD CONSTRAINT inventory_positions_retailer_id_location_ref_sku_ref_key
        UNIQUE (retailer_id, location_ref, sku_ref);
