//! The OpenAPI document, as YAML and JSON, and the API reference page that renders it.
//! Everything is built into the binary: the page works without internet access.

use actix_web::http::header;
use actix_web::HttpResponse;

/// The contract, as committed.
pub const OPENAPI_YAML: &str = include_str!("../../openapi.yaml");
/// The same document as JSON, converted from the YAML by `build.rs`.
pub const OPENAPI_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi.json"));
/// ReDoc's standalone bundle (MIT), from the `redoc` npm package: see `assets/redoc/`.
const REDOC_JS: &str = include_str!("../../assets/redoc/redoc.standalone.js");
const DOCS_HTML: &str = include_str!("../../assets/docs.html");
const INDEX_HTML: &str = include_str!("../../assets/index.html");

/// The page and its script load nothing from anywhere else. ReDoc styles with inline
/// `<style>`, draws some icons as `data:` images and runs its search in a `blob:` worker.
const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
     worker-src 'self' blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `GET /`: where to go from here (the dashboard, the reference, the health check).
pub async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(INDEX_HTML)
}

pub async fn openapi_yaml() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/yaml")
        .body(OPENAPI_YAML)
}

pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(OPENAPI_JSON)
}

pub async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, DOCS_CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(DOCS_HTML)
}

pub async fn redoc_script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
        .body(REDOC_JS)
}
