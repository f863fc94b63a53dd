//! Small helpers for SQL written per backend: SQLite statements in a few fixed shapes, and
//! statements whose placeholders differ (`$n` for PostgreSQL, `?n` for SQLite).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_query;
use diesel::sql_types::{BigInt, Timestamp};

use super::DbConnection;

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
    fn ladder_chunks_use_only_the_given_sizes_and_keep_every_row_in_order() {
        let rows: Vec<usize> = (0..150).collect();
        let chunks = ladder_chunks(&rows, &[64, 8, 1]);
        let lengths: Vec<usize> = chunks.iter().map(|c| c.len()).collect();
        assert_eq!(lengths, vec![64, 64, 8, 8, 1, 1, 1, 1, 1, 1]);
        assert_eq!(chunks.concat(), rows);
        assert!(ladder_chunks(&rows[..0], &[64, 8, 1]).is_empty());
    }
}
