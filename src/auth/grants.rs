//! The OAuth token grants Fluent clients use: `password`, `refresh_token`, and
//! `client_credentials` for a client bound to a retailer.

use std::time::Duration;

use chrono::{NaiveDateTime, TimeDelta};
use serde::{Deserialize, Serialize};

use super::hasher::Check;
use super::secrets::{new_token, token_hash, VerifiedSecrets};
use crate::db::models::{NewToken, OauthClient, User};
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
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
    #[error("grant_type must be password, refresh_token or client_credentials")]
    UnsupportedGrantType,
    #[error("this client is not bound to a retailer, so it cannot act for itself: use the password grant")]
    UnauthorizedClient,
    #[error("the only scope is '{SCOPE}'")]
    InvalidScope,
    #[error("too many failed logins; retry in {0} seconds")]
    Locked(i64),
    #[error("too many logins are being checked; retry shortly")]
    Busy,
    #[error("the database is unavailable; retry shortly")]
    Unavailable,
    #[error("internal server error")]
    Internal(String),
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
            GrantError::UnauthorizedClient => "unauthorized_client",
            GrantError::InvalidScope => "invalid_scope",
            GrantError::Busy | GrantError::Unavailable => "temporarily_unavailable",
            GrantError::Internal(_) | GrantError::Db(_) => "server_error",
        }
    }
}

/// The longest a token parameter may be: names are at most 255 characters; secrets and
/// tokens far shorter than this. Longer values are refused before any lookup.
const MAX_NAME_CHARS: usize = 255;
const MAX_SECRET_BYTES: usize = 1024;
const MAX_WORD_BYTES: usize = 64;

/// A token request whose parameters passed their checks.
#[derive(Debug, Clone)]
pub enum Grant {
    Password {
        client: ClientCredentials,
        username: String,
        password: String,
    },
    RefreshToken {
        client: ClientCredentials,
        refresh_token: String,
    },
    /// A client bound to a retailer, acting for itself.
    ClientCredentials { client: ClientCredentials },
}

#[derive(Debug, Clone)]
pub struct ClientCredentials {
    pub client_id: String,
    pub secret: String,
}

impl Grant {
    pub fn client(&self) -> &ClientCredentials {
        match self {
            Grant::Password { client, .. }
            | Grant::RefreshToken { client, .. }
            | Grant::ClientCredentials { client } => client,
        }
    }
}

/// Checks the grant type, scope and every parameter's presence and size.
pub fn parse_grant(request: &TokenRequest) -> Result<Grant, GrantError> {
    let grant_type = required(&request.grant_type, "grant_type", MAX_WORD_BYTES)?;
    if !matches!(
        grant_type,
        "password" | "refresh_token" | "client_credentials"
    ) {
        return Err(GrantError::UnsupportedGrantType);
    }
    if let Some(scope) = &request.scope {
        capped(scope, "scope", MAX_WORD_BYTES)?;
        if scope != SCOPE {
            return Err(GrantError::InvalidScope);
        }
    }
    let client = ClientCredentials {
        client_id: required_name(&request.client_id, "client_id")?,
        secret: required(&request.client_secret, "client_secret", MAX_SECRET_BYTES)?.to_owned(),
    };
    match grant_type {
        "password" => Ok(Grant::Password {
            client,
            username: required_name(&request.username, "username")?,
            password: required(&request.password, "password", MAX_SECRET_BYTES)?.to_owned(),
        }),
        "refresh_token" => Ok(Grant::RefreshToken {
            client,
            refresh_token: required(&request.refresh_token, "refresh_token", MAX_SECRET_BYTES)?
                .to_owned(),
        }),
        "client_credentials" => Ok(Grant::ClientCredentials { client }),
        _ => Err(GrantError::UnsupportedGrantType),
    }
}

fn required<'a>(value: &'a Option<String>, name: &str, max: usize) -> Result<&'a str, GrantError> {
    let value = value
        .as_deref()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| GrantError::InvalidRequest(format!("'{name}' is required")))?;
    capped(value, name, max)
}

