//! Per-record results of a batch. They are written once, by the transaction that applies
//! their records, and read by page, so they are stored in chunks: a row of
//! `batch_result_chunks` holds up to [`CHUNK_RESULTS`] results of one batch with
//! consecutive record indexes, as one JSON document, where a row per result cost every batch
//! 5000 index entries to write and to prune.
//!
//! A chunk's `body` is `{"messages": [text, ...], "rows": [row, ...]}`, each row
//! `[seq, entityId, entityRef, responseCode, message, data]` in record order: `message` is
//! the index of its text in `messages` (a batch's thousands of "Inventory unchanged" are
//! stored once) or, in chunks migrated from one row per result, the text itself; `data` is
//! a StateSet item's result data as JSON, or null.

use std::borrow::Cow;
use std::fmt;

use diesel::connection::DefaultLoadingMode;
use diesel::prelude::*;
use foldhash::{HashMap, HashMapExt};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::models::{BatchResult, NewResult};
use super::schema::batch_result_chunks as chunks;
use super::DbConnection;

/// Most results one chunk holds: a page read decodes one or two.
pub const CHUNK_RESULTS: usize = 1000;

/// A chunk to insert.
#[derive(Insertable, Debug)]
#[diesel(table_name = chunks)]
pub struct NewResultChunk {
    pub batch_id: i64,
    pub first_seq: i32,
    pub last_seq: i32,
    /// How many results it holds, and how many of them are not 200.
    pub results: i32,
    pub failed: i32,
    pub body: String,
}

/// `rows` (in record order) as the chunks that store them for batch `batch_id`.
pub fn result_chunks(batch_id: i64, rows: &[NewResult]) -> Vec<NewResultChunk> {
    debug_assert!(rows.windows(2).all(|w| w[0].seq < w[1].seq));
    rows.chunks(CHUNK_RESULTS)
        .map(|chunk| NewResultChunk {
            batch_id,
            first_seq: chunk[0].seq,
            last_seq: chunk[chunk.len() - 1].seq,
            results: chunk.len() as i32,
            failed: chunk.iter().filter(|r| r.response_code != 200).count() as i32,
            body: encode(chunk),
        })
        .collect()
}

#[derive(Serialize)]
struct BodyOut<'a> {
    messages: Vec<&'a str>,
    rows: Vec<RowOut<'a>>,
}

type RowOut<'a> = (
    i32,
    Option<i64>,
    Option<&'a str>,
    i32,
    usize,
    Option<&'a RawValue>,
);

fn encode(rows: &[NewResult]) -> String {
    let mut messages: Vec<&str> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    let rows = rows
        .iter()
        .map(|r| {
            let message = *index.entry(r.message.as_ref()).or_insert_with(|| {
                messages.push(&r.message);
                messages.len() - 1
            });
            (
                r.seq,
                r.entity_id,
                r.entity_ref.as_deref(),
                r.response_code,
                message,
                r.data.as_deref(),
            )
        })
        .collect();
    serde_json::to_string(&BodyOut { messages, rows }).expect("results serialize")
}

#[derive(Deserialize)]
struct BodyIn<'a> {
    #[serde(borrow)]
    messages: Vec<Cow<'a, str>>,
    #[serde(borrow)]
    rows: Vec<RowIn<'a>>,
}

#[derive(Deserialize)]
struct RowIn<'a>(
    i32,
    Option<i64>,
    #[serde(borrow)] Option<Cow<'a, str>>,
    i32,
    #[serde(borrow)] Message<'a>,
    #[serde(borrow)] Option<&'a RawValue>,
);

/// A row's message: an index into its chunk's `messages`, or the text itself.
enum Message<'a> {
    Index(usize),
    Text(Cow<'a, str>),
}

impl<'de: 'a, 'a> Deserialize<'de> for Message<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MessageVisitor;
        impl<'de> Visitor<'de> for MessageVisitor {
            type Value = Message<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a message's index or text")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                usize::try_from(v)
                    .map(Message::Index)
                    .map_err(|_| E::custom("message index out of range"))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Message::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Message::Text(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_any(MessageVisitor)
    }
}

