//! `POST /oauth/token`: the password and refresh-token grants, with parameters in the
//! query string or an `application/x-www-form-urlencoded` body, as Fluent clients send them.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use std::sync::Arc;

use chrono::Utc;

use super::body::Body;
use super::error::ApiError;
use super::support::{with_conn, AppState};
use crate::auth::grants::{
    checks, find_enabled_client, finish, parse_grant, prepare, TokenRequest,
};
use crate::auth::{GrantError, TokenResponse};
use crate::db::DbConnection;

/// Short steps, so a login never holds a database connection while it waits for a hashing
/// thread: look the client up (refusing an unknown one at once), take a place in the
/// hashing queue, count the attempt, check the secrets on the hasher, then record the
/// outcome and issue the tokens.
/// When as many logins are queued as allowed it answers 503 `temporarily_unavailable`.
pub async fn token(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Result<Body, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let body = match body {
        Ok(body) => body,
        Err(ApiError::Busy(_)) => return Ok(oauth_error(&GrantError::Busy)),
        Err(ApiError::BadRequest(m)) => {
            return Ok(oauth_error(&GrantError::InvalidRequest(m.join("; "))))
        }
        Err(e) => return Ok(oauth_error(&GrantError::InvalidRequest(e.to_string()))),
    };
    match run_grant(&state, &req, &body).await {
        Ok(tokens) => Ok(HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::PRAGMA, "no-cache"))
            .json(tokens)),
        Err(GrantError::Db(e)) => Ok(oauth_error(&match ApiError::from(e) {
            ApiError::Unavailable(_) => GrantError::Unavailable,
            other => GrantError::Internal(other.to_string()),
        })),
        Err(e) => Ok(oauth_error(&e)),
    }
}

async fn run_grant(
    state: &AppState,
    req: &HttpRequest,
    body: &[u8],
) -> Result<TokenResponse, GrantError> {
    let request = read_request(req, body).map_err(GrantError::InvalidRequest)?;
    let grant = Arc::new(parse_grant(&request)?);
    let client = {
        let grant = grant.clone();
        in_db(state, move |conn| find_enabled_client(conn, &grant)).await?
    };
    let reservation = state.hasher.try_reserve().ok_or(GrantError::Busy)?;
    let settings = state.tokens.clone();
    let now = Utc::now().naive_utc();
    let prepared = {
        let (grant, settings) = (grant.clone(), settings.clone());
        in_db(state, move |conn| {
            prepare(conn, &grant, client, now, &settings)
        })
        .await?
    };
    let passed = reservation
        .verify(checks(&grant, &prepared, &state.verified_secrets))
        .await;
    drop(reservation);
    let verified = state.verified_secrets.clone();
    in_db(state, move |conn| {
        finish(conn, &grant, &prepared, &passed, &verified, now, &settings)
    })
    .await
}

/// A grant step on a pooled connection; an unavailable database is the API's usual 503.
async fn in_db<T: Send + 'static>(
    state: &AppState,
    step: impl FnOnce(&mut DbConnection) -> Result<T, GrantError> + Send + 'static,
) -> Result<T, GrantError> {
    with_conn(&state.pool, move |conn| Ok(step(conn)))
        .await
        .map_err(|e| match e {
            ApiError::Unavailable(_) => GrantError::Unavailable,
            other => GrantError::Internal(other.to_string()),
        })?
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

/// RFC 6749 §5.2: 400 with `error` and `error_description`; 503 (with `Retry-After`)
/// when the service cannot take the login now.
fn oauth_error(error: &GrantError) -> HttpResponse {
    let status = match error {
        GrantError::Busy | GrantError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        GrantError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    if let GrantError::Internal(cause) = error {
        log::error!("500 on /oauth/token: {cause}");
    }
    let mut response = HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({"error": error.code(), "error_description": error.to_string()}));
    let retry = match error {
        GrantError::Locked(seconds) => Some(*seconds),
        GrantError::Busy | GrantError::Unavailable => Some(1),
        _ => None,
    };
    if let Some(value) = retry.and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}
