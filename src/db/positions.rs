//! Inventory positions: what the executor reads and writes for a batch, and the reads the
//! API serves. Only the executor writes positions, and the queue never runs two batches that
//! share one at once, so a batch reads its positions once and writes what it changed.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::query_builder::AstPass;
use diesel::sql_query;
use diesel::sql_types::{Array, BigInt, Nullable, Text, Timestamp};
use diesel::sqlite::Sqlite;

use super::models::Position;
use super::schema::inventory_positions as positions;
use super::sql::{bind_values, ladder_chunks, SqliteRow, SqliteRows, Typed};
use super::{position_reader, DbConnection};
use crate::domain::operations::{PositionKey, Stock};

/// Rows per multi-row SQLite statement: few statement texts, each prepared once.
const SQLITE_CHUNKS: &[usize] = &[128, 16, 1];

/// Read by position on SQLite (as [`StockRowSql`]), by column name on PostgreSQL.
#[derive(QueryableByName, Queryable)]
struct StockRow {
    /// Which of the keys looked up it is.
    #[diesel(sql_type = BigInt)]
    key_index: i64,
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    qty: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    corrected_qty: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    reserved_qty: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    inventory_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    reference: Option<String>,
    #[diesel(sql_type = Text)]
    inventory_type: String,
    #[diesel(sql_type = Nullable<Text>)]
    status: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    attributes: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    extra: Option<String>,
}

type StockRowSql = (
    BigInt,
    BigInt,
    BigInt,
    Nullable<BigInt>,
    Nullable<BigInt>,
    Nullable<Text>,
    Nullable<Text>,
    Text,
    Nullable<Text>,
    Nullable<Text>,
    Nullable<Text>,
);

impl StockRow {
    /// The index of its key among those looked up, and its fields.
    fn into_stock(self) -> (usize, Stock) {
        let stock = Stock {
            id: Some(self.id),
            qty: self.qty,
            corrected_qty: self.corrected_qty,
            reserved_qty: self.reserved_qty,
            inventory_id: self.inventory_id,
            reference: self.reference,
            inventory_type: self.inventory_type,
            status: self.status,
            attributes: self.attributes,
            extra: self.extra,
        };
        (self.key_index as usize, stock)
    }
}

/// The stored fields of a position `p`, in [`Stock`]'s order. The diesel reads name a row's
/// key by its index among those looked up, so the keys' text is not read back.
pub(super) const STOCK_COLUMNS: &str =
    "p.id, p.qty, p.corrected_qty, p.reserved_qty, p.inventory_id, \
    p.reference, p.inventory_type, p.status, p.attributes, p.extra";

struct KeyRow<'a> {
    retailer: &'a str,
    key: &'a PositionKey,
    index: i64,
}

impl SqliteRow for KeyRow<'_> {
    fn bind<'b>(&'b self, out: &mut AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        bind_values!(out,
            Text => &self.retailer,
            Text => &self.key.0,
            Text => &self.key.1,
            BigInt => &self.index,
        )
    }
}