/// A stored result as its chunk holds it, but for its message.
struct Stored<'a> {
    seq: i32,
    entity_id: Option<i64>,
    entity_ref: Option<Cow<'a, str>>,
    code: i32,
    data: Option<&'a RawValue>,
}

/// Calls `keep` for every row of a chunk's body whose index is at least `from` and whose
/// code `wanted` accepts, with its message.
fn decode(
    body: &str,
    from: i32,
    wanted: &impl Fn(i32) -> bool,
    keep: &mut impl FnMut(Stored, &str),
) -> QueryResult<()> {
    let corrupt = |e: String| diesel::result::Error::DeserializationError(e.into());
    let body: BodyIn = serde_json::from_str(body).map_err(|e| corrupt(e.to_string()))?;
    for RowIn(seq, entity_id, entity_ref, code, message, data) in body.rows {
        if seq < from || !wanted(code) {
            continue;
        }
        let text = match &message {
            Message::Index(i) => body
                .messages
                .get(*i)
                .ok_or_else(|| corrupt(format!("no message {i} in a result chunk")))?,
            Message::Text(text) => text,
        };
        let stored = Stored {
            seq,
            entity_id,
            entity_ref,
            code,
            data,
        };
        keep(stored, text);
    }
    Ok(())
}

/// Up to `limit` results of a batch from record index `from` on whose code `wanted`
/// accepts, in record order, as `make` makes them; `with_failures` reads only chunks
/// holding a result that is not 200.
fn read<T>(
    conn: &mut DbConnection,
    batch_id: i64,
    from: i32,
    limit: usize,
    with_failures: bool,
    wanted: impl Fn(i32) -> bool,
    mut make: impl FnMut(Stored, &str) -> T,
) -> QueryResult<Vec<T>> {
    let query = chunks::table
        .filter(chunks::batch_id.eq(batch_id))
        .filter(chunks::last_seq.ge(from))
        .filter(chunks::failed.ge(i32::from(with_failures)))
        .order(chunks::first_seq)
        .select((chunks::first_seq, chunks::body));
    let mut found: Vec<(i32, T)> = Vec::new();
    let mut visit = |first_seq: i32, body: &str| -> QueryResult<bool> {
        // Chunks come by their first index: once `limit` results lie before this one's,
        // no later chunk holds an earlier result.
        if found.len() >= limit && found.last().is_some_and(|(seq, _)| *seq < first_seq) {
            return Ok(false);
        }
        decode(body, from, &wanted, &mut |row, text| {
            found.push((row.seq, make(row, text)))
        })?;
        if !found.is_sorted_by_key(|(seq, _)| *seq) {
            found.sort_by_key(|(seq, _)| *seq);
        }
        found.truncate(limit);
        Ok(true)
    };
    for chunk in query.load_iter::<(i32, String), DefaultLoadingMode>(conn)? {
        let (first_seq, body) = chunk?;
        if !visit(first_seq, &body)? {
            break;
        }
    }
    Ok(found.into_iter().map(|(_, t)| t).collect())
}

fn batch_result(row: Stored, message: &str) -> BatchResult {
    BatchResult {
        seq: row.seq,
        entity_id: row.entity_id,
        entity_ref: row.entity_ref.map(Cow::into_owned),
        response_code: row.code,
        message: message.to_owned(),
        data: row.data.map(|d| d.get().to_owned()),
    }
}

/// Writes `rows` (in record order) as results of batch `batch_id`.
pub fn insert_results(
    conn: &mut DbConnection,
    batch_id: i64,
    rows: &[NewResult],
) -> QueryResult<()> {
    for chunk in result_chunks(batch_id, rows) {
        diesel::insert_into(chunks::table)
            .values(&chunk)
            .execute(conn)?;
    }
    Ok(())
}