fn required_name(value: &Option<String>, name: &str) -> Result<String, GrantError> {
    let value = required(value, name, MAX_NAME_CHARS * 4)?;
    if value.chars().count() > MAX_NAME_CHARS {
        return Err(GrantError::InvalidRequest(format!(
            "'{name}' must be at most {MAX_NAME_CHARS} characters"
        )));
    }
    Ok(value.to_owned())
}

fn capped<'a>(value: &'a str, name: &str, max_bytes: usize) -> Result<&'a str, GrantError> {
    if value.len() > max_bytes {
        return Err(GrantError::InvalidRequest(format!(
            "'{name}' must be at most {max_bytes} bytes"
        )));
    }
    // No name, secret or token holds one, and PostgreSQL text cannot even be compared with one.
    if value.contains('\0') {
        return Err(GrantError::InvalidRequest(format!(
            "'{name}' must not contain NUL characters"
        )));
    }
    Ok(value)
}

/// What a grant found in the database before any secret is checked.
#[derive(Debug)]
pub struct Prepared {
    pub client: OauthClient,
    /// Password grant: the user, if the username exists.
    pub user: Option<User>,
    /// Password grant: the number of this attempt in the username's run of failures.
    pub attempt: Option<i32>,
}

/// First step of a grant: the client must exist and be enabled, or the request is refused
/// before any hashing. Client ids are identifiers, not secrets (RFC 6749 §2.2): that an
/// unknown one is refused sooner than a wrong secret reveals nothing to protect.
pub fn find_enabled_client(
    conn: &mut DbConnection,
    grant: &Grant,
) -> Result<OauthClient, GrantError> {
    let client = accounts::find_client(conn, &grant.client().client_id)?
        .filter(|c| c.disabled == 0)
        .ok_or(GrantError::InvalidClient)?;
    if matches!(grant, Grant::ClientCredentials { .. }) && client.retailer_id.is_none() {
        return Err(GrantError::UnauthorizedClient);
    }
    Ok(client)
}

/// Second step, once the login has a place in the hashing queue: a password grant counts
/// its attempt for the username (known or not) atomically, before the password is checked,
/// so no concurrency lets more than `lockout_after` checks through before the lock.
pub fn prepare(
    conn: &mut DbConnection,
    grant: &Grant,
    client: OauthClient,
    now: NaiveDateTime,
    settings: &TokenSettings,
) -> Result<Prepared, GrantError> {
    let Grant::Password { username, .. } = grant else {
        return Ok(Prepared {
            client,
            user: None,
            attempt: None,
        });
    };
    let provisional_lock = now + to_delta(settings.lockout_base);
    match accounts::reserve_login_attempt(
        conn,
        username,
        settings.lockout_after,
        now,
        provisional_lock,
    )? {
        Ok(attempt) => Ok(Prepared {
            client,
            user: accounts::find_user(conn, username)?,
            attempt: Some(attempt),
        }),
        Err(until) => {
            let seconds = until.map_or(1, |until| (until - now).num_seconds().max(1));
            Err(GrantError::Locked(seconds))
        }
    }
}

/// The secrets to check for a grant, in order: the client's secret (unless it was verified
/// before against the same stored hash), then for a password grant the password — against
/// a dummy hash when the user is unknown, so unknown and known users take as long.
pub fn checks(grant: &Grant, prepared: &Prepared, verified: &VerifiedSecrets) -> Vec<Check> {
    let client = grant.client();
    let mut checks = Vec::new();
    if !verified.contains(
        prepared.client.id,
        &prepared.client.secret_hash,
        &client.secret,
    ) {
        checks.push(Check {
            secret: client.secret.clone(),
            stored: Some(prepared.client.secret_hash.clone()),
        });
    }
    if let Grant::Password { password, .. } = grant {
        checks.push(Check {
            secret: password.clone(),
            stored: prepared.user.as_ref().map(|u| u.password_hash.clone()),
        });
    }
    checks
}

