CREATE TABLE batch_results (
    batch_id      BIGINT NOT NULL,
    seq           INTEGER NOT NULL,
    entity_id     BIGINT,
    entity_ref    TEXT,
    response_code INTEGER NOT NULL,
    message       TEXT NOT NULL,
    data          TEXT,
    PRIMARY KEY (batch_id, seq)
);
INSERT INTO batch_results (batch_id, seq, entity_id, entity_ref, response_code, message, data)
SELECT c.batch_id, (r.value ->> 0)::int, (r.value ->> 1)::bigint, r.value ->> 2,
       (r.value ->> 3)::int,
       CASE json_typeof(r.value -> 4)
           WHEN 'number' THEN c.body::json -> 'messages' ->> (r.value ->> 4)::int
           ELSE r.value ->> 4
       END,
       CASE json_typeof(r.value -> 5) WHEN 'null' THEN NULL ELSE (r.value -> 5)::text END
FROM batch_result_chunks c, json_array_elements(c.body::json -> 'rows') r;
DROP TABLE batch_result_chunks;