/// The positions of `retailer` at `keys` (distinct): for each key, its stock where a
/// position exists.
pub fn load_positions(
    conn: &mut DbConnection,
    retailer: &str,
    keys: &[PositionKey],
) -> QueryResult<Vec<Option<Stock>>> {
    let mut found = vec![None; keys.len()];
    let rows: Vec<StockRow> = match conn {
        DbConnection::Sqlite(c) => {
            load_positions_sqlite(c, retailer, keys, &mut found)?;
            return Ok(found);
        }
        // One index lookup per key, whatever the planner's statistics say: a plain join
        // on a table not analysed yet (autovacuum off, or just loaded) reads every position.
        DbConnection::Pg(c) => sql_query(format!(
            "SELECT k.i - 1 AS key_index, {STOCK_COLUMNS} \
             FROM UNNEST($2::text[], $3::text[]) WITH ORDINALITY AS k(l, s, i) \
             CROSS JOIN LATERAL (SELECT * FROM inventory_positions q WHERE q.retailer_id = $1 \
             AND q.location_ref = k.l AND q.sku_ref = k.s LIMIT 1) p"
        ))
        .bind::<Text, _>(retailer)
        .bind::<Array<Text>, _>(keys.iter().map(|k| k.0.as_str()).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(keys.iter().map(|k| k.1.as_str()).collect::<Vec<_>>())
        .load(c)?,
    };
    for (i, stock) in rows.into_iter().map(StockRow::into_stock) {
        found[i] = Some(stock);
    }
    Ok(found)
}

/// Keys one SKU-range scan looks up.
const SCAN_KEYS: usize = 500;
/// Rows a scan may read per key it looks up, beyond which its keys are looked up one by one.
const SCAN_ROWS_PER_KEY: usize = 2;

/// SQLite reads the keys in runs of [`SCAN_KEYS`] by SKU: each run's SKU range in one scan
/// of the table, which is in key order (see [`position_reader`]). Where the batch covers
/// most positions in that range (a snapshot in SKU order), a seek per key costs half as
/// much again. A range holding many more positions than the run looks up (a batch of one
/// location's stock, or scattered SKUs) is abandoned after [`SCAN_ROWS_PER_KEY`] rows per
/// key, and it and the runs after it are looked up key by key.
fn load_positions_sqlite(
    c: &mut diesel::SqliteConnection,
    retailer: &str,
    keys: &[PositionKey],
    found: &mut [Option<Stock>],
) -> QueryResult<()> {
    let key = |i: usize| (keys[i].1.as_str(), keys[i].0.as_str());
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_unstable_by(|&a, &b| key(a).cmp(&key(b)));
    let scanned = position_reader::scan_sku_ranges(
        c,
        retailer,
        order.chunks(SCAN_KEYS),
        key,
        |run| run.len() * SCAN_ROWS_PER_KEY + 1,
        found,
    )?;
    let key_rows: Vec<KeyRow> = order[scanned..]
        .iter()
        .map(|&i| KeyRow {
            retailer,
            key: &keys[i],
            index: i as i64,
        })
        .collect();
    let head = format!("SELECT k.column4 AS key_index, {STOCK_COLUMNS} FROM (VALUES");
    let tail = ") AS k JOIN inventory_positions p ON p.retailer_id = k.column1 \
        AND p.location_ref = k.column2 AND p.sku_ref = k.column3";
    for chunk in ladder_chunks(&key_rows, SQLITE_CHUNKS) {
        let statement = SqliteRows {
            head: &head,
            now: None,
            rows: chunk,
            tail,
        };
        let rows = Typed::<_, StockRowSql>::new(statement).load::<StockRow>(c)?;
        for (i, stock) in rows.into_iter().map(StockRow::into_stock) {
            found[i] = Some(stock);
        }
    }
    Ok(())
}

/// Of `skus`, those with at least one position of `retailer`.
pub fn skus_with_positions(
    conn: &mut DbConnection,
    retailer: &str,
    skus: &[String],
) -> QueryResult<Vec<String>> {
    positions::table
        .filter(positions::retailer_id.eq(retailer))
        .filter(positions::sku_ref.eq_any(skus))
        .select(positions::sku_ref)
        .distinct()
        .load(conn)
}

/// A position to write: its id, key, fields, and the version (batch and item) of the write.
pub struct StockWrite<'a> {
    pub id: i64,
    pub retailer: &'a str,
    pub key: &'a PositionKey,
    pub stock: &'a Stock,
    pub version: i64,
}

impl SqliteRow for StockWrite<'_> {
    fn bind<'b>(&'b self, out: &mut AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        let s = self.stock;
        bind_values!(out,
            BigInt => &self.id,
            Text => &self.retailer,
            Text => &self.key.0,
            Text => &self.key.1,
            BigInt => &s.qty,
            Nullable<BigInt> => &s.corrected_qty,
            Nullable<BigInt> => &s.reserved_qty,
            Nullable<Text> => &s.inventory_id,
            Nullable<Text> => &s.reference,
            Text => &s.inventory_type,
            Nullable<Text> => &s.status,
            Nullable<Text> => &s.attributes,
            Nullable<Text> => &s.extra,
            BigInt => &self.version,
        )
    }
}

/// The columns a position insert writes: the time twice first (SQLite binds it as each
/// row's first two values), then what a [`NewPosition`] binds, in its order.
const POSITION_COLUMNS: &str = "created_on, updated_on, id, retailer_id, location_ref, \
    sku_ref, qty, corrected_qty, reserved_qty, inventory_id, reference, inventory_type, status, \
    attributes, extra, version, created_version";

/// A position to insert (SQLite): its write, then the version again as the one that
/// created it.
struct NewPosition<'a>(&'a StockWrite<'a>);

impl SqliteRow for NewPosition<'_> {
    fn bind<'b>(&'b self, out: &mut AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        self.0.bind(out)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&self.0.version)
    }
}

