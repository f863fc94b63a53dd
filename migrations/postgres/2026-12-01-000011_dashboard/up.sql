-- The dashboard (GET /api/v4.1/queue, GET /api/v4.1/jobs): the last hour's completions are
-- read by when they completed, and a retailer's jobs newest first. Completing a batch adds
-- one entry to the first index; a job, one to the second.
CREATE INDEX batches_completed_on ON batches (completed_on);
CREATE INDEX jobs_retailer ON jobs (retailer_id, id);
