DROP INDEX jobs_retailer;
DROP INDEX batches_completed_on;
