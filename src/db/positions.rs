//! Inventory positions: the upsert the executor applies and the reads the API serves.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_query;
use diesel::sql_types::{Array, BigInt, Nullable, Text, Timestamp, Untyped};
use diesel::sqlite::{Sqlite, SqliteConnection};

use super::models::{Position, PositionWrite, UpsertedPosition};
use super::schema::inventory_positions as positions;
use super::sql::ladder_chunks;
use super::DbConnection;

/// The columns an upsert writes, in the order its values come.
pub const COLUMNS: &str = "retailer_id, location_ref, sku_ref, qty, corrected_qty, reserved_qty, \
    inventory_id, reference, inventory_type, status, attributes, version, created_version, \
    created_on, updated_on";

/// Optional fields a record leaves out keep their stored value; a write only lands over
/// an older version, so applying batches out of order still ends with the newest data.
pub const ON_CONFLICT: &str = "ON CONFLICT (retailer_id, location_ref, sku_ref) DO UPDATE SET \
    qty = excluded.qty, \
    corrected_qty = COALESCE(excluded.corrected_qty, inventory_positions.corrected_qty), \
    reserved_qty = COALESCE(excluded.reserved_qty, inventory_positions.reserved_qty), \
    inventory_id = COALESCE(excluded.inventory_id, inventory_positions.inventory_id), \
    reference = COALESCE(excluded.reference, inventory_positions.reference), \
    inventory_type = excluded.inventory_type, \
    status = COALESCE(excluded.status, inventory_positions.status), \
    attributes = COALESCE(excluded.attributes, inventory_positions.attributes), \
    version = excluded.version, updated_on = excluded.updated_on \
    WHERE inventory_positions.version < excluded.version";

/// What an upsert reports of each write that landed.
pub const RETURNING: &str = " RETURNING id, version, created_version";

/// Upserts positions whose keys are all distinct. Returns one row per write that
/// landed; a write older than the stored version returns nothing.
pub fn upsert_positions(
    conn: &mut DbConnection,
    rows: &[PositionWrite],
    now: NaiveDateTime,
) -> QueryResult<Vec<UpsertedPosition>> {
    match conn {
        DbConnection::Sqlite(c) => {
            let mut landed = Vec::with_capacity(rows.len());
            for chunk in ladder_chunks(rows, &[128, 16, 1]) {
                landed.extend(SqliteUpsert { rows: chunk, now }.load::<UpsertedPosition>(c)?);
            }
            Ok(landed)
        }
        DbConnection::Pg(c) => sql_query(format!(
            "INSERT INTO inventory_positions ({COLUMNS}) \
             SELECT r, l, s, q, cq, rq, ii, rf, it, st, at, v, v, $13, $13 FROM UNNEST(\
             $1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::int8[], $7::text[], \
             $8::text[], $9::text[], $10::text[], $11::text[], $12::int8[]) \
             AS t(r, l, s, q, cq, rq, ii, rf, it, st, at, v) {ON_CONFLICT}{RETURNING}"
        ))
        .bind::<Array<Text>, _>(rows.iter().map(|r| r.retailer_id).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(rows.iter().map(|r| r.location_ref).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(rows.iter().map(|r| r.sku_ref).collect::<Vec<_>>())
        .bind::<Array<BigInt>, _>(rows.iter().map(|r| r.qty).collect::<Vec<_>>())
        .bind::<Array<Nullable<BigInt>>, _>(
            rows.iter().map(|r| r.corrected_qty).collect::<Vec<_>>(),
        )
        .bind::<Array<Nullable<BigInt>>, _>(rows.iter().map(|r| r.reserved_qty).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(rows.iter().map(|r| r.inventory_id).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(rows.iter().map(|r| r.reference).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(rows.iter().map(|r| r.inventory_type).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(rows.iter().map(|r| r.status).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(rows.iter().map(|r| r.attributes).collect::<Vec<_>>())
        .bind::<Array<BigInt>, _>(rows.iter().map(|r| r.version).collect::<Vec<_>>())
        .bind::<Timestamp, _>(now)
        .load(c),
    }
}

/// A multi-row SQLite upsert. Unlike `sql_query`, diesel caches its prepared statement
/// (by text, which depends only on the row count). The timestamp is bound once.
struct SqliteUpsert<'a> {
    rows: &'a [PositionWrite<'a>],
    now: NaiveDateTime,
}

impl QueryId for SqliteUpsert<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for SqliteUpsert<'_> {
    type SqlType = Untyped;
}

impl RunQueryDsl<SqliteConnection> for SqliteUpsert<'_> {}

impl QueryFragment<Sqlite> for SqliteUpsert<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        out.push_sql("INSERT INTO inventory_positions (");
        out.push_sql(COLUMNS);
        out.push_sql(
            ") SELECT column1, column2, column3, column4, column5, column6, column7, column8, \
             column9, column10, column11, column12, column12, now.t, now.t FROM (SELECT ",
        );
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(" AS t) AS now, (VALUES ");
        for (i, row) in self.rows.iter().enumerate() {
            out.push_sql(if i == 0 { "(" } else { ", (" });
            out.push_bind_param::<Text, _>(&row.retailer_id)?;
            out.push_sql(", ");
            out.push_bind_param::<Text, _>(&row.location_ref)?;
            out.push_sql(", ");
            out.push_bind_param::<Text, _>(&row.sku_ref)?;
            out.push_sql(", ");
            out.push_bind_param::<BigInt, _>(&row.qty)?;
            out.push_sql(", ");
            out.push_bind_param::<Nullable<BigInt>, _>(&row.corrected_qty)?;
            out.push_sql(", ");
            out.push_bind_param::<Nullable<BigInt>, _>(&row.reserved_qty)?;
            out.push_sql(", ");
            out.push_bind_param::<Nullable<Text>, _>(&row.inventory_id)?;
            out.push_sql(", ");
            out.push_bind_param::<Nullable<Text>, _>(&row.reference)?;
            out.push_sql(", ");
            out.push_bind_param::<Text, _>(&row.inventory_type)?;
            out.push_sql(", ");
            out.push_bind_param::<Nullable<Text>, _>(&row.status)?;
            out.push_sql(", ");
            out.push_bind_param::<Nullable<Text>, _>(&row.attributes)?;
            out.push_sql(", ");
            out.push_bind_param::<BigInt, _>(&row.version)?;
            out.push_sql(")");
        }
        // `WHERE true` tells SQLite's parser the ON CONFLICT belongs to the INSERT.
        out.push_sql(") WHERE true ");
        out.push_sql(ON_CONFLICT);
        out.push_sql(RETURNING);
        Ok(())
    }
}

/// The id of the position at a key, if there is one.
pub fn find_position_id(
    conn: &mut DbConnection,
    retailer_id: &str,
    location_ref: &str,
    sku_ref: &str,
) -> QueryResult<Option<i64>> {
    positions::table
        .filter(positions::retailer_id.eq(retailer_id))
        .filter(positions::location_ref.eq(location_ref))
        .filter(positions::sku_ref.eq(sku_ref))
        .select(positions::id)
        .first(conn)
        .optional()
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
