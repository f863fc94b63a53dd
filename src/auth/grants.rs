//! The OAuth token grants Fluent clients use: `password` and `refresh_token`.

use std::time::Duration;

use chrono::{NaiveDateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::secrets::{new_token, token_hash, verify_secret};
use crate::db::models::{NewToken, OauthClient};
use crate::db::{accounts, tokens, DbConnection};

/// The only scope there is; Fluent clients ask for it.
pub const SCOPE: &str = "api";
const BAD_CREDENTIALS: &str = "Bad credentials";

#[derive(Debug, Clone)]
pub struct TokenSettings {
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    /// Consecutive failed logins for a username before it is locked.
    pub lockout_after: i32,
    /// First lock; each further failure doubles it, up to `lockout_max`.
    pub lockout_base: Duration,
    pub lockout_max: Duration,
}

impl Default for TokenSettings {
    fn default() -> Self {
        TokenSettings {
            access_ttl: Duration::from_secs(24 * 3600),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            lockout_after: 5,
            lockout_base: Duration::from_secs(30),
            lockout_max: Duration::from_secs(15 * 60),
        }
    }
}

/// The parameters of `POST /oauth/token`, from the query string or a form body.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct TokenRequest {
    pub grant_type: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub scope: Option<String>,
    pub refresh_token: Option<String>,
}

impl TokenRequest {
    /// Combines the parameters of two places (form body, query string, HTTP Basic). A
    /// parameter may come from either; one given in both must have the same value there,
    /// or the request is ambiguous and refused (RFC 6749 §3.1: no parameter twice).
    pub fn merge(self, other: TokenRequest) -> Result<TokenRequest, String> {
        fn one(name: &str, a: Option<String>, b: Option<String>) -> Result<Option<String>, String> {
            match (a, b) {
                (Some(a), Some(b)) if a != b => {
                    Err(format!("'{name}' is given twice, with different values"))
                }
                (a, b) => Ok(a.or(b)),
            }
        }
        Ok(TokenRequest {
            grant_type: one("grant_type", self.grant_type, other.grant_type)?,
            username: one("username", self.username, other.username)?,
            password: one("password", self.password, other.password)?,
            client_id: one("client_id", self.client_id, other.client_id)?,
            client_secret: one("client_secret", self.client_secret, other.client_secret)?,
            scope: one("scope", self.scope, other.scope)?,
            refresh_token: one("refresh_token", self.refresh_token, other.refresh_token)?,
        })
    }
}

#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub scope: &'static str,
    pub refresh_token: String,
    /// Fluent's spelling. A number when the retailer id is numeric, null for administrators.
    #[serde(rename = "Retailer_id")]
    pub retailer_id: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("Bad client credentials")]
    InvalidClient,
    #[error("{0}")]
    InvalidGrant(&'static str),
    #[error("grant_type must be password or refresh_token")]
    UnsupportedGrantType,
    #[error("the only scope is '{SCOPE}'")]
    InvalidScope,
    #[error("too many failed logins; retry in {0} seconds")]
    Locked(i64),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

impl GrantError {
    /// The OAuth 2.0 error code (RFC 6749 §5.2).
    pub fn code(&self) -> &'static str {
        match self {
            GrantError::InvalidRequest(_) => "invalid_request",
            GrantError::InvalidClient => "invalid_client",
            GrantError::InvalidGrant(_) | GrantError::Locked(_) => "invalid_grant",
            GrantError::UnsupportedGrantType => "unsupported_grant_type",
            GrantError::InvalidScope => "invalid_scope",
            GrantError::Db(_) => "server_error",
        }
    }
}

/// Runs the grant `request` asks for and issues a new access and refresh token.
pub fn grant(
    conn: &mut DbConnection,
    request: &TokenRequest,
    settings: &TokenSettings,
) -> Result<TokenResponse, GrantError> {
    let grant_type = required(&request.grant_type, "grant_type")?;
    if !matches!(grant_type, "password" | "refresh_token") {
        return Err(GrantError::UnsupportedGrantType);
    }
    if request.scope.as_deref().is_some_and(|s| s != SCOPE) {
        return Err(GrantError::InvalidScope);
    }
    let client_id = required(&request.client_id, "client_id")?;
    let client_secret = required(&request.client_secret, "client_secret")?;
    let now = Utc::now().naive_utc();
    let (user_id, client) = if grant_type == "password" {
        let username = required(&request.username, "username")?;
        let password = required(&request.password, "password")?;
        let client = authenticate_client(conn, client_id, client_secret)?;
        (
            authenticate_user(conn, username, password, now, settings)?,
            client,
        )
    } else {
        let refresh = required(&request.refresh_token, "refresh_token")?;
        let client = authenticate_client(conn, client_id, client_secret)?;
        let user_id = tokens::consume_refresh_token(conn, &token_hash(refresh), client.id, now)?
            .ok_or(GrantError::InvalidGrant("Invalid refresh token"))?;
        (user_id, client)
    };
    issue(conn, user_id, &client, now, settings)
}

