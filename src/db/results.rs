//! Per-record results of a batch, written once when the batch completes and read by page.

use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_query;
use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text};
use diesel::sqlite::{Sqlite, SqliteConnection};

use super::models::{BatchResult, NewResult};
use super::schema::batch_results;
use super::sql::ladder_chunks;
use super::DbConnection;

const COLUMNS: &str = "batch_id, seq, entity_id, entity_ref, response_code, message";

/// Writes `rows` as results of batch `batch_id`, in as few statements as the backend allows.
pub fn insert_results(
    conn: &mut DbConnection,
    batch_id: i64,
    rows: &[NewResult],
) -> QueryResult<()> {
    match conn {
        DbConnection::Sqlite(c) => {
            for chunk in ladder_chunks(rows, &[256, 16, 1]) {
                SqliteInsert {
                    batch_id,
                    rows: chunk,
                }
                .execute(c)?;
            }
            Ok(())
        }
        DbConnection::Pg(c) => {
            sql_query(format!(
                "INSERT INTO batch_results ({COLUMNS}) SELECT $1, * FROM \
                 UNNEST($2::int4[], $3::int8[], $4::text[], $5::int4[], $6::text[])"
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
            .execute(c)?;
            Ok(())
        }
    }
}

/// A multi-row SQLite insert of results; diesel caches its prepared statement by text,
/// which depends only on the row count.
struct SqliteInsert<'a> {
    batch_id: i64,
    rows: &'a [NewResult],
}

impl QueryId for SqliteInsert<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl RunQueryDsl<SqliteConnection> for SqliteInsert<'_> {}

impl QueryFragment<Sqlite> for SqliteInsert<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        out.push_sql("INSERT INTO batch_results (");
        out.push_sql(COLUMNS);
        out.push_sql(") VALUES ");
        for (i, row) in self.rows.iter().enumerate() {
            out.push_sql(if i == 0 { "(" } else { ", (" });
            out.push_bind_param::<BigInt, _>(&self.batch_id)?;
            out.push_sql(", ");
            out.push_bind_param::<Integer, _>(&row.seq)?;
            out.push_sql(", ");
            out.push_bind_param::<Nullable<BigInt>, _>(&row.entity_id)?;
            out.push_sql(", ");
            out.push_bind_param::<Nullable<Text>, _>(&row.entity_ref)?;
            out.push_sql(", ");
            out.push_bind_param::<Integer, _>(&row.response_code)?;
            out.push_sql(", ");
            out.push_bind_param::<Text, _>(&row.message)?;
            out.push_sql(")");
        }
        Ok(())
    }
}

/// The record indexes of a batch that already have a result.
pub fn recorded_seqs(conn: &mut DbConnection, batch_id: i64) -> QueryResult<Vec<i32>> {
    batch_results::table
        .filter(batch_results::batch_id.eq(batch_id))
        .select(batch_results::seq)
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
        ))
        .load(conn)
}
