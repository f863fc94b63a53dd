//! `GET /health`: public, for load balancers.

use actix_web::{web, HttpResponse};
use diesel::connection::SimpleConnection;
use serde_json::json;

use super::error::ApiError;
use super::support::{with_conn, AppState};

/// 200 when the database answers, 503 when it does not.
pub async fn health(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    with_conn(&state.pool, |conn| {
        conn.batch_execute("SELECT 1")
            .map_err(|e| ApiError::Unavailable(e.to_string()))
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "UP" })))
}