/// The record indexes of a batch that already have a result, with their codes and messages.
pub fn recorded_seqs(
    conn: &mut DbConnection,
    batch_id: i64,
) -> QueryResult<Vec<(i32, i32, String)>> {
    read(
        conn,
        batch_id,
        0,
        usize::MAX,
        false,
        |_| true,
        |row, message| (row.seq, row.code, message.to_owned()),
    )
}

/// Reads at most `limit` results of a batch starting at record index `offset`: the last
/// page of a large batch costs what the first does.
pub fn page_results(
    conn: &mut DbConnection,
    batch_id: i64,
    offset: i64,
    limit: i64,
) -> QueryResult<Vec<BatchResult>> {
    let Ok(from) = i32::try_from(offset) else {
        return Ok(Vec::new());
    };
    let limit = usize::try_from(limit).unwrap_or(0);
    read(conn, batch_id, from, limit, false, |_| true, batch_result)
}

/// The first `limit` results of a batch that are not 200, as (code, message).
pub fn first_errors(
    conn: &mut DbConnection,
    batch_id: i64,
    limit: i64,
) -> QueryResult<Vec<(i32, String)>> {
    read(
        conn,
        batch_id,
        0,
        usize::try_from(limit).unwrap_or(0),
        true,
        |code| code != 200,
        |row, message| (row.code, message.to_owned()),
    )
}

/// The record indexes of a batch whose results are not 200, in order.
pub fn failed_seqs(conn: &mut DbConnection, batch_id: i64) -> QueryResult<Vec<i32>> {
    read(
        conn,
        batch_id,
        0,
        usize::MAX,
        true,
        |code| code != 200,
        |row, _| row.seq,
    )
}

/// Which results an export shows.
#[derive(Debug, Clone, Default)]
pub struct ResultFilter {
    /// Only these codes (empty: all).
    pub codes: Vec<i32>,
    /// Only results that are not 200.
    pub failed: bool,
}

impl ResultFilter {
    fn accepts(&self, code: i32) -> bool {
        (self.codes.is_empty() || self.codes.contains(&code)) && !(self.failed && code == 200)
    }
}

/// Up to `limit` results of a batch from record index `from` on, filtered.
pub fn filtered_results(
    conn: &mut DbConnection,
    batch_id: i64,
    from: i32,
    limit: i64,
    filter: &ResultFilter,
) -> QueryResult<Vec<BatchResult>> {
    read(
        conn,
        batch_id,
        from,
        usize::try_from(limit).unwrap_or(0),
        filter.failed,
        |code| filter.accepts(code),
        batch_result,
    )
}

#[cfg(test)]
mod tests {
    use diesel::connection::SimpleConnection;

    use super::*;

