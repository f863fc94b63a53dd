//! The ledger: one row per change to a position's quantity, written with the result of the
//! item that made it, and read oldest first.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::query_builder::AstPass;
use diesel::sql_query;
use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text, Timestamp};
use diesel::sqlite::Sqlite;

use super::schema::{inventory_movements as movements, inventory_positions as positions};
use super::sql::{bind_values, ladder_chunks, SqliteRow, SqliteRows};
use super::DbConnection;

/// One movement to write.
pub struct NewMovement<'a> {
    pub position_id: i64,
    pub batch_id: i64,
    pub item_index: i32,
    pub api: &'a str,
    pub operation: &'a str,
    pub previous_qty: i64,
    pub new_qty: i64,
    pub reason: Option<&'a str>,
    pub reference: Option<&'a str>,
}

impl SqliteRow for NewMovement<'_> {
    fn bind<'b>(&'b self, out: &mut AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        bind_values!(out,
            BigInt => &self.position_id,
            BigInt => &self.batch_id,
            Integer => &self.item_index,
            Text => &self.api,
            Text => &self.operation,
            BigInt => &self.previous_qty,
            BigInt => &self.new_qty,
            Nullable<Text> => &self.reason,
            Nullable<Text> => &self.reference,
        )
    }
}

/// The time first: SQLite binds it as each row's first value.
const COLUMNS: &str = "created_on, position_id, batch_id, item_index, api, operation, \
    previous_qty, new_qty, reason, reference";

pub fn insert_movements(
    conn: &mut DbConnection,
    rows: &[NewMovement],
    now: NaiveDateTime,
) -> QueryResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    match conn {
        DbConnection::Sqlite(c) => {
            let head = format!("INSERT INTO inventory_movements ({COLUMNS}) VALUES");
            for chunk in ladder_chunks(rows, &[256, 16, 1]) {
                SqliteRows {
                    head: &head,
                    now: Some((now, 1)),
                    rows: chunk,
                    tail: "",
                }
                .execute(c)?;
            }
        }
        DbConnection::Pg(c) => {
            sql_query(format!(
                "INSERT INTO inventory_movements ({COLUMNS}) SELECT $10, p, b, i, a, o, pq, nq, r, rf \
                 FROM UNNEST($1::int8[], $2::int8[], $3::int4[], $4::text[], $5::text[], \
                 $6::int8[], $7::int8[], $8::text[], $9::text[]) AS t(p, b, i, a, o, pq, nq, r, rf)"
            ))
            .bind::<Array<BigInt>, _>(rows.iter().map(|r| r.position_id).collect::<Vec<_>>())
            .bind::<Array<BigInt>, _>(rows.iter().map(|r| r.batch_id).collect::<Vec<_>>())
            .bind::<Array<Integer>, _>(rows.iter().map(|r| r.item_index).collect::<Vec<_>>())
            .bind::<Array<Text>, _>(rows.iter().map(|r| r.api).collect::<Vec<_>>())
            .bind::<Array<Text>, _>(rows.iter().map(|r| r.operation).collect::<Vec<_>>())
            .bind::<Array<BigInt>, _>(rows.iter().map(|r| r.previous_qty).collect::<Vec<_>>())
            .bind::<Array<BigInt>, _>(rows.iter().map(|r| r.new_qty).collect::<Vec<_>>())
            .bind::<Array<Nullable<Text>>, _>(rows.iter().map(|r| r.reason).collect::<Vec<_>>())
            .bind::<Array<Nullable<Text>>, _>(rows.iter().map(|r| r.reference).collect::<Vec<_>>())
            .bind::<Timestamp, _>(now)
            .execute(c)?;
        }
    }
    Ok(())
}

/// A movement as the ledger shows it, with its position's key.
#[derive(Queryable, Debug, Clone, PartialEq, Eq)]
pub struct MovementRow {
    pub id: i64,
    pub retailer_id: String,
    pub sku_ref: String,
    pub location_ref: String,
    pub operation: String,
    pub previous_qty: i64,
    pub new_qty: i64,
    pub reason: Option<String>,
    pub reference: Option<String>,
    pub batch_id: i64,
    pub api: String,
    pub created_on: NaiveDateTime,
}

/// Filters for the ledger; `None` matches everything.
#[derive(Debug, Default, Clone)]
pub struct MovementFilter {
    pub retailer_id: Option<String>,
    pub sku_ref: Option<String>,
    pub location_ref: Option<String>,
}

macro_rules! filtered {
    ($filter:expr) => {{
        let mut query = movements::table.inner_join(positions::table).into_boxed();
        if let Some(v) = &$filter.retailer_id {
            query = query.filter(positions::retailer_id.eq(v.clone()));
        }
        if let Some(v) = &$filter.sku_ref {
            query = query.filter(positions::sku_ref.eq(v.clone()));
        }
        if let Some(v) = &$filter.location_ref {
            query = query.filter(positions::location_ref.eq(v.clone()));
        }
        query
    }};
}

/// One page of movements, oldest first, and how many match in all.
pub fn list_movements(
    conn: &mut DbConnection,
    filter: &MovementFilter,
    offset: i64,
    limit: i64,
) -> QueryResult<(Vec<MovementRow>, i64)> {
    let total = filtered!(filter).count().get_result(conn)?;
    let page = filtered!(filter)
        .order(movements::id)
        .offset(offset)
        .limit(limit)
        .select((
            movements::id,
            positions::retailer_id,
            positions::sku_ref,
            positions::location_ref,
            movements::operation,
            movements::previous_qty,
            movements::new_qty,
            movements::reason,
            movements::reference,
            movements::batch_id,
            movements::api,
            movements::created_on,
        ))
        .load(conn)?;
    Ok((page, total))
}

/// A position's change over one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PositionChange {
    pub location_ref: String,
    pub sku_ref: String,
    /// Before the batch's first change to it, and after its last.
    pub previous_qty: i64,
    pub qty: i64,
}

/// The positions `batch_id` changed, in the order it first changed them; one it changed
/// and then put back is left out.
pub fn changes_of_batch(
    conn: &mut DbConnection,
    batch_id: i64,
) -> QueryResult<Vec<PositionChange>> {
    let rows: Vec<(i64, String, String, i64, i64)> = movements::table
        .inner_join(positions::table)
        .filter(movements::batch_id.eq(batch_id))
        .order((movements::item_index, movements::id))
        .select((
            movements::position_id,
            positions::location_ref,
            positions::sku_ref,
            movements::previous_qty,
            movements::new_qty,
        ))
        .load(conn)?;
    let mut index: std::collections::HashMap<i64, usize> = std::collections::HashMap::new();
    let mut changes: Vec<PositionChange> = Vec::new();
    for (position, location_ref, sku_ref, previous_qty, qty) in rows {
        match index.get(&position) {
            Some(&i) => changes[i].qty = qty,
            None => {
                index.insert(position, changes.len());
                changes.push(PositionChange {
                    location_ref,
                    sku_ref,
                    previous_qty,
                    qty,
                });
            }
        }
    }
    changes.retain(|c| c.previous_qty != c.qty);
    Ok(changes)
}
