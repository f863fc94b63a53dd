//! `GET /metrics`: Prometheus metrics (OpenMetrics text). On the API's listener it takes
//! `STOCKBATCH_METRICS_TOKEN` as a bearer token, or an administrator's token; on the
//! listener of `STOCKBATCH_METRICS_BIND` it is open.

use std::sync::{Arc, Mutex};

use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use chrono::{TimeDelta, Utc};
use prometheus_client::encoding::text::encode;

use super::error::ApiError;
use super::support::{with_conn, AppState};
use crate::auth::{Permission, Principal};
use crate::db::DbPool;
use crate::db::{batches, heartbeats, notifications};
use crate::executor::HEARTBEAT_INTERVAL;
use crate::metrics::{metrics, PoolLabels, StatusLabels};

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Who may read `/metrics` on the API's listener.
#[derive(Clone, Default)]
pub struct MetricsAccess {
    /// A bearer token for scrapers; administrators' tokens work too.
    pub token: Option<String>,
}

impl std::fmt::Debug for MetricsAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsAccess")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// `/metrics` on the API's listener.
pub async fn protected(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let by_token = match (&state.metrics_access.token, presented) {
        (Some(token), Some(given)) => constant_time_eq(token.as_bytes(), given.as_bytes()),
        _ => false,
    };
    if !by_token {
        let principal = <Principal as FromRequest>::extract(&req).await?;
        if principal.retailer_id.is_some() || !principal.has(Permission::JobView) {
            return Err(ApiError::Forbidden(
                "metrics are for administrators and scrapers with STOCKBATCH_METRICS_TOKEN"
                    .to_owned(),
            ));
        }
    }
    render(&state.pool, state.pools.clone()).await
}

/// What `/metrics` reads: a pool to query the queue, and every pool to report on.
#[derive(Clone)]
pub struct MetricsSource {
    pub pool: DbPool,
    pub pools: Arc<Vec<(&'static str, DbPool)>>,
}

/// `/metrics` on its own listener.
pub async fn open(source: web::Data<MetricsSource>) -> Result<HttpResponse, ApiError> {
    render(&source.pool, source.pools.clone()).await
}

async fn render(
    pool: &DbPool,
    pools: Arc<Vec<(&'static str, DbPool)>>,
) -> Result<HttpResponse, ApiError> {
    let body = with_conn(pool, move |conn| {
        let now = Utc::now().naive_utc();
        let queue = batches::queue_gauges(conn)?;
        let alive_since = now - TimeDelta::from_std(HEARTBEAT_INTERVAL * 3).unwrap_or_default();
        let alive = heartbeats::count_alive_since(conn, alive_since)?;
        let (pending_deliveries, oldest_delivery) = notifications::pending_deliveries(conn)?;
        let age = |t: Option<chrono::NaiveDateTime>| {
            t.map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1000.0)
        };
        // One scrape at a time sets the gauges and encodes them.
        static SCRAPE: Mutex<()> = Mutex::new(());
        let _turn = SCRAPE.lock().unwrap_or_else(|e| e.into_inner());
        let m = metrics();
        for (status, count) in [("PENDING", queue.pending), ("RUNNING", queue.running)] {
            m.queue_batches
                .get_or_create(&StatusLabels { status })
                .set(count);
        }
        m.queue_records.set(queue.records);
        m.oldest_pending_seconds.set(age(queue.oldest_pending));
        m.executors_alive.set(alive);
        m.pending_deliveries.set(pending_deliveries);
        m.delivery_queue_seconds.set(age(oldest_delivery));
        for (pool, db_pool) in pools.iter() {
            let s = db_pool.state();
            let idle = i64::from(s.idle_connections);
            let in_use = i64::from(s.connections) - idle;
            for (state, n) in [("in_use", in_use), ("idle", idle)] {
                m.pool_connections
                    .get_or_create(&PoolLabels { pool, state })
                    .set(n);
            }
        }
        let mut body = String::new();
        encode(&mut body, &m.registry).map_err(|e| anyhow::anyhow!("encoding metrics: {e}"))?;
        Ok(body)
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, CONTENT_TYPE))
        .body(body))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
