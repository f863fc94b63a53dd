//! The dashboard at `/ui`: a page and its scripts, built into the binary (`assets/ui/`), that
//! log in at `/oauth/token` and read the JSON API. Nothing is loaded from elsewhere and
//! nothing needs building: the scripts are plain ES modules.

use std::sync::OnceLock;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

use super::error::ApiError;

/// The page runs its own scripts and styles only, talks to this server only, and may not be
/// framed. Charts are SVG built in the page, which `default-src 'self'` allows.
const CSP: &str = "default-src 'self'; img-src 'self' data:; object-src 'none'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: [Asset; 5] = [
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../../assets/ui/index.html"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../assets/ui/app.js"),
    },
    Asset {
        name: "charts.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../assets/ui/charts.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../assets/ui/app.css"),
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../../assets/ui/icon.svg"),
    },
];

/// Each asset's ETag: a hash of its bytes, so a new build's assets are fetched again and an
/// unchanged one answers 304.
fn etag(index: usize) -> &'static str {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    &TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let digest = Sha256::digest(a.body);
                format!("\"{}\"", crate::auth::secrets::hex(&digest[..12]))
            })
            .collect()
    })[index]
}

/// `GET /ui`: the page.
pub async fn page(req: HttpRequest) -> HttpResponse {
    serve(&req, 0)
}

/// `GET /ui/{asset}`: the page's scripts, styles and icon.
pub async fn asset(req: HttpRequest, name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    ASSETS
        .iter()
        .position(|a| a.name == name.as_str())
        .map(|i| serve(&req, i))
        .ok_or_else(|| ApiError::NotFound(format!("no dashboard asset {}", name.as_str())))
}

fn serve(req: &HttpRequest, index: usize) -> HttpResponse {
    let asset = &ASSETS[index];
    let tag = etag(index);
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let mut response = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, tag))
        // Revalidated on every load (a 304 costs a few bytes): a new server version's page
        // is never mixed with an old script from the cache.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"));
    if fresh {
        response.finish()
    } else {
        response.content_type(asset.content_type).body(asset.body)
    }
}
