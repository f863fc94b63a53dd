//! Per-record results of a batch, written once when the batch completes and read by page.

use diesel::prelude::*;
use diesel::query_builder::AstPass;
use diesel::sql_query;
use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text};
use diesel::sqlite::Sqlite;

use super::models::{BatchResult, NewResult};
use super::schema::batch_results;
use super::sql::{bind_values, ladder_chunks, SqliteRow, SqliteRows};
use super::DbConnection;

const COLUMNS: &str = "batch_id, seq, entity_id, entity_ref, response_code, message, data";

/// A result row bound with its batch id.
struct ResultRow<'a> {
    batch_id: i64,
    row: &'a NewResult,
}

impl SqliteRow for ResultRow<'_> {
    fn bind<'b>(&'b self, out: &mut AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        let r = self.row;
        bind_values!(out,
            BigInt => &self.batch_id,
            Integer => &r.seq,
            Nullable<BigInt> => &r.entity_id,
            Nullable<Text> => &r.entity_ref,
            Integer => &r.response_code,
            Text => &r.message,
            Nullable<Text> => &r.data,
        )
    }
}

/// Writes `rows` as results of batch `batch_id`, in as few statements as the backend allows.
pub fn insert_results(
    conn: &mut DbConnection,
    batch_id: i64,
    rows: &[NewResult],
) -> QueryResult<()> {
    match conn {
        DbConnection::Sqlite(c) => {
            let rows: Vec<ResultRow> = rows.iter().map(|row| ResultRow { batch_id, row }).collect();
            let head = format!("INSERT INTO batch_results ({COLUMNS}) VALUES");
            for chunk in ladder_chunks(&rows, &[256, 16, 1]) {
                SqliteRows {
                    head: &head,
                    now: None,
                    rows: chunk,
                    tail: "",
                }
                .execute(c)?;
            }
            Ok(())
        }
        DbConnection::Pg(c) => {
            sql_query(format!(
                "INSERT INTO batch_results ({COLUMNS}) SELECT $1, * FROM \
                 UNNEST($2::int4[], $3::int8[], $4::text[], $5::int4[], $6::text[], $7::text[])"
            ))
            .bind::<BigInt, _>(batch_id)
            .bind::<Array<Integer>, _>(rows.iter().map(|r| r.seq).collect::<Vec<_>>())
            .bind::<Array<Nullable<BigInt>>, _>(
                rows.iter().map(|r| r.entity_id).collect::<Vec<_>>(),
            )
            .bind::<Array<Nullable<Text>>, _>(
                rows.iter()
                    .map(|r| r.entity_ref.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind::<Array<Integer>, _>(rows.iter().map(|r| r.response_code).collect::<Vec<_>>())
            .bind::<Array<Text>, _>(rows.iter().map(|r| r.message.as_str()).collect::<Vec<_>>())
            .bind::<Array<Nullable<Text>>, _>(
                rows.iter().map(|r| r.data.as_deref()).collect::<Vec<_>>(),
            )
            .execute(c)?;
            Ok(())
        }
    }
}

/// The record indexes of a batch that already have a result, with their codes and messages.
pub fn recorded_seqs(
    conn: &mut DbConnection,
    batch_id: i64,
) -> QueryResult<Vec<(i32, i32, String)>> {
    batch_results::table
        .filter(batch_results::batch_id.eq(batch_id))
        .select((
            batch_results::seq,
            batch_results::response_code,
            batch_results::message,
        ))
        .load(conn)
}

/// Reads at most `limit` results of a batch starting at record index `offset`: an index
/// seek, so the last page of a large batch costs what the first does.
pub fn page_results(
    conn: &mut DbConnection,
    batch_id: i64,
    offset: i64,
    limit: i64,
) -> QueryResult<Vec<BatchResult>> {
    let Ok(first_seq) = i32::try_from(offset) else {
        return Ok(Vec::new());
    };
    batch_results::table
        .filter(batch_results::batch_id.eq(batch_id))
        .filter(batch_results::seq.ge(first_seq))
        .order(batch_results::seq)
        .limit(limit)
        .select((
            batch_results::seq,
            batch_results::entity_id,
            batch_results::entity_ref,
            batch_results::response_code,
            batch_results::message,
            batch_results::data,
        ))
        .load(conn)
}

/// The first `limit` results of a batch that are not 200, as (code, message).
pub fn first_errors(
    conn: &mut DbConnection,
    batch_id: i64,
    limit: i64,
) -> QueryResult<Vec<(i32, String)>> {
    batch_results::table
        .filter(batch_results::batch_id.eq(batch_id))
        .filter(batch_results::response_code.ne(200))
        .order(batch_results::seq)
        .limit(limit)
        .select((batch_results::response_code, batch_results::message))
        .load(conn)
}

/// The record indexes of a batch whose results are not 200, in order.
pub fn failed_seqs(conn: &mut DbConnection, batch_id: i64) -> QueryResult<Vec<i32>> {
    batch_results::table
        .filter(batch_results::batch_id.eq(batch_id))
        .filter(batch_results::response_code.ne(200))
        .order(batch_results::seq)
        .select(batch_results::seq)
        .load(conn)
}

/// Which results an export shows.
#[derive(Debug, Clone, Default)]
pub struct ResultFilter {
    /// Only these codes (empty: all).
    pub codes: Vec<i32>,
    /// Only results that are not 200.
    pub failed: bool,
}

/// Up to `limit` results of a batch from record index `from` on, filtered.
pub fn filtered_results(
    conn: &mut DbConnection,
    batch_id: i64,
    from: i32,
    limit: i64,
    filter: &ResultFilter,
) -> QueryResult<Vec<BatchResult>> {
    let mut query = batch_results::table
        .filter(batch_results::batch_id.eq(batch_id))
        .filter(batch_results::seq.ge(from))
        .into_boxed();
    if !filter.codes.is_empty() {
        query = query.filter(batch_results::response_code.eq_any(filter.codes.clone()));
    }
    if filter.failed {
        query = query.filter(batch_results::response_code.ne(200));
    }
    query
        .order(batch_results::seq)
        .limit(limit)
        .select((
            batch_results::seq,
            batch_results::entity_id,
            batch_results::entity_ref,
            batch_results::response_code,
            batch_results::message,
            batch_results::data,
        ))
        .load(conn)
}
