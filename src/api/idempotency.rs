//! `Idempotency-Key` (the IETF httpapi draft) on every POST that creates something, in both
//! APIs. The first request with a key stores its answer in the same transaction as what it
//! created; a retry with the same key and the same request gets that answer and creates
//! nothing — also while the first is still being processed or after a crash, since the
//! answer commits with the creation. The same key with another request is a 422. Keys are
//! scoped to the caller's retailer (administrators share one scope) and kept for
//! `STOCKBATCH_IDEMPOTENCY_TTL_SECS`.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use chrono::{NaiveDateTime, TimeDelta, Utc};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::support::{with_conn, AppState};
use crate::auth::Principal;
use crate::db::idempotency::{find_answer, save_answer, StoredAnswer};
use crate::db::{write_transaction, DbConnection};

pub const HEADER: &str = "Idempotency-Key";
const MAX_KEY_BYTES: usize = 255;
/// The scope of administrators' keys (who act for every retailer).
const ADMIN_SCOPE: &str = "*";

/// A request's key, with what identifies the request.
#[derive(Debug, Clone)]
pub struct RequestKey {
    scope: String,
    key: String,
    fingerprint: String,
}

/// The key the request sent, if any: printable ASCII, 1 to 255 characters (a quoted
/// structured-field string is accepted too).
pub fn request_key(
    req: &HttpRequest,
    principal: &Principal,
    body: &[u8],
) -> Result<Option<RequestKey>, ApiError> {
    let Some(value) = req.headers().get(HEADER) else {
        return Ok(None);
    };
    let invalid = || {
        ApiError::bad_request(format!(
            "'{HEADER}' must be 1 to {MAX_KEY_BYTES} printable ASCII characters"
        ))
    };
    let text = value.to_str().map_err(|_| invalid())?.trim();
    let key = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    if key.is_empty()
        || key.len() > MAX_KEY_BYTES
        || !key.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
    {
        return Err(invalid());
    }
    let mut digest = Sha256::new();
    digest.update(req.method().as_str());
    digest.update(b" ");
    digest.update(req.path());
    digest.update(b"\n");
    digest.update(body);
    Ok(Some(RequestKey {
        scope: principal
            .retailer_id
            .clone()
            .unwrap_or_else(|| ADMIN_SCOPE.to_owned()),
        key: key.to_owned(),
        fingerprint: format!("{:x}", digest.finalize()),
    }))
}

/// What a create made: the answer to give, and the batch when the answer is its state.
#[derive(Debug, Clone)]
pub struct Made {
    pub status: i32,
    pub response: Option<String>,
    pub batch_id: Option<i64>,
}

/// The answer: just made, or the one an earlier request with the same key got.
#[derive(Debug)]
pub enum Answer {
    Made(Made),
    Replayed(Made),
}

impl Answer {
    pub fn made(&self) -> &Made {
        match self {
            Answer::Made(m) | Answer::Replayed(m) => m,
        }
    }
}

/// Why a create's transaction rolled back.
enum Rollback {
    Failed(ApiError),
    /// Another request with the same key committed first.
    Raced,
}

impl From<DieselError> for Rollback {
    fn from(e: DieselError) -> Self {
        Rollback::Failed(e.into())
    }
}

impl From<ApiError> for Rollback {
    fn from(e: ApiError) -> Self {
        Rollback::Failed(e)
    }
}

/// Runs `create` in one transaction (through the write gate) unless an earlier request
/// with the same key was answered: then that answer comes back and nothing is created.
pub async fn create_once<F>(
    state: &AppState,
    key: Option<RequestKey>,
    create: F,
) -> Result<Answer, ApiError>
where
    F: FnOnce(&mut DbConnection) -> Result<Made, ApiError> + Send + 'static,
{
    let ttl = state.settings.idempotency_ttl;
    let gate = state.gate.clone();
    let retry_key = key.clone();
    let first = with_conn(&state.pool, move |conn| {
        let done = gate.api(|| {
            write_transaction::<_, Rollback, _>(conn, |conn| {
                if let Some(key) = &key {
                    if let Some(answer) = prior(conn, key, ttl)? {
                        return Ok(Answer::Replayed(answer));
                    }
                }
                let made = create(conn)?;
                if let Some(key) = &key {
                    match remember(conn, key, &made, ttl) {
                        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                            return Err(Rollback::Raced)
                        }
                        other => other?,
                    }
                }
                Ok(Answer::Made(made))
            })
        });
        match done {
            Ok(answer) => Ok(Some(answer)),
            Err(Rollback::Raced) => Ok(None),
            Err(Rollback::Failed(e)) => Err(e),
        }
    })
    .await?;
    if let Some(answer) = first {
        return Ok(answer);
    }
    let key = retry_key.expect("only a keyed request races");
    with_conn(&state.pool, move |conn| prior(conn, &key, ttl))
        .await?
        .map(Answer::Replayed)
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("the racing idempotency key vanished")))
}

/// An answer fixed when it was made (status and JSON body), as first given.
pub fn stored_response(made: &Made) -> HttpResponse {
    let status = StatusCode::from_u16(made.status as u16).unwrap_or(StatusCode::OK);
    HttpResponse::build(status)
        .content_type("application/json")
        .body(made.response.clone().unwrap_or_default())
}

fn since(ttl: Duration, now: NaiveDateTime) -> NaiveDateTime {
    now - TimeDelta::from_std(ttl).unwrap_or(TimeDelta::days(1))
}

/// The answer to an earlier request with `key`; 422 when that request was another one.
fn prior(
    conn: &mut DbConnection,
    key: &RequestKey,
    ttl: Duration,
) -> Result<Option<Made>, ApiError> {
    let Some(stored) = find_answer(
        conn,
        &key.scope,
        &key.key,
        since(ttl, Utc::now().naive_utc()),
    )?
    else {
        return Ok(None);
    };
    if stored.fingerprint != key.fingerprint {
        return Err(ApiError::Unprocessable(format!(
            "this {HEADER} was used with another request; use a new key for a new request"
        )));
    }
    Ok(Some(Made {
        status: stored.status,
        response: stored.response,
        batch_id: stored.batch_id,
    }))
}

fn remember(
    conn: &mut DbConnection,
    key: &RequestKey,
    made: &Made,
    ttl: Duration,
) -> Result<(), DieselError> {
    let now = Utc::now().naive_utc();
    let answer = StoredAnswer {
        fingerprint: key.fingerprint.clone(),
        status: made.status,
        response: made.response.clone(),
        batch_id: made.batch_id,
    };
    save_answer(conn, &key.scope, &key.key, &answer, since(ttl, now), now)
}