    fn result(seq: i32, code: i32, message: &str) -> NewResult {
        NewResult {
            seq,
            entity_id: (code == 200).then_some(1000 + i64::from(seq)),
            entity_ref: Some(format!("S{seq}:L")),
            response_code: code,
            message: Cow::Owned(message.to_owned()),
            data: (seq % 7 == 0)
                .then(|| RawValue::from_string(format!(r#"{{"n":{seq},"s":"a\"b"}}"#)).unwrap()),
        }
    }

    fn stored(r: &NewResult) -> BatchResult {
        BatchResult {
            seq: r.seq,
            entity_id: r.entity_id,
            entity_ref: r.entity_ref.clone(),
            response_code: r.response_code,
            message: r.message.to_string(),
            data: r.data.as_ref().map(|d| d.get().to_owned()),
        }
    }

    fn database() -> DbConnection {
        let mut conn = DbConnection::Sqlite(SqliteConnection::establish(":memory:").unwrap());
        crate::db::run_migrations(&mut conn).unwrap();
        conn
    }

    /// 2500 results written in two transactions' worth (0..1200, 1200..2500), every tenth
    /// a 400 with its own message, and another batch's beside them.
    fn written() -> (DbConnection, Vec<NewResult>) {
        let mut conn = database();
        let rows: Vec<NewResult> = (0..2500)
            .map(|seq| match seq % 10 {
                3 => result(
                    seq,
                    400,
                    &format!("'qty' of record {seq} is not an integer"),
                ),
                _ => result(seq, 200, "Inventory unchanged"),
            })
            .collect();
        insert_results(&mut conn, 7, &rows[..1200]).unwrap();
        insert_results(&mut conn, 7, &rows[1200..]).unwrap();
        insert_results(&mut conn, 8, &[result(0, 500, "other")]).unwrap();
        (conn, rows)
    }

    #[test]
    fn results_read_back_as_written_in_pages() {
        let (mut conn, rows) = written();
        let all: Vec<BatchResult> = rows.iter().map(stored).collect();
        assert_eq!(page_results(&mut conn, 7, 0, 5000).unwrap(), all);
        for (offset, limit) in [(0, 100), (950, 100), (1150, 100), (2400, 100), (1999, 1)] {
            assert_eq!(
                page_results(&mut conn, 7, offset, limit).unwrap(),
                all[offset as usize..(offset + limit) as usize],
                "page at {offset}"
            );
        }
        assert!(page_results(&mut conn, 7, 2500, 100).unwrap().is_empty());
        assert!(page_results(&mut conn, 7, i64::MAX, 100)
            .unwrap()
            .is_empty());
        assert_eq!(page_results(&mut conn, 8, 0, 10).unwrap().len(), 1);
    }

    #[test]
    fn failures_are_found_without_the_chunks_that_have_none() {
        let (mut conn, rows) = written();
        let failed: Vec<i32> = rows
            .iter()
            .filter(|r| r.response_code != 200)
            .map(|r| r.seq)
            .collect();
        assert_eq!(failed_seqs(&mut conn, 7).unwrap(), failed);
        let errors = first_errors(&mut conn, 7, 3).unwrap();
        assert_eq!(
            errors,
            [3, 13, 23].map(|s| (400, format!("'qty' of record {s} is not an integer")))
        );
        let filter = ResultFilter {
            codes: vec![400],
            failed: true,
        };
        let from_1995 = filtered_results(&mut conn, 7, 1995, 2, &filter).unwrap();
        assert_eq!(
            from_1995.iter().map(|r| r.seq).collect::<Vec<_>>(),
            [2003, 2013]
        );
        let recorded = recorded_seqs(&mut conn, 7).unwrap();
        assert_eq!(recorded.len(), 2500);
        assert_eq!(recorded[13], (13, 400, rows[13].message.to_string()));
    }

    #[test]
    fn a_chunk_holds_each_message_once() {
        let rows: Vec<NewResult> = (0..1000)
            .map(|seq| result(seq, 200, "Inventory unchanged"))
            .collect();
        let chunks = result_chunks(1, &rows);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].body.matches("Inventory unchanged").count(), 1);
        assert_eq!((chunks[0].first_seq, chunks[0].last_seq), (0, 999));
    }

    /// Chunks migrated from one row per result name their messages inline.
    #[test]
    fn chunks_with_inline_messages_read_back() {
        let mut conn = database();
        conn.batch_execute(
            r#"INSERT INTO batch_result_chunks VALUES (3, 0, 1, 2, 1,
               '{"messages" : [], "rows" : [[0, 5, "A:L", 200, "Inventory created", null],
               [1, null, null, 400, "bad", {"x": 1}]]}');
               INSERT INTO batch_result_chunks VALUES (4, 0, 0, 1, 0,
               '{"messages": [], "rows": [[0, 5, "A:L", 200, 3, null]]}')"#,
        )
        .unwrap();
        let got = page_results(&mut conn, 3, 0, 10).unwrap();
        assert_eq!(got[0].message, "Inventory created");
        assert_eq!(
            (got[1].response_code, got[1].data.as_deref()),
            (400, Some(r#"{"x": 1}"#))
        );
        assert!(
            page_results(&mut conn, 4, 0, 10).is_err(),
            "a corrupt chunk is an error"
        );
    }
}
