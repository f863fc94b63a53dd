//! The HTTP edge: routes, request and response shapes, and the error mapping.

mod body;
mod docs;
mod error;
mod fluent;
mod health;
pub mod http_io;
mod idempotency;
mod metrics;
mod notifications;
mod oauth;
mod principal;
mod stateset;
mod support;
mod ui;

use actix_web::web;

pub use body::{BodyBudget, BodyLimits};
pub use error::{error_response, json_error_body, ApiError, ErrorBody, ErrorEntry};
pub use metrics::{open as metrics_open, MetricsAccess, MetricsSource};
pub use support::{not_found, rfc3339, ApiSettings, AppState, QueueLimits};

/// Largest `/oauth/token` body: a handful of short form parameters.
const MAX_TOKEN_BODY_BYTES: usize = 16 * 1024;

/// Every route served, with the methods it serves (its `Allow` header). `openapi.yaml`
/// documents exactly these: `tests/contract.rs` checks both ways, and [`configure`] refuses
/// to mount a path missing here. Paths are spelt as in the OpenAPI document.
pub const ROUTES: &[(&str, &str)] = &[
    ("/oauth/token", "POST"),
    ("/api/v4.1/job", "POST"),
    ("/api/v4.1/job/{jobId}", "GET"),
    ("/api/v4.1/job/{jobId}/results", "GET"),
    ("/api/v4.1/job/{jobId}/cancel", "POST"),
    ("/api/v4.1/job/{jobId}/batch", "POST"),
    ("/api/v4.1/job/{jobId}/batch/{batchId}", "GET"),
    ("/api/v4.1/job/{jobId}/batch/{batchId}/results", "GET"),
    ("/api/v4.1/job/{jobId}/batch/{batchId}/cancel", "POST"),
    ("/api/v4.1/job/{jobId}/batch/{batchId}/resubmit", "POST"),
    ("/api/v4.1/inventory", "GET"),
    ("/api/v4.1/inventory/movements", "GET"),
    ("/api/v4.1/jobs", "GET"),
    ("/api/v4.1/queue", "GET"),
    ("/api/v1/inventory/batch", "POST"),
    ("/api/v1/inventory/batch/{batch_id}", "GET"),
    ("/api/v1/inventory/batch/{batch_id}/cancel", "POST"),
    ("/api/v1/inventory/{sku}", "GET"),
    ("/api/v4.1/webhooks", "GET, POST"),
    ("/api/v4.1/webhooks/{webhookId}", "GET, DELETE"),
    ("/api/v4.1/webhooks/{webhookId}/deliveries", "GET"),
    (
        "/api/v4.1/webhooks/{webhookId}/deliveries/{deliveryId}/replay",
        "POST",
    ),
    ("/", "GET"),
    ("/health", "GET, HEAD"),
    ("/metrics", "GET"),
    ("/openapi.yaml", "GET"),
    ("/openapi.json", "GET"),
    ("/docs", "GET"),
    ("/docs/redoc.standalone.js", "GET"),
    ("/ui", "GET"),
    ("/ui/{asset}", "GET"),
];

/// Mounts every route. API routes take a [`crate::auth::Principal`]: a bearer token is
/// required; `/oauth/token`, `/health`, the OpenAPI document, `/docs` and the dashboard's
/// page and scripts (`/ui`) are public. Each
/// resource answers a wrong method with 405 (see [`json_error_body`] for the body); unknown
/// paths get 404 from the app's default service.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/oauth/token")
            .app_data(body::MaxBody(MAX_TOKEN_BODY_BYTES))
            .route(web::post().to(oauth::token)),
    )
    .service(resource("/api/v4.1/job").route(web::post().to(fluent::jobs::create_job)))
    .service(resource("/api/v4.1/job/{jobId}").route(web::get().to(fluent::jobs::get_job)))
    .service(
        resource("/api/v4.1/job/{jobId}/results").route(web::get().to(fluent::jobs::job_results)),
    )
    .service(
        resource("/api/v4.1/job/{jobId}/cancel").route(web::post().to(fluent::control::cancel_job)),
    )
    .service(
        resource("/api/v4.1/job/{jobId}/batch")
            .route(web::post().to(fluent::batches::create_batch)),
    )
    .service(
        resource("/api/v4.1/job/{jobId}/batch/{batchId}")
            .route(web::get().to(fluent::batches::get_batch)),
    )
    .service(
        resource("/api/v4.1/job/{jobId}/batch/{batchId}/results")
            .route(web::get().to(fluent::export::export_results)),
    )
    .service(
        resource("/api/v4.1/job/{jobId}/batch/{batchId}/cancel")
            .route(web::post().to(fluent::control::cancel_batch)),
    )
    .service(
        resource("/api/v4.1/job/{jobId}/batch/{batchId}/resubmit")
            .route(web::post().to(fluent::control::resubmit_batch)),
    )
    .service(
        resource("/api/v4.1/inventory").route(web::get().to(fluent::inventory::list_positions)),
    )
    .service(
        resource("/api/v4.1/inventory/movements")
            .route(web::get().to(fluent::movements::list_movements)),
    )
    .service(resource("/api/v4.1/jobs").route(web::get().to(fluent::jobs::list_jobs)))
    .service(resource("/api/v4.1/queue").route(web::get().to(fluent::queue::queue)))
    .service(
        resource("/api/v1/inventory/batch").route(web::post().to(stateset::batches::create_batch)),
    )
    .service(
        resource("/api/v1/inventory/batch/{batch_id}")
            .route(web::get().to(stateset::batches::get_batch)),
    )
    .service(
        resource("/api/v1/inventory/batch/{batch_id}/cancel")
            .route(web::post().to(stateset::batches::cancel_batch)),
    )
    .service(resource("/api/v1/inventory/{sku}").route(web::get().to(stateset::items::get_item)))
    .service(
        resource("/api/v4.1/webhooks")
            .route(web::get().to(notifications::list))
            .route(web::post().to(notifications::create)),
    )
    .service(
        resource("/api/v4.1/webhooks/{webhookId}")
            .route(web::get().to(notifications::get))
            .route(web::delete().to(notifications::delete)),
    )
    .service(
        resource("/api/v4.1/webhooks/{webhookId}/deliveries")
            .route(web::get().to(notifications::deliveries)),
    )
    .service(
        resource("/api/v4.1/webhooks/{webhookId}/deliveries/{deliveryId}/replay")
            .route(web::post().to(notifications::replay)),
    )
    .service(
        resource("/health")
            .route(web::get().to(health::health))
            .route(web::head().to(health::health)),
    )
    .service(resource("/metrics").route(web::get().to(metrics::protected)))
    .service(resource("/").route(web::get().to(docs::index)))
    .service(resource("/openapi.yaml").route(web::get().to(docs::openapi_yaml)))
    .service(resource("/openapi.json").route(web::get().to(docs::openapi_json)))
    .service(resource("/docs").route(web::get().to(docs::page)))
    .service(resource("/docs/redoc.standalone.js").route(web::get().to(docs::redoc_script)))
    .service(resource("/ui").route(web::get().to(ui::page)))
    .service(resource("/ui/{asset}").route(web::get().to(ui::asset)));
}

/// A resource for one of [`ROUTES`], answering the methods it does not serve with 405.
fn resource(path: &'static str) -> actix_web::Resource {
    let allow = ROUTES
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, allow)| *allow)
        .unwrap_or_else(|| panic!("{path} is not listed in api::ROUTES"));
    web::resource(path).default_service(web::to(support::method_not_allowed(allow)))
}
