//! Small helpers for SQL written per backend: multi-row statements for SQLite, and
//! statements whose placeholders differ (`$n` for PostgreSQL, `?n` for SQLite).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_query;
use diesel::sql_types::{BigInt, Timestamp};

use super::DbConnection;

/// SQLite refuses statements with more than this many bound parameters.
pub const SQLITE_MAX_BINDS: usize = 32_766;

/// `(?, ?, ?), (?, ?, ?)` for `rows` rows of `columns` values.
pub fn sqlite_values(rows: usize, columns: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    vec![row; rows].join(", ")
}

/// How many rows of `columns` values fit in one SQLite statement, capped at `cap`.
pub fn sqlite_rows_per_statement(columns: usize, cap: usize) -> usize {
    (SQLITE_MAX_BINDS / columns).min(cap)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_lists_one_group_per_row() {
        assert_eq!(sqlite_values(2, 3), "(?, ?, ?), (?, ?, ?)");
    }

    #[test]
    fn rows_per_statement_respects_the_bind_limit() {
        assert_eq!(sqlite_rows_per_statement(15, 5000), 2184);
        assert!(sqlite_rows_per_statement(15, 5000) * 15 <= SQLITE_MAX_BINDS);
        assert_eq!(sqlite_rows_per_statement(6, 1000), 1000);
    }
}