/// Inserts `rows` as new positions on SQLite, `tail` saying what a row whose id exists does.
fn write_positions_sqlite(
    c: &mut diesel::SqliteConnection,
    rows: &[StockWrite],
    now: NaiveDateTime,
    tail: &str,
) -> QueryResult<()> {
    let head = format!("INSERT INTO inventory_positions ({POSITION_COLUMNS}) VALUES");
    let rows: Vec<NewPosition> = rows.iter().map(NewPosition).collect();
    for chunk in ladder_chunks(&rows, SQLITE_CHUNKS) {
        SqliteRows {
            head: &head,
            now: Some((now, 2)),
            rows: chunk,
            tail,
        }
        .execute(c)?;
    }
    Ok(())
}

#[derive(QueryableByName)]
struct ReservedId {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// `n` ids no position has had, for positions the caller inserts in this transaction. On
/// SQLite they follow the last id given (`position_ids`); PostgreSQL draws them from the
/// sequence.
pub fn reserve_ids(conn: &mut DbConnection, n: usize) -> QueryResult<Vec<i64>> {
    match conn {
        DbConnection::Sqlite(c) => {
            let last: ReservedId =
                sql_query("UPDATE position_ids SET last_id = last_id + ? RETURNING last_id AS id")
                    .bind::<BigInt, _>(n as i64)
                    .get_result(c)?;
            Ok((last.id - n as i64 + 1..=last.id).collect())
        }
        DbConnection::Pg(c) => Ok(sql_query(
            "SELECT nextval(pg_get_serial_sequence('inventory_positions', 'id')) AS id \
             FROM generate_series(1, $1)",
        )
        .bind::<BigInt, _>(n as i64)
        .load::<ReservedId>(c)?
        .into_iter()
        .map(|r| r.id)
        .collect()),
    }
}

/// The stored fields of PostgreSQL's writes, as `UNNEST` names them, in the order
/// [`bind_stock_arrays`] binds them.
const STOCK_FIELDS: &str = "q, cq, rq, ii, rf, it, st, at, ex, v";
/// Their array parameters when they are `$6..` (the insert) or `$3..` (the update).
const STOCK_ARRAYS_FROM_6: &str = "$6::int8[], $7::int8[], $8::int8[], $9::text[], \
    $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::int8[]";
const STOCK_ARRAYS_FROM_3: &str = "$3::int8[], $4::int8[], $5::int8[], $6::text[], \
    $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::int8[]";

/// Binds the stored fields of `rows` to `query` as arrays, in [`STOCK_FIELDS`]' order.
macro_rules! bind_stock_arrays {
    ($query:expr, $rows:expr) => {{
        let rows: &[StockWrite] = $rows;
        let texts = |field: fn(&Stock) -> Option<&str>| -> Vec<Option<&str>> {
            rows.iter().map(|r| field(r.stock)).collect()
        };
        $query
            .bind::<Array<BigInt>, _>(rows.iter().map(|r| r.stock.qty).collect::<Vec<_>>())
            .bind::<Array<Nullable<BigInt>>, _>(
                rows.iter()
                    .map(|r| r.stock.corrected_qty)
                    .collect::<Vec<_>>(),
            )
            .bind::<Array<Nullable<BigInt>>, _>(
                rows.iter()
                    .map(|r| r.stock.reserved_qty)
                    .collect::<Vec<_>>(),
            )
            .bind::<Array<Nullable<Text>>, _>(texts(|s| s.inventory_id.as_deref()))
            .bind::<Array<Nullable<Text>>, _>(texts(|s| s.reference.as_deref()))
            .bind::<Array<Text>, _>(
                rows.iter()
                    .map(|r| r.stock.inventory_type.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind::<Array<Nullable<Text>>, _>(texts(|s| s.status.as_deref()))
            .bind::<Array<Nullable<Text>>, _>(texts(|s| s.attributes.as_deref()))
            .bind::<Array<Nullable<Text>>, _>(texts(|s| s.extra.as_deref()))
            .bind::<Array<BigInt>, _>(rows.iter().map(|r| r.version).collect::<Vec<_>>())
    }};
}

/// Inserts new positions under the ids [`reserve_ids`] gave.
pub fn insert_positions(
    conn: &mut DbConnection,
    rows: &[StockWrite],
    now: NaiveDateTime,
) -> QueryResult<()> {
    match conn {
        DbConnection::Sqlite(c) => write_positions_sqlite(c, rows, now, "")?,
        DbConnection::Pg(c) => {
            let query = sql_query(format!(
                "INSERT INTO inventory_positions ({POSITION_COLUMNS}) \
                 SELECT $2, $2, i, $3, l, s, q, cq, rq, ii, rf, it, st, at, ex, v, v FROM UNNEST(\
                 $1::int8[], $4::text[], $5::text[], {STOCK_ARRAYS_FROM_6}) \
                 AS t(i, l, s, {STOCK_FIELDS})"
            ))
            .bind::<Array<BigInt>, _>(rows.iter().map(|r| r.id).collect::<Vec<_>>())
            .bind::<Timestamp, _>(now)
            .bind::<Text, _>(rows.first().map_or("", |r| r.retailer))
            .bind::<Array<Text>, _>(rows.iter().map(|r| r.key.0.as_str()).collect::<Vec<_>>())
            .bind::<Array<Text>, _>(rows.iter().map(|r| r.key.1.as_str()).collect::<Vec<_>>());
            bind_stock_arrays!(query, rows).execute(c)?;
        }
    }
    Ok(())
}

/// Writes the fields of existing positions.
pub fn update_positions(
    conn: &mut DbConnection,
    rows: &[StockWrite],
    now: NaiveDateTime,
) -> QueryResult<()> {
    match conn {
        // An upsert on the key, conflicting on every row: plain `VALUES` rows, each updating
        // the row its key finds, where `UPDATE ... FROM` would copy them into a temporary
        // table first.
        DbConnection::Sqlite(c) => write_positions_sqlite(
            c,
            rows,
            now,
            " ON CONFLICT (retailer_id, sku_ref, location_ref) DO UPDATE SET qty = excluded.qty, \
             corrected_qty = excluded.corrected_qty, reserved_qty = excluded.reserved_qty, \
             inventory_id = excluded.inventory_id, reference = excluded.reference, \
             inventory_type = excluded.inventory_type, status = excluded.status, \
             attributes = excluded.attributes, extra = excluded.extra, \
             version = excluded.version, updated_on = excluded.updated_on",
        )?,
        DbConnection::Pg(c) => {
            const SET: &str = "qty = u.q, corrected_qty = u.cq, reserved_qty = u.rq, \
                inventory_id = u.ii, reference = u.rf, inventory_type = u.it, status = u.st, \
                attributes = u.at, extra = u.ex, version = u.v";
            let query = sql_query(format!(
                "UPDATE inventory_positions AS p SET {SET}, updated_on = $2 FROM UNNEST(\
                 $1::int8[], {STOCK_ARRAYS_FROM_3}) AS u(id, {STOCK_FIELDS}) WHERE p.id = u.id"
            ))
            .bind::<Array<BigInt>, _>(rows.iter().map(|r| r.id).collect::<Vec<_>>())
            .bind::<Timestamp, _>(now);
            bind_stock_arrays!(query, rows).execute(c)?;
        }
    }
    Ok(())
}

/// Filters for listing positions; `None` matches everything.
#[derive(Debug, Default, Clone)]
pub struct PositionFilter {
    pub retailer_id: Option<String>,
    pub location_ref: Option<String>,
    pub sku_ref: Option<String>,
}

macro_rules! filtered {
    ($filter:expr) => {{
        let mut query = positions::table.into_boxed();
        if let Some(v) = &$filter.retailer_id {
            query = query.filter(positions::retailer_id.eq(v.clone()));
        }
        if let Some(v) = &$filter.location_ref {
            query = query.filter(positions::location_ref.eq(v.clone()));
        }
        if let Some(v) = &$filter.sku_ref {
            query = query.filter(positions::sku_ref.eq(v.clone()));
        }
        query
    }};
}

/// One page of positions in id order, and how many match in all.
pub fn list_positions(
    conn: &mut DbConnection,
    filter: &PositionFilter,
    offset: i64,
    limit: i64,
) -> QueryResult<(Vec<Position>, i64)> {
    let total = filtered!(filter).count().get_result(conn)?;
    let page = filtered!(filter)
        .order(positions::id)
        .offset(offset)
        .limit(limit)
        .select(Position::as_select())
        .load(conn)?;
    Ok((page, total))
}

#[cfg(test)]
mod tests {
    use diesel::Connection;

    use super::*;

    fn sku(s: usize) -> String {
        format!("S-{s:03}")
    }

    fn location(l: usize) -> String {
        format!("L-{l:02}")
    }

    /// A database with the positions of `skus` x `locations` for retailer "1" (qty
    /// `s * 100 + l`) and, at the same keys, for retailer "2" (negative qty).
    fn stocked(skus: usize, locations: usize) -> (tempfile::TempDir, DbConnection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("positions.db");
        (dir, stocked_at(path.to_str().unwrap(), skus, locations))
    }

    fn stocked_at(url: &str, skus: usize, locations: usize) -> DbConnection {
        let mut conn = DbConnection::Sqlite(SqliteConnection::establish(url).unwrap());
        crate::db::run_migrations(&mut conn).unwrap();
        let keys: Vec<(PositionKey, i64)> = (0..skus)
            .flat_map(|s| {
                (0..locations).map(move |l| ((location(l), sku(s)), (s * 100 + l) as i64))
            })
            .collect();
        for (retailer, sign) in [("1", 1), ("2", -1)] {
            let stocks: Vec<Stock> = keys
                .iter()
                .map(|(_, qty)| Stock {
                    id: None,
                    qty: sign * qty,
                    corrected_qty: None,
                    reserved_qty: None,
                    inventory_id: None,
                    reference: None,
                    inventory_type: "LAST_ON_HAND".into(),
                    status: None,
                    attributes: None,
                    extra: None,
                })
                .collect();
            conn.transaction::<_, diesel::result::Error, _>(|conn| {
                let ids = reserve_ids(conn, keys.len())?;
                let rows: Vec<StockWrite> = keys
                    .iter()
                    .zip(&stocks)
                    .zip(ids)
                    .map(|(((key, _), stock), id)| StockWrite {
                        id,
                        retailer,
                        key,
                        stock,
                        version: 1,
                    })
                    .collect();
                insert_positions(conn, &rows, chrono::Utc::now().naive_utc())
            })
            .unwrap();
        }
        conn
    }

    /// Looks `keys` up for retailer "1" and checks every key that exists was found with
    /// its own quantity, and no other.
    fn assert_found(conn: &mut DbConnection, keys: &[PositionKey], skus: usize, locations: usize) {
        let found = load_positions(conn, "1", keys).unwrap();
        assert_eq!(found.len(), keys.len());
        for (i, (l, s)) in keys.iter().enumerate() {
            let (s, l): (usize, usize) = (s[2..].parse().unwrap(), l[2..].parse().unwrap());
            let expected = (s < skus && l < locations).then_some((s * 100 + l) as i64);
            assert_eq!(
                found[i].as_ref().map(|s| s.qty),
                expected,
                "key {:?}",
                keys[i]
            );
        }
    }

    #[test]
    fn a_batch_covering_its_sku_range_finds_each_position_once() {
        let (_dir, mut conn) = stocked(30, 40);
        // Every position, out of order, and keys of SKUs and locations that have none.
        let mut keys: Vec<PositionKey> = (0..32)
            .flat_map(|s| (0..41).map(move |l| (location(l), sku(s))))
            .collect();
        keys.reverse();
        keys.swap(3, 700);
        assert_found(&mut conn, &keys, 30, 40);
    }

    #[test]
    fn a_database_in_memory_finds_its_positions_key_by_key() {
        let mut conn = stocked_at(":memory:", 12, 10);
        let keys: Vec<PositionKey> = (0..14)
            .flat_map(|s| (0..11).map(move |l| (location(l), sku(s))))
            .collect();
        assert_found(&mut conn, &keys, 12, 10);
    }

    #[test]
    fn a_batch_of_one_location_among_many_finds_its_positions() {
        let (_dir, mut conn) = stocked(30, 40);
        let keys: Vec<PositionKey> = (0..35).map(|s| (location(7), sku(s))).collect();
        assert_found(&mut conn, &keys, 30, 40);
    }

    #[test]
    fn a_batch_dense_then_sparse_finds_every_position() {
        let (_dir, mut conn) = stocked(30, 40);
        let mut keys: Vec<PositionKey> = (0..13)
            .flat_map(|s| (0..40).map(move |l| (location(l), sku(s))))
            .collect();
        keys.extend((13..30).map(|s| (location(7), sku(s))));
        assert!(keys.len() > SCAN_KEYS);
        assert_found(&mut conn, &keys, 30, 40);
    }

    #[test]
    fn each_read_sees_what_was_committed_before_it() {
        let (_dir, mut conn) = stocked(20, 10);
        let keys: Vec<PositionKey> = (0..20)
            .flat_map(|s| (0..10).map(move |l| (location(l), sku(s))))
            .collect();
        assert_found(&mut conn, &keys, 20, 10);
        let DbConnection::Sqlite(c) = &mut conn else {
            unreachable!("a SQLite database")
        };
        diesel::sql_query("UPDATE inventory_positions SET qty = qty + 7 WHERE retailer_id = '1'")
            .execute(c)
            .unwrap();
        let found = load_positions(&mut conn, "1", &keys).unwrap();
        for (i, (l, s)) in keys.iter().enumerate() {
            let (s, l): (usize, usize) = (s[2..].parse().unwrap(), l[2..].parse().unwrap());
            assert_eq!(
                found[i].as_ref().map(|s| s.qty),
                Some((s * 100 + l + 7) as i64)
            );
        }
    }
}
