//! `POST /oauth/token`: the password and refresh-token grants, with parameters in the
//! query string or an `application/x-www-form-urlencoded` body, as Fluent clients send them.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::error::ApiError;
use super::support::{blocking, checkout, AppState};
use crate::auth::grants::{grant, TokenRequest};
use crate::auth::GrantError;

pub async fn token(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let request = match read_request(&req, &body) {
        Ok(request) => request,
        Err(message) => return Ok(oauth_error(&GrantError::InvalidRequest(message))),
    };
    let (pool, settings) = (state.pool.clone(), state.tokens.clone());
    let outcome = blocking(move || Ok(grant(&mut *checkout(&pool)?, &request, &settings))).await?;
    match outcome {
        Ok(tokens) => Ok(HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::PRAGMA, "no-cache"))
            .json(tokens)),
        Err(GrantError::Db(e)) => Err(e.into()),
        Err(e) => Ok(oauth_error(&e)),
    }
}

/// The parameters from the form body, the query string and HTTP Basic client credentials.
fn read_request(req: &HttpRequest, body: &[u8]) -> Result<TokenRequest, String> {
    let query: TokenRequest = serde_urlencoded::from_str(req.query_string())
        .map_err(|e| format!("invalid query string: {e}"))?;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let form: TokenRequest = if body.is_empty() {
        TokenRequest::default()
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        serde_urlencoded::from_bytes(body).map_err(|e| format!("invalid form body: {e}"))?
    } else {
        return Err(
            "send the parameters as application/x-www-form-urlencoded or in the query string"
                .to_owned(),
        );
    };
    form.merge(query)?.merge(basic_client_credentials(req))
}

/// Client credentials from an `Authorization: Basic base64(client_id:client_secret)` header.
fn basic_client_credentials(req: &HttpRequest) -> TokenRequest {
    use base64::Engine;
    let credentials = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|encoded| {
            base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
        })
        .and_then(|decoded| String::from_utf8(decoded).ok());
    match credentials.as_deref().and_then(|c| c.split_once(':')) {
        Some((id, secret)) => TokenRequest {
            client_id: Some(id.to_owned()),
            client_secret: Some(secret.to_owned()),
            ..TokenRequest::default()
        },
        None => TokenRequest::default(),
    }
}

/// RFC 6749 §5.2: 400 with `error` and `error_description`.
fn oauth_error(error: &GrantError) -> HttpResponse {
    let mut response = HttpResponse::build(StatusCode::BAD_REQUEST)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({"error": error.code(), "error_description": error.to_string()}));
    if let GrantError::Locked(seconds) = error {
        if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
    response
}
