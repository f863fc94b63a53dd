ALTER TABLE batches ALTER COLUMN entities SET STORAGE EXTENDED;
ALTER TABLE inventory_positions RESET (fillfactor);
