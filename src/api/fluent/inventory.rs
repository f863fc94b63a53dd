//! `GET /api/v4.1/inventory`: the positions the batches produced, filtered and paged.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::api::error::ApiError;
use crate::api::principal::require;
use crate::api::support::{rfc3339, with_conn, AppState, Listing};
use crate::auth::{Permission, Principal};
use crate::db::positions::{list_positions as query_positions, PositionFilter};
use crate::domain::paging::Page;

/// Unknown parameters are refused: a misspelt filter must not silently list everything.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InventoryQuery {
    retailer_id: Option<String>,
    sku_ref: Option<String>,
    location_ref: Option<String>,
    start: Option<i64>,
    count: Option<i64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PositionResponse {
    id: String,
    retailer_id: String,
    location_ref: String,
    sku_ref: String,
    qty: i64,
    corrected_qty: Option<i64>,
    reserved_qty: Option<i64>,
    inventory_id: Option<String>,
    #[serde(rename = "ref")]
    reference: Option<String>,
    #[serde(rename = "type")]
    inventory_type: String,
    status: Option<String>,
    attributes: Option<serde_json::Value>,
    created_on: String,
    updated_on: String,
    /// Every other field records carried (`uom`, `lot`, `expiry`, `effectiveFrom`, ...),
    /// as sent; those named like the fields above are not shown.
    #[serde(flatten)]
    extra: serde_json::Map<String, serde_json::Value>,
}

/// Names of [`PositionResponse`]'s own fields that records' other fields cannot take.
const OWN_FIELDS: [&str; 3] = ["id", "createdOn", "updatedOn"];

pub async fn list_positions(
    principal: Principal,
    state: web::Data<AppState>,
    query: web::Query<InventoryQuery>,
) -> Result<HttpResponse, ApiError> {
    require(&principal, Permission::InventoryView)?;
    let query = query.into_inner();
    let page = Page::from_query(query.start, query.count).map_err(ApiError::BadRequest)?;
    let Some(retailer_id) = visible_retailer(
        &principal,
        [&query.retailer_id, &query.sku_ref, &query.location_ref],
        query.retailer_id.clone(),
    ) else {
        return Ok(HttpResponse::Ok().json(Listing::<PositionResponse>::empty(page)));
    };
    let filter = PositionFilter {
        retailer_id,
        location_ref: query.location_ref,
        sku_ref: query.sku_ref,
    };
    let (positions, total) = with_conn(&state.pool, move |conn| {
        Ok(query_positions(conn, &filter, page.offset(), page.count)?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(Listing {
        total,
        results: positions
            .into_iter()
            .map(|p| PositionResponse {
                id: p.id.to_string(),
                retailer_id: p.retailer_id,
                location_ref: p.location_ref,
                sku_ref: p.sku_ref,
                qty: p.qty,
                corrected_qty: p.corrected_qty,
                reserved_qty: p.reserved_qty,
                inventory_id: p.inventory_id,
                reference: p.reference,
                inventory_type: p.inventory_type,
                status: p.status,
                attributes: p
                    .attributes
                    .as_deref()
                    .and_then(|a| serde_json::from_str(a).ok()),
                created_on: rfc3339(p.created_on),
                updated_on: rfc3339(p.updated_on),
                extra: p
                    .extra
                    .as_deref()
                    .and_then(|e| serde_json::from_str::<serde_json::Map<_, _>>(e).ok())
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|(k, _)| !OWN_FIELDS.contains(&k.as_str()))
                    .collect(),
            })
            .collect(),
        ..Listing::empty(page)
    }))
}

/// The retailer filter a listing applies, or `None` when it can match nothing: a retailer's
/// user sees only that retailer (asking for another's finds none), and stored text never
/// holds NUL (record checks refuse it; PostgreSQL cannot even compare with it).
pub(super) fn visible_retailer(
    principal: &Principal,
    filters: [&Option<String>; 3],
    asked: Option<String>,
) -> Option<Option<String>> {
    if filters
        .iter()
        .any(|f| f.as_deref().is_some_and(|f| f.contains('\0')))
    {
        return None;
    }
    match (&principal.retailer_id, asked) {
        (None, asked) => Some(asked),
        (Some(own), Some(asked)) if asked != *own => None,
        (Some(own), _) => Some(Some(own.clone())),
    }
}
