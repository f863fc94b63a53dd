-- A batch's results are stored in chunks of up to 1000, each one JSON document (see
-- `db::results`), instead of a row per result: a 5000-record batch wrote 5000 index
-- entries, and retention deleted them one by one. `results` counts a chunk's results,
-- `failed` those that are not 200, so reads of failures skip the chunks without any.
CREATE TABLE batch_result_chunks (
    batch_id  BIGINT NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq  INTEGER NOT NULL,
    results   INTEGER NOT NULL,
    failed    INTEGER NOT NULL,
    body      TEXT NOT NULL,
    PRIMARY KEY (batch_id, first_seq)
);
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_settings
               WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
        EXECUTE 'ALTER TABLE batch_result_chunks ALTER COLUMN body SET COMPRESSION lz4';
    END IF;
END
$$;
-- Results stored so far become chunks of the indexes 0-999, 1000-1999, ... of their
-- batch, with their messages inline.
INSERT INTO batch_result_chunks (batch_id, first_seq, last_seq, results, failed, body)
SELECT batch_id, MIN(seq), MAX(seq), COUNT(*), COUNT(*) FILTER (WHERE response_code <> 200),
       json_build_object('messages', json_build_array(),
                         'rows', json_agg(json_build_array(seq, entity_id, entity_ref,
                                                           response_code, message, data::json)
                                          ORDER BY seq))::text
FROM batch_results
GROUP BY batch_id, seq / 1000;
DROP TABLE batch_results;
