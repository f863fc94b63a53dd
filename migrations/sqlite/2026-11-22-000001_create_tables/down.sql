DROP TABLE inventory_positions;
DROP TABLE batch_results;
DROP TABLE batches;
DROP TABLE jobs;
