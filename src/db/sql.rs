//! Small helpers for SQL written per backend: SQLite statements in a few fixed shapes, and
//! statements whose placeholders differ (`$n` for PostgreSQL, `?n` for SQLite).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_query;
use diesel::sql_types::{BigInt, Integer, Text, Timestamp, Untyped};
use diesel::sqlite::{Sqlite, SqliteConnection};

use super::DbConnection;

/// A row of a multi-row SQLite statement: binds its values, separated by `, `.
pub trait SqliteRow {
    fn bind<'b>(&'b self, out: &mut AstPass<'_, 'b, Sqlite>) -> QueryResult<()>;
}

/// `head (row), (row), ... tail` for SQLite. With `now: Some((time, n))`, the first `n`
/// values of every row are `time`, bound once as `?1` (so `head` must hold no parameter).
/// Plain `VALUES` rows are read as they are written, where a join with a one-row `now`
/// would copy them into a temporary table first. Unlike `sql_query`, diesel caches the
/// prepared statement (by its text, which depends only on the row count): call it with
/// chunks from [`ladder_chunks`] so a handful of texts serve every batch.
pub struct SqliteRows<'a, R> {
    pub head: &'a str,
    pub now: Option<(NaiveDateTime, usize)>,
    pub rows: &'a [R],
    pub tail: &'a str,
}

impl<R> QueryId for SqliteRows<'_, R> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<R> Query for SqliteRows<'_, R> {
    type SqlType = Untyped;
}

impl<R> RunQueryDsl<SqliteConnection> for SqliteRows<'_, R> {}

impl<R: SqliteRow> QueryFragment<Sqlite> for SqliteRows<'_, R> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        out.push_sql(self.head);
        for (i, row) in self.rows.iter().enumerate() {
            out.push_sql(if i == 0 { " (" } else { ", (" });
            if let Some((now, n)) = &self.now {
                for k in 0..*n {
                    if i == 0 && k == 0 {
                        out.push_bind_param::<Timestamp, _>(now)?;
                    } else {
                        out.push_sql("?1");
                    }
                    out.push_sql(", ");
                }
            }
            row.bind(&mut out)?;
            out.push_sql(")");
        }
        out.push_sql(self.tail);
        Ok(())
    }
}

/// A SQLite statement whose rows are read by position as `ST`, where `sql_query`'s rows
/// are read by column name (a search of the column names for every field of every row).
pub struct Typed<Q, ST>(Q, std::marker::PhantomData<ST>);

impl<Q, ST> Typed<Q, ST> {
    pub fn new(query: Q) -> Self {
        Typed(query, std::marker::PhantomData)
    }
}

impl<Q, ST> QueryId for Typed<Q, ST> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q, ST: 'static> Query for Typed<Q, ST> {
    type SqlType = ST;
}

impl<Q, ST> RunQueryDsl<SqliteConnection> for Typed<Q, ST> {}

impl<Q: QueryFragment<Sqlite>, ST> QueryFragment<Sqlite> for Typed<Q, ST> {
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        self.0.walk_ast(out)
    }
}

/// Binds a row's values, separated by `, `: `bind_values!(out, BigInt => &self.id, ...)`.
macro_rules! bind_values {
    ($out:expr, $ty:ty => $value:expr $(, $rest_ty:ty => $rest:expr)* $(,)?) => {{
        $out.push_bind_param::<$ty, _>($value)?;
        $(
            $out.push_sql(", ");
            $out.push_bind_param::<$rest_ty, _>($rest)?;
        )*
        Ok(())
    }};
}
pub(crate) use bind_values;

/// Splits `rows` greedily into chunks whose lengths all come from `sizes` (largest
/// first, ending with 1). Statements built per chunk then have only `sizes.len()` texts,
/// so each is prepared once per connection and reused.
pub fn ladder_chunks<'a, T>(mut rows: &'a [T], sizes: &'static [usize]) -> Vec<&'a [T]> {
    let mut chunks = Vec::new();
    for &size in sizes {
        while rows.len() >= size {
            let (chunk, rest) = rows.split_at(size);
            chunks.push(chunk);
            rows = rest;
        }
    }
    chunks
}

