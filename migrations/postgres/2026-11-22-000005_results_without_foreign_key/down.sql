ALTER TABLE batch_results ADD CONSTRAINT batch_results_batch_id_fkey
    FOREIGN KEY (batch_id) REFERENCES batches (id) ON DELETE CASCADE;
