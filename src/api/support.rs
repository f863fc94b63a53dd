//! What every handler shares: the app state, database access off the async workers,
//! and the checks on ids and bodies.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{NaiveDateTime, SecondsFormat};
use serde::{Deserialize, Serialize};

use super::body::BodyBudget;
use super::error::ApiError;
use super::metrics::MetricsAccess;
use crate::auth::hasher::Hasher;
use crate::auth::secrets::VerifiedSecrets;
use crate::auth::TokenSettings;
use crate::db::{DbConnection, DbPool, PooledConn, WriteGate};
use crate::domain::paging::Page;
use crate::executor::{Completions, Wakeup};
use crate::notify::{Outbox, Sealer};

/// Settings of the API's own behaviour.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// How long `Idempotency-Key` answers are kept.
    pub idempotency_ttl: std::time::Duration,
    /// How long a StateSet POST waits for its batch before answering 202.
    pub stateset_wait: std::time::Duration,
    /// Batch Pre-Processing for every job that does not skip it (Fluent's
    /// `fc.enable.batch.preprocessing`); off turns it off for everyone.
    pub batch_preprocessing: bool,
    /// Most unfinished batches and queued records before POSTs get 429.
    pub queue_limits: QueueLimits,
    /// How long COMPLETE batches are kept unless their retailer says otherwise.
    pub retention: std::time::Duration,
    /// How long a batch may wait with no live executor before it is flagged stalled.
    pub stalled_after: std::time::Duration,
}

#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    pub batches_per_retailer: i64,
    pub batches: i64,
    pub records: i64,
}

impl Default for QueueLimits {
    fn default() -> Self {
        QueueLimits {
            batches_per_retailer: 1000,
            batches: 10_000,
            records: 20_000_000,
        }
    }
}

/// Refuses a new batch (429) when the queue is at one of its limits: accepted batches are
/// never dropped, so the service says "slow down" before it is overwhelmed.
pub fn check_queue(
    conn: &mut DbConnection,
    limits: &QueueLimits,
    retailer: &str,
    records: usize,
) -> Result<(), ApiError> {
    let (of_retailer, all, queued) = crate::db::batches::queue_load(conn, retailer)?;
    let full = |what: String| Err(ApiError::TooManyRequests(format!("{what}; retry later")));
    if of_retailer >= limits.batches_per_retailer {
        return full(format!(
            "retailer {retailer} has {of_retailer} unfinished batches, the most allowed"
        ));
    }
    if all >= limits.batches {
        return full(format!(
            "the queue holds {all} unfinished batches, the most allowed"
        ));
    }
    if queued + records as i64 > limits.records {
        return full(format!(
            "the queue holds {queued} records waiting; {records} more would pass the {} allowed",
            limits.records
        ));
    }
    Ok(())
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            idempotency_ttl: std::time::Duration::from_secs(24 * 3600),
            stateset_wait: std::time::Duration::from_secs(5),
            batch_preprocessing: true,
            queue_limits: QueueLimits::default(),
            retention: std::time::Duration::from_secs(7 * 24 * 3600),
            stalled_after: std::time::Duration::from_secs(120),
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    /// The API's connections; the executor has a pool of its own.
    pub pool: DbPool,
    pub tokens: TokenSettings,
    /// Checks passwords and client secrets on its own threads.
    pub hasher: Hasher,
    pub verified_secrets: Arc<VerifiedSecrets>,
    /// Request body bytes in flight, and the limits on each body.
    pub bodies: BodyBudget,
    pub settings: ApiSettings,
    /// Wakes the in-process executor when a batch is accepted.
    pub wakeup: Wakeup,
    /// Wakes requests waiting for a batch when the in-process executor completes one.
    pub completions: Completions,
    /// Turns at SQLite's write lock, shared with the executor (see `db::WriteGate`).
    pub gate: WriteGate,
    /// Where changes put their events and emails.
    pub outbox: Outbox,
    /// Seals webhook secrets.
    pub sealer: Arc<Sealer>,
    /// Webhooks to non-public addresses are allowed.
    pub allow_private_destinations: bool,
    /// Who may read `/metrics` here.
    pub metrics_access: MetricsAccess,
    /// This process's connection pools, by name, for metrics.
    pub pools: Arc<Vec<(&'static str, DbPool)>>,
}

const WAITING: u8 = 0;
const WORKING: u8 = 1;
const ABANDONED: u8 = 2;

/// Runs blocking database work on actix's blocking pool, checking out the connection there
/// too (r2d2's `get` blocks). When no working connection can be had within the pool's
/// timeout — none free, or the database silent — the request answers 503 at that deadline;
/// the work is then never started. Work that has started is waited for: its statements are
/// bounded by the connection's own timeouts, and a request must not answer 503 for a
/// change that then commits.
pub async fn with_conn<T, F>(pool: &DbPool, work: F) -> Result<T, ApiError>
where
    F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    let pool = pool.clone();
    let deadline = pool.connection_timeout();
    let state = Arc::new(AtomicU8::new(WAITING));
    let worker_state = state.clone();
    let task = blocking(move || {
        let mut conn = checkout(&pool)?;
        if worker_state
            .compare_exchange(WAITING, WORKING, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return Err(gave_up());
        }
        work(&mut conn)
    });
    tokio::pin!(task);
    match tokio::time::timeout(deadline, &mut task).await {
        Ok(result) => result,
        Err(_) => {
            match state.compare_exchange(WAITING, ABANDONED, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => Err(gave_up()),
                Err(_) => task.await,
            }
        }
    }
}

