//! Per-record results of a batch, written once when the batch completes and read by page.

use diesel::prelude::*;
use diesel::sql_query;
use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text};
use diesel::sqlite::Sqlite;

use super::models::{BatchResult, NewResult};
use super::schema::batch_results;
use super::sql::{sqlite_rows_per_statement, sqlite_values};
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
            for chunk in rows.chunks(sqlite_rows_per_statement(6, 2000)) {
                let sql = format!(
                    "INSERT INTO batch_results ({COLUMNS}) VALUES {}",
                    sqlite_values(chunk.len(), 6)
                );
                let mut query = sql_query(sql).into_boxed::<Sqlite>();
                for row in chunk {
                    query = query
                        .bind::<BigInt, _>(batch_id)
                        .bind::<Integer, _>(row.seq)
                        .bind::<Nullable<BigInt>, _>(row.entity_id)
                        .bind::<Nullable<Text>, _>(row.entity_ref.as_deref())
                        .bind::<Integer, _>(row.response_code)
                        .bind::<Text, _>(row.message.as_str());
                }
                query.execute(c)?;
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
