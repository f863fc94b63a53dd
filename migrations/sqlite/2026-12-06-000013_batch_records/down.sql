ALTER TABLE batches ADD COLUMN entities TEXT;
UPDATE batches SET entities = (SELECT r.entities FROM batch_records r WHERE r.batch_id = batches.id);
DROP TABLE batch_records;
