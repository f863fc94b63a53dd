CREATE TABLE batch_results (
    batch_id      BIGINT NOT NULL,
    seq           INTEGER NOT NULL,
    entity_id     BIGINT,
    entity_ref    TEXT,
    response_code INTEGER NOT NULL,
    message       TEXT NOT NULL,
    data          TEXT,
    PRIMARY KEY (batch_id, seq)
) WITHOUT ROWID;
INSERT INTO batch_results (batch_id, seq, entity_id, entity_ref, response_code, message, data)
SELECT c.batch_id, r.value ->> 0, r.value ->> 1, r.value ->> 2, r.value ->> 3,
       CASE json_type(r.value, '$[4]')
           WHEN 'integer' THEN c.body ->> ('$.messages[' || (r.value ->> 4) || ']')
           ELSE r.value ->> 4
       END,
       CASE json_type(r.value, '$[5]') WHEN 'null' THEN NULL ELSE r.value -> 5 END
FROM batch_result_chunks c, json_each(c.body, '$.rows') r;
DROP TABLE batch_result_chunks;
