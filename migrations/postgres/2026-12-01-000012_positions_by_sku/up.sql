-- A position's key leads with its SKU: (retailer, SKU, location). Reads by SKU (an item's
-- positions, StateSet's `update` check, the SKU filters) use this one index, so the index
-- on (retailer_id, sku_ref) goes, and creating a position updates two B-trees instead of
-- three. Listing a retailer's positions by location alone now reads its positions.
ALTER TABLE inventory_positions
    DROP CONSTRAINT inventory_positions_retailer_id_location_ref_sku_ref_key,
    ADD CONSTRAINT inventory_positions_key UNIQUE (retailer_id, sku_ref, location_ref);
DROP INDEX inventory_positions_sku;
