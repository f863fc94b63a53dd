//! `GET /api/v4.1/inventory/movements`: the ledger, oldest first, filtered and paged like
//! the positions.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::inventory::visible_retailer;
use crate::api::error::ApiError;
use crate::api::principal::require;
use crate::api::support::{rfc3339, with_conn, AppState, Listing};
use crate::auth::{Permission, Principal};
use crate::db::movements::{list_movements as query_movements, MovementFilter};
use crate::domain::paging::Page;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MovementQuery {
    retailer_id: Option<String>,
    sku_ref: Option<String>,
    location_ref: Option<String>,
    start: Option<i64>,
    count: Option<i64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MovementResponse {
    id: String,
    retailer_id: String,
    sku_ref: String,
    location_ref: String,
    operation: String,
    previous_qty: i64,
    new_qty: i64,
    delta: i64,
    reason: Option<String>,
    reference: Option<String>,
    batch_id: String,
    api: String,
    created_on: String,
}

pub async fn list_movements(
    principal: Principal,
    state: web::Data<AppState>,
    query: web::Query<MovementQuery>,
) -> Result<HttpResponse, ApiError> {
    require(&principal, Permission::InventoryView)?;
    let query = query.into_inner();
    let page = Page::from_query(query.start, query.count).map_err(ApiError::BadRequest)?;
    let Some(retailer_id) = visible_retailer(
        &principal,
        [&query.retailer_id, &query.sku_ref, &query.location_ref],
        query.retailer_id.clone(),
    ) else {
        return Ok(HttpResponse::Ok().json(Listing::<MovementResponse>::empty(page)));
    };
    let filter = MovementFilter {
        retailer_id,
        sku_ref: query.sku_ref,
        location_ref: query.location_ref,
    };
    let (rows, total) = with_conn(&state.pool, move |conn| {
        Ok(query_movements(conn, &filter, page.offset(), page.count)?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(Listing {
        total,
        results: rows
            .into_iter()
            .map(|m| MovementResponse {
                id: m.id.to_string(),
                retailer_id: m.retailer_id,
                sku_ref: m.sku_ref,
                location_ref: m.location_ref,
                operation: m.operation,
                previous_qty: m.previous_qty,
                new_qty: m.new_qty,
                delta: m.new_qty - m.previous_qty,
                reason: m.reason,
                reference: m.reference,
                batch_id: m.batch_id.to_string(),
                api: m.api,
                created_on: rfc3339(m.created_on),
            })
            .collect(),
        ..Listing::empty(page)
    }))
}