/// Last step: records the login's outcome and issues tokens. `passed` is the outcome of
/// [`checks`], in order.
pub fn finish(
    conn: &mut DbConnection,
    grant: &Grant,
    prepared: &Prepared,
    passed: &[bool],
    verified: &VerifiedSecrets,
    now: NaiveDateTime,
    settings: &TokenSettings,
) -> Result<TokenResponse, GrantError> {
    let client_checked = passed.len() > usize::from(matches!(grant, Grant::Password { .. }));
    let client_ok = !client_checked || passed[0];
    let user_id = match grant {
        Grant::Password { username, .. } => {
            let attempt = prepared.attempt.unwrap_or(settings.lockout_after);
            if !client_ok {
                // The password was not checked: this attempt does not count against the user.
                accounts::release_login_attempt(conn, username, settings.lockout_after)?;
                return Err(GrantError::InvalidClient);
            }
            let password_ok = passed.last().copied().unwrap_or(false);
            match prepared
                .user
                .as_ref()
                .filter(|u| password_ok && u.disabled == 0)
            {
                Some(user) => {
                    accounts::clear_login_failures(conn, username)?;
                    Some(user.id)
                }
                None => {
                    let m = crate::metrics::metrics();
                    m.login_failures.inc();
                    if let Some(lock) = lock_for(attempt, settings) {
                        accounts::lock_login(conn, username, now + lock, now)?;
                        m.login_lockouts.inc();
                        log::warn!("login locked after {attempt} failures in a row");
                    }
                    return Err(GrantError::InvalidGrant(BAD_CREDENTIALS));
                }
            }
        }
        Grant::RefreshToken { refresh_token, .. } => {
            if !client_ok {
                return Err(GrantError::InvalidClient);
            }
            let user_id = tokens::consume_refresh_token(
                conn,
                &token_hash(refresh_token),
                prepared.client.id,
                now,
            )?
            .ok_or(GrantError::InvalidGrant("Invalid refresh token"))?;
            Some(user_id)
        }
        Grant::ClientCredentials { .. } => {
            if !client_ok {
                return Err(GrantError::InvalidClient);
            }
            None
        }
    };
    if client_checked {
        let client = grant.client();
        verified.insert(
            prepared.client.id,
            &prepared.client.secret_hash,
            &client.secret,
        );
    }
    issue(conn, user_id, &prepared.client, now, settings)
}

fn to_delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::days(1))
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

/// Issues an access token, and for a user a refresh token (RFC 6749 §4.4.3: a client acting
/// for itself gets none; it asks again with its credentials).
fn issue(
    conn: &mut DbConnection,
    user_id: Option<i64>,
    client: &OauthClient,
    now: NaiveDateTime,
    settings: &TokenSettings,
) -> Result<TokenResponse, GrantError> {
    let retailer = match user_id {
        Some(id) => {
            accounts::find_user_by_id(conn, id)?
                .filter(|u| u.disabled == 0)
                .ok_or(GrantError::InvalidGrant(BAD_CREDENTIALS))?
                .retailer_id
        }
        None => client.retailer_id.clone(),
    };
    let access = new_token();
    let refresh = user_id.map(|_| new_token());
    let (access_hash, refresh_hash) = (token_hash(&access), refresh.as_deref().map(token_hash));
    let mut new = vec![NewToken {
        token_hash: &access_hash,
        kind: tokens::ACCESS,
        user_id,
        client_id: client.id,
        expires_at: now + to_delta(settings.access_ttl),
        created_on: now,
    }];
    if let Some(hash) = &refresh_hash {
        new.push(NewToken {
            token_hash: hash,
            kind: tokens::REFRESH,
            user_id,
            client_id: client.id,
            expires_at: now + to_delta(settings.refresh_ttl),
            created_on: now,
        });
    }
    tokens::insert_tokens(conn, &new)?;
    let retailer_id = match retailer {
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