/// SQLite binds `$1`-style parameters by their order of first appearance, not by number;
/// `?1` is bound by number, as `$1` is on PostgreSQL.
pub fn numbered_for_sqlite(sql: &str) -> String {
    sql.replace('$', "?")
}

/// Runs a bounded delete written with `$1` (the cutoff) and `$2` (the limit). SQLite reads
/// `$1` as a named parameter, so one text serves both backends.
pub fn delete_before(
    conn: &mut DbConnection,
    sql: &str,
    cutoff: NaiveDateTime,
    limit: i64,
) -> QueryResult<usize> {
    let query = sql_query(sql)
        .bind::<Timestamp, _>(cutoff)
        .bind::<BigInt, _>(limit);
    match conn {
        DbConnection::Sqlite(c) => query.execute(c),
        DbConnection::Pg(c) => query.execute(c),
    }
}

/// The attempt number a login reserved.
#[derive(QueryableByName)]
struct Attempt {
    #[diesel(sql_type = Integer)]
    failures: i32,
}

/// Counts one more attempt unless the username is locked (see
/// `accounts::reserve_login_attempt`); `None` when it is.
pub fn query_login_attempt(
    conn: &mut DbConnection,
    username: &str,
    threshold: i32,
    now: NaiveDateTime,
    provisional_lock: NaiveDateTime,
) -> QueryResult<Option<i32>> {
    let insert = |sql: &str| {
        sql_query(sql)
            .bind::<Text, _>(username)
            .bind::<Timestamp, _>(now)
    };
    const INSERT: &str = "INSERT INTO login_failures (username, failures, updated_on) \
        VALUES ($1, 0, $2) ON CONFLICT (username) DO NOTHING";
    match conn {
        DbConnection::Sqlite(c) => insert(&numbered_for_sqlite(INSERT)).execute(c)?,
        DbConnection::Pg(c) => insert(INSERT).execute(c)?,
    };
    let query = |sql: &str| {
        sql_query(sql)
            .bind::<Text, _>(username)
            .bind::<Integer, _>(threshold)
            .bind::<Timestamp, _>(now)
            .bind::<Timestamp, _>(provisional_lock)
    };
    const RESERVE: &str = "UPDATE login_failures SET failures = failures + 1, updated_on = $3, \
        locked_until = CASE WHEN failures + 1 >= $2 THEN $4 ELSE NULL END \
        WHERE username = $1 AND (failures < $2 OR locked_until <= $3) RETURNING failures";
    let attempt: Option<Attempt> = match conn {
        DbConnection::Sqlite(c) => query(&numbered_for_sqlite(RESERVE))
            .get_result(c)
            .optional()?,
        DbConnection::Pg(c) => query(RESERVE).get_result(c).optional()?,
    };
    Ok(attempt.map(|a| a.failures))
}

/// Uncounts one attempt, dropping a provisional lock the count no longer reaches.
pub fn release_login_attempt(
    conn: &mut DbConnection,
    username: &str,
    threshold: i32,
) -> QueryResult<()> {
    let query = |sql: &str| {
        sql_query(sql)
            .bind::<Text, _>(username)
            .bind::<Integer, _>(threshold)
    };
    const RELEASE: &str = "UPDATE login_failures SET failures = failures - 1, \
        locked_until = CASE WHEN failures - 1 >= $2 THEN locked_until ELSE NULL END \
        WHERE username = $1 AND failures > 0";
    match conn {
        DbConnection::Sqlite(c) => query(&numbered_for_sqlite(RELEASE)).execute(c)?,
        DbConnection::Pg(c) => query(RELEASE).execute(c)?,
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladder_chunks_use_only_the_given_sizes_and_keep_every_row_in_order() {
        let rows: Vec<usize> = (0..150).collect();
        let chunks = ladder_chunks(&rows, &[64, 8, 1]);
        let lengths: Vec<usize> = chunks.iter().map(|c| c.len()).collect();
        assert_eq!(lengths, vec![64, 64, 8, 8, 1, 1, 1, 1, 1, 1]);
        assert_eq!(chunks.concat(), rows);
        assert!(ladder_chunks(&rows[..0], &[64, 8, 1]).is_empty());
    }
}
