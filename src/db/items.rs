//! Item properties (StateSet `update` and `import`) per retailer and SKU, stored as JSON.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::{Map, Value};

use super::schema::inventory_items as items;
use super::DbConnection;

/// The properties of those of `skus` that have an item.
pub fn load_items(
    conn: &mut DbConnection,
    retailer: &str,
    skus: &[String],
) -> QueryResult<Vec<(String, Map<String, Value>)>> {
    let rows: Vec<(String, String)> = items::table
        .filter(items::retailer_id.eq(retailer))
        .filter(items::sku.eq_any(skus))
        .select((items::sku, items::properties))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(sku, json)| (sku, serde_json::from_str(&json).unwrap_or_default()))
        .collect())
}

/// Stores the properties of items, creating those that are new.
pub fn save_items(
    conn: &mut DbConnection,
    retailer: &str,
    rows: &[(String, Map<String, Value>)],
    now: NaiveDateTime,
) -> QueryResult<()> {
    for (sku, properties) in rows {
        let json = Value::Object(properties.clone()).to_string();
        let updated = diesel::update(items::table.find((retailer, sku)))
            .set((items::properties.eq(&json), items::updated_on.eq(now)))
            .execute(conn)?;
        if updated == 0 {
            diesel::insert_into(items::table)
                .values((
                    items::retailer_id.eq(retailer),
                    items::sku.eq(sku),
                    items::properties.eq(&json),
                    items::created_on.eq(now),
                    items::updated_on.eq(now),
                ))
                .execute(conn)?;
        }
    }
    Ok(())
}

/// One item's properties and when they last changed.
pub fn find_item(
    conn: &mut DbConnection,
    retailer: &str,
    sku: &str,
) -> QueryResult<Option<(Map<String, Value>, NaiveDateTime)>> {
    let row: Option<(String, NaiveDateTime)> = items::table
        .find((retailer, sku))
        .select((items::properties, items::updated_on))
        .first(conn)
        .optional()?;
    Ok(row.map(|(json, at)| (serde_json::from_str(&json).unwrap_or_default(), at)))
}
