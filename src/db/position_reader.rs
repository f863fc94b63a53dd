//! SQLite's reads of a batch's positions by SKU range, on a read-only connection of the
//! executor thread's own. Through diesel every row of such a read went field by field
//! through generic row types, a copy of its key's text included, and that was a third of
//! the time of a batch that changes nothing; rusqlite reads the columns in place.
//!
//! The connection reads what is committed, as the executor's own did: call it outside a
//! write transaction. The queue never runs a batch beside an earlier one touching the same
//! positions, so what it reads is what that batch starts from.

use std::cell::RefCell;
use std::sync::LazyLock;
use std::time::Duration;

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::Text;
use rusqlite::{Connection, OpenFlags};

use super::positions::STOCK_COLUMNS;
use crate::domain::operations::Stock;

thread_local! {
    /// This thread's read-only connection, with the file it reads.
    static READER: RefCell<Option<(String, Connection)>> = const { RefCell::new(None) };
}

/// At most `?4` positions of retailer `?1` with a SKU from `?2` to `?3`, in key order (the
/// table's own: no sort): location, SKU, then the stored fields.
static SKU_RANGE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT p.location_ref, p.sku_ref, {STOCK_COLUMNS} FROM inventory_positions p \
         WHERE p.retailer_id = ?1 AND p.sku_ref BETWEEN ?2 AND ?3 \
         ORDER BY p.sku_ref, p.location_ref LIMIT ?4"
    )
});

/// Reads `runs` of keys, each sorted by (SKU, location) as `sku_and_location` gives them,
/// with one scan of each run's SKU range; key `i`'s position goes to `found[i]`. A scan that
/// reads `limit(run)` rows is abandoned and its run's positions forgotten: returns how many
/// keys the scans before it read. A database without a file (in memory) is not scanned.
pub fn scan_sku_ranges<'k>(
    conn: &mut SqliteConnection,
    retailer: &str,
    runs: impl Iterator<Item = &'k [usize]>,
    sku_and_location: impl Fn(usize) -> (&'k str, &'k str),
    limit: impl Fn(&[usize]) -> usize,
    found: &mut [Option<Stock>],
) -> QueryResult<usize> {
    let Some(file) = main_file(conn)? else {
        return Ok(0);
    };
    READER
        .with_borrow_mut(|reader| {
            if reader.as_ref().is_none_or(|(open, _)| *open != file) {
                *reader = Some((file.clone(), open(&file)?));
            }
            let connection = &reader.as_ref().expect("opened above").1;
            let mut scan = connection.prepare_cached(&SKU_RANGE)?;
            let mut scanned = 0;
            for run in runs {
                let limit = limit(run);
                let (first, last) = (
                    sku_and_location(run[0]).0,
                    sku_and_location(run[run.len() - 1]).0,
                );
                let mut rows = scan.query((retailer, first, last, limit as i64))?;
                // Rows come in the run's order: each is matched by walking the run beside them.
                let (mut read, mut next) = (0, 0);
                while let Some(row) = rows.next()? {
                    read += 1;
                    let key = (row.get_ref(1)?.as_str()?, row.get_ref(0)?.as_str()?);
                    while next < run.len() && sku_and_location(run[next]) < key {
                        next += 1;
                    }
                    if next < run.len() && sku_and_location(run[next]) == key {
                        found[run[next]] = Some(Stock {
                            id: Some(row.get(2)?),
                            qty: row.get(3)?,
                            corrected_qty: row.get(4)?,
                            reserved_qty: row.get(5)?,
                            inventory_id: row.get(6)?,
                            reference: row.get(7)?,
                            inventory_type: row.get(8)?,
                            status: row.get(9)?,
                            attributes: row.get(10)?,
                            extra: row.get(11)?,
                        });
                    }
                }
                if read == limit {
                    run.iter().for_each(|&i| found[i] = None);
                    break;
                }
                scanned += run.len();
            }
            Ok(scanned)
        })
        .map_err(|e: rusqlite::Error| {
            DieselError::DatabaseError(DatabaseErrorKind::Unknown, Box::new(e.to_string()))
        })
}

fn open(file: &str) -> rusqlite::Result<Connection> {
    let connection = Connection::open_with_flags(
        file,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    connection.busy_timeout(Duration::from_secs(10))?;
    Ok(connection)
}

/// The file `conn` reads, if it reads one.
fn main_file(conn: &mut SqliteConnection) -> QueryResult<Option<String>> {
    #[derive(QueryableByName)]
    struct File {
        #[diesel(sql_type = Text)]
        file: String,
    }
    let main: File = diesel::sql_query("SELECT file FROM pragma_database_list WHERE name = 'main'")
        .get_result(conn)?;
    Ok(Some(main.file).filter(|file| !file.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::DbConnection;

    #[test]
    fn a_range_is_read_in_key_order_without_a_sort() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.db");
        let path = path.to_str().unwrap();
        let mut conn = DbConnection::Sqlite(
            <SqliteConnection as diesel::Connection>::establish(path).unwrap(),
        );
        crate::db::run_migrations(&mut conn).unwrap();
        let plan: Vec<String> = open(path)
            .unwrap()
            .prepare(&format!("EXPLAIN QUERY PLAN {}", *SKU_RANGE))
            .unwrap()
            .query_map(("1", "A", "B", 10), |row| row.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter().any(|step| step.contains("PRIMARY KEY")),
            "{plan:?}"
        );
        assert!(!plan.iter().any(|step| step.contains("B-TREE")), "{plan:?}");
    }
}
