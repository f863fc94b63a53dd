//! The HTTP edge: routes, request and response shapes, and the error mapping.

mod batches;
mod error;
mod health;
mod inventory;
mod jobs;
mod oauth;
mod principal;
mod support;

use actix_web::web;

pub use error::{error_response, json_error_body, ApiError, ErrorBody, ErrorEntry};
pub use support::{not_found, AppState};

/// Mounts every route. API routes take a [`crate::auth::Principal`]: a bearer token is
/// required; `/oauth/token`, `/health` and `/openapi.yaml` are public. Each resource answers a wrong method with 405 (see
/// [`json_error_body`] for the body); unknown paths get 404 from the app's default service.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/oauth/token", "POST").route(web::post().to(oauth::token)))
        .service(resource("/api/v4.1/job", "POST").route(web::post().to(jobs::create_job)))
        .service(resource("/api/v4.1/job/{job_id}", "GET").route(web::get().to(jobs::get_job)))
        .service(
            resource("/api/v4.1/job/{job_id}/batch", "POST")
                .route(web::post().to(batches::create_batch)),
        )
        .service(
            resource("/api/v4.1/job/{job_id}/batch/{batch_id}", "GET")
                .route(web::get().to(batches::get_batch)),
        )
        .service(
            resource("/api/v4.1/inventory", "GET").route(web::get().to(inventory::list_positions)),
        )
        .service(
            resource("/health", "GET, HEAD")
                .route(web::get().to(health::health))
                .route(web::head().to(health::health)),
        )
        .service(resource("/openapi.yaml", "GET").route(web::get().to(health::openapi_yaml)));
}

fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(support::method_not_allowed(allow)))
}