fn gave_up() -> ApiError {
    ApiError::Unavailable("no working database connection within the timeout".to_owned())
}

/// Runs blocking work (parsing a large body, database calls) off the async workers.
pub async fn blocking<T, F>(work: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    web::block(work)
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("blocking task failed: {e}")))?
}

/// A pooled connection, or 503 when none can be had in time.
pub fn checkout(pool: &DbPool) -> Result<PooledConn, ApiError> {
    pool.get().map_err(|e| ApiError::Unavailable(e.to_string()))
}

/// Ids are decimal strings as this service writes them (no sign, no leading zero);
/// anything else names nothing, so it is a 404.
pub fn parse_id(kind: &str, raw: &str) -> Result<i64, ApiError> {
    Some(raw)
        .filter(|r| r.bytes().all(|b| b.is_ascii_digit()) && !r.starts_with('0'))
        .and_then(|r| r.parse::<i64>().ok())
        .ok_or_else(|| ApiError::NotFound(format!("{kind} {raw} not found")))
}

/// Bodies are JSON. A request with no Content-Type is read as JSON (some HTTP clients
/// omit it); one that declares another type is refused with 415.
pub fn require_json(req: &HttpRequest) -> Result<(), ApiError> {
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let mime = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json")) {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(format!(
            "Content-Type must be application/json, not '{mime}'"
        )))
    }
}

/// Timestamps are RFC 3339 in UTC with milliseconds.
pub fn rfc3339(t: NaiveDateTime) -> String {
    t.and_utc().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// 405 with the `Allow` header naming the resource's methods.
pub fn method_not_allowed(
    allow: &'static str,
) -> impl Fn(HttpRequest) -> std::future::Ready<HttpResponse> + Clone {
    move |req: HttpRequest| {
        let mut response = super::error::error_response(
            actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
            [format!(
                "{} is not allowed on {}; use {allow}",
                req.method(),
                req.path()
            )],
        );
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static(allow));
        std::future::ready(response)
    }
}

pub async fn not_found(req: HttpRequest) -> HttpResponse {
    super::error::error_response(
        actix_web::http::StatusCode::NOT_FOUND,
        [format!("no route for {} {}", req.method(), req.path())],
    )
}

/// `?start=&count=` of a paged route (checked by [`Page::from_query`]).
#[derive(Deserialize)]
pub struct PageQuery {
    pub start: Option<i64>,
    pub count: Option<i64>,
}

/// A page of a listing, as every list route answers it: the page asked for, how many
/// items match, and this page's items.
#[derive(Serialize)]
pub struct Listing<T> {
    pub start: i64,
    pub count: i64,
    pub total: i64,
    pub results: Vec<T>,
}

impl<T> Listing<T> {
    /// The page asked for, with nothing in it (callers fill `total` and `results`).
    pub fn empty(page: Page) -> Self {
        Listing {
            start: page.start,
            count: page.count,
            total: 0,
            results: Vec::new(),
        }
    }
}
