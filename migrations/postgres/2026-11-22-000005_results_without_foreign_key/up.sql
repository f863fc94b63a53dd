-- Results are written only by the executor holding the batch's lease, in the transaction
-- that completes it, and deleted with their batch by retention: the foreign key checked
-- nothing those writers do not already ensure, and its per-row trigger cost about two
-- thirds of the time of writing 5000 results.
ALTER TABLE batch_results DROP CONSTRAINT batch_results_batch_id_fkey;
