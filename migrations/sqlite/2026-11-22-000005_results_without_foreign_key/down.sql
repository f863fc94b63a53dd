CREATE TABLE batch_results_old (
    batch_id      BIGINT NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
    seq           INTEGER NOT NULL,
    entity_id     BIGINT,
    entity_ref    TEXT,
    response_code INTEGER NOT NULL,
    message       TEXT NOT NULL,
    PRIMARY KEY (batch_id, seq)
) WITHOUT ROWID;
INSERT INTO batch_results_old SELECT * FROM batch_results;
DROP TABLE batch_results;
ALTER TABLE batch_results_old RENAME TO batch_results;