fn required<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, GrantError> {
    let value = value
        .as_deref()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| GrantError::InvalidRequest(format!("'{name}' is required")))?;
    // No name, secret or token holds one, and PostgreSQL text cannot even be compared with one.
    if value.contains('\0') {
        return Err(GrantError::InvalidRequest(format!(
            "'{name}' must not contain NUL characters"
        )));
    }
    Ok(value)
}

fn authenticate_client(
    conn: &mut DbConnection,
    client_id: &str,
    secret: &str,
) -> Result<OauthClient, GrantError> {
    let client = accounts::find_client(conn, client_id)?;
    let verified = verify_secret(secret, client.as_ref().map(|c| c.secret_hash.as_str()));
    client
        .filter(|c| verified && c.disabled == 0)
        .ok_or(GrantError::InvalidClient)
}

/// Checks a username and password, counting failures per username (known or not) and
/// locking it after `lockout_after` in a row, so passwords cannot be guessed at speed.
fn authenticate_user(
    conn: &mut DbConnection,
    username: &str,
    password: &str,
    now: NaiveDateTime,
    settings: &TokenSettings,
) -> Result<i64, GrantError> {
    let (failures, locked_until) =
        accounts::find_login_failures(conn, username)?.unwrap_or((0, None));
    if let Some(until) = locked_until.filter(|until| *until > now) {
        return Err(GrantError::Locked((until - now).num_seconds().max(1)));
    }
    let user = accounts::find_user(conn, username)?;
    let verified = verify_secret(password, user.as_ref().map(|u| u.password_hash.as_str()));
    match user.filter(|u| verified && u.disabled == 0) {
        Some(user) => {
            if failures > 0 {
                accounts::clear_login_failures(conn, username)?;
            }
            Ok(user.id)
        }
        None => {
            let failures = failures.saturating_add(1);
            let locked_until = lock_for(failures, settings).map(|lock| now + lock);
            accounts::save_login_failures(conn, username, failures, locked_until)?;
            if locked_until.is_some() {
                log::warn!("login locked after {failures} failures in a row");
            }
            Err(GrantError::InvalidGrant(BAD_CREDENTIALS))
        }
    }
}

/// How long a username is locked after `failures` failures in a row.
pub fn lock_for(failures: i32, settings: &TokenSettings) -> Option<TimeDelta> {
    let over = failures - settings.lockout_after;
    if over < 0 {
        return None;
    }
    let lock = settings
        .lockout_base
        .saturating_mul(1 << over.min(16))
        .min(settings.lockout_max);
    TimeDelta::from_std(lock).ok()
}

fn issue(
    conn: &mut DbConnection,
    user_id: i64,
    client: &OauthClient,
    now: NaiveDateTime,
    settings: &TokenSettings,
) -> Result<TokenResponse, GrantError> {
    let user = accounts::find_user_by_id(conn, user_id)?
        .filter(|u| u.disabled == 0)
        .ok_or(GrantError::InvalidGrant(BAD_CREDENTIALS))?;
    let (access, refresh) = (new_token(), new_token());
    let (access_hash, refresh_hash) = (token_hash(&access), token_hash(&refresh));
    let ttl = |d: Duration| TimeDelta::from_std(d).unwrap_or(TimeDelta::days(1));
    tokens::insert_tokens(
        conn,
        &[
            NewToken {
                token_hash: &access_hash,
                kind: tokens::ACCESS,
                user_id,
                client_id: client.id,
                expires_at: now + ttl(settings.access_ttl),
                created_on: now,
            },
            NewToken {
                token_hash: &refresh_hash,
                kind: tokens::REFRESH,
                user_id,
                client_id: client.id,
                expires_at: now + ttl(settings.refresh_ttl),
                created_on: now,
            },
        ],
    )?;
    let retailer_id = match user.retailer_id {
        None => serde_json::Value::Null,
        Some(id) => id
            .parse::<i64>()
            .map_or(serde_json::Value::String(id), serde_json::Value::from),
    };
    Ok(TokenResponse {
        access_token: access,
        token_type: "bearer",
        expires_in: settings.access_ttl.as_secs(),
        scope: SCOPE,
        refresh_token: refresh,
        retailer_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_double_from_the_threshold_and_are_capped() {
        let s = TokenSettings::default();
        assert_eq!(lock_for(4, &s), None);
        assert_eq!(lock_for(5, &s), Some(TimeDelta::seconds(30)));
        assert_eq!(lock_for(6, &s), Some(TimeDelta::seconds(60)));
        assert_eq!(lock_for(40, &s), Some(TimeDelta::minutes(15)));
    }

    #[test]
    fn places_combine_and_may_repeat_but_not_disagree() {
        let body = TokenRequest {
            username: Some("a".into()),
            scope: Some("api".into()),
            ..Default::default()
        };
        let query = TokenRequest {
            password: Some("p".into()),
            scope: Some("api".into()),
            ..Default::default()
        };
        let merged = body.clone().merge(query).unwrap();
        assert_eq!(
            (
                merged.username.as_deref(),
                merged.password.as_deref(),
                merged.scope.as_deref()
            ),
            (Some("a"), Some("p"), Some("api"))
        );
        let conflicting = TokenRequest {
            scope: Some("other".into()),
            ..Default::default()
        };
        assert_eq!(
            body.merge(conflicting).unwrap_err(),
            "'scope' is given twice, with different values"
        );
    }
}
