//! `GET /api/v1/inventory/{sku}`: an item's properties and its quantity per location, for
//! the caller's retailer — the same positions Fluent batches maintain.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use serde_json::{Map, Value};

use super::batches::own_retailer;
use crate::api::error::ApiError;
use crate::api::principal::require;
use crate::api::support::{rfc3339, with_conn, AppState};
use crate::auth::{Permission, Principal};
use crate::db::items::find_item;
use crate::db::positions::{list_positions, PositionFilter};
use crate::domain::paging::MAX_COUNT;

#[derive(Serialize)]
struct ItemView {
    sku: String,
    properties: Map<String, Value>,
    total_quantity: i64,
    locations: Vec<LocationView>,
}

#[derive(Serialize)]
struct LocationView {
    location: String,
    quantity: i64,
    reserved_quantity: Option<i64>,
    updated_at: String,
}

pub async fn get_item(
    principal: Principal,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    require(&principal, Permission::InventoryView)?;
    let retailer = own_retailer(&principal)?.to_owned();
    let sku = path.into_inner();
    if sku.contains('\0') {
        return Err(ApiError::NotFound(format!("no inventory item {sku}")));
    }
    let (item, positions) = with_conn(&state.pool, {
        let sku = sku.clone();
        move |conn| {
            let item = find_item(conn, &retailer, &sku)?;
            let filter = PositionFilter {
                retailer_id: Some(retailer),
                sku_ref: Some(sku),
                location_ref: None,
            };
            let (positions, _) = list_positions(conn, &filter, 0, MAX_COUNT)?;
            Ok((item, positions))
        }
    })
    .await?;
    if item.is_none() && positions.is_empty() {
        return Err(ApiError::NotFound(format!("no inventory item {sku}")));
    }
    Ok(HttpResponse::Ok().json(ItemView {
        sku,
        properties: item.map(|(properties, _)| properties).unwrap_or_default(),
        total_quantity: positions.iter().map(|p| p.qty).sum(),
        locations: positions
            .into_iter()
            .map(|p| LocationView {
                location: p.location_ref,
                quantity: p.qty,
                reserved_quantity: p.reserved_qty,
                updated_at: rfc3339(p.updated_on),
            })
            .collect(),
    }))
}
