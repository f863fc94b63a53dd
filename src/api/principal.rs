//! The bearer-token check every API route makes: the `Principal` extractor. The token is
//! an OAuth access token or an API key (`sbk_...`).

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use chrono::Utc;

use super::error::ApiError;
use super::support::{with_conn, AppState};
use crate::auth::permissions::parse_list;
use crate::auth::secrets::token_hash;
use crate::auth::{api_keys, Permission, Principal, DEFAULT_LOCATION};
use crate::db::models::TokenOwner;
use crate::db::tokens;

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Principal, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = bearer_token(req);
        Box::pin(async move {
            let token = token?;
            let state = state.ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no app state")))?;
            with_conn(&state.pool, move |conn| {
                if api_keys::is_api_key(&token) {
                    return Ok(api_keys::authenticate(conn, &token)?);
                }
                let owner = tokens::find_access_token_owner(
                    conn,
                    &token_hash(&token),
                    Utc::now().naive_utc(),
                )?;
                Ok(owner.map(principal_of))
            })
            .await?
            // A wrong or revoked API key answers exactly as a wrong token does.
            .ok_or_else(|| {
                ApiError::Unauthorized("the access token is invalid or has expired".to_owned())
            })
        })
    }
}

/// A token's user, or for a client's own token (client_credentials) the client, acting
/// for its retailer with its permissions.
fn principal_of(owner: TokenOwner) -> Principal {
    match owner.user_id {
        Some(user_id) => Principal {
            user_id,
            username: owner.username.unwrap_or_default(),
            retailer_id: owner.user_retailer_id,
            permissions: parse_list(owner.user_permissions.as_deref().unwrap_or(""))
                .unwrap_or_default(),
            default_location: DEFAULT_LOCATION.to_owned(),
        },
        None => Principal {
            user_id: 0,
            username: format!("client:{}", owner.client_id),
            retailer_id: owner.client_retailer_id,
            permissions: parse_list(owner.client_permissions.as_deref().unwrap_or(""))
                .unwrap_or_default(),
            default_location: DEFAULT_LOCATION.to_owned(),
        },
    }
}

fn bearer_token(req: &HttpRequest) -> Result<String, ApiError> {
    let value = req.headers().get(header::AUTHORIZATION).ok_or_else(|| {
        ApiError::Unauthorized("an Authorization: Bearer <token> header is required".to_owned())
    })?;
    let malformed =
        || ApiError::Unauthorized("the Authorization header must be 'Bearer <token>'".to_owned());
    let value = value.to_str().map_err(|_| malformed())?;
    let (scheme, token) = value.trim().split_once(' ').ok_or_else(malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.len() > 512 {
        return Err(malformed());
    }
    Ok(token.to_owned())
}

/// 403 unless the caller holds `permission`.
pub fn require(principal: &Principal, permission: Permission) -> Result<(), ApiError> {
    if principal.has(permission) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "this user lacks the {permission} permission"
        )))
    }
}
