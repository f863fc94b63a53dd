-- Results are written only by the executor holding the batch's lease, in the transaction
-- that completes it, and deleted with their batch by retention: the foreign key checked
-- nothing those writers do not already ensure, at a lookup per result row.
CREATE TABLE batch_results_new (
    batch_id      BIGINT NOT NULL,
    seq           INTEGER NOT NULL,
    entity_id     BIGINT,
    entity_ref    TEXT,
    response_code INTEGER NOT NULL,
    message       TEXT NOT NULL,
    PRIMARY KEY (batch_id, seq)
) WITHOUT ROWID;
INSERT INTO batch_results_new SELECT * FROM batch_results;
DROP TABLE batch_results;
ALTER TABLE batch_results_new RENAME TO batch_results;
