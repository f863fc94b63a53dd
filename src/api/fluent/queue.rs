//! `GET /api/v4.1/queue`: how full the queue is now and what it did over the last hour,
//! minute by minute — what the dashboard charts. A retailer's caller sees its retailer's
//! batches only.

use actix_web::{web, HttpResponse};
use chrono::{TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::inventory::visible_retailer;
use crate::api::error::ApiError;
use crate::api::principal::require;
use crate::api::support::{rfc3339, with_conn, AppState};
use crate::auth::{Permission, Principal};
use crate::db::activity::{per_minute, queue_depth, Event, QueueDepth};
use crate::db::heartbeats;
use crate::domain::activity::{minute_of, minute_series, MinutePoint};
use crate::executor::HEARTBEAT_INTERVAL;

/// Minutes in the series: the last hour, this minute included.
pub const SERIES_MINUTES: usize = 60;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QueueQuery {
    retailer_id: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct QueueView {
    /// The retailer these numbers are of; `null`: every retailer.
    retailer_id: Option<String>,
    at: String,
    pending_batches: i64,
    running_batches: i64,
    pending_records: i64,
    running_records: i64,
    oldest_pending_on: Option<String>,
    /// Seconds the oldest PENDING batch has waited; 0 with none.
    oldest_pending_seconds: f64,
    /// Executor workers (of every node) seen alive in the last 15 seconds.
    executors_alive: i64,
    interval_seconds: u32,
    series: Vec<MinuteView>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MinuteView {
    minute: String,
    accepted_batches: i64,
    completed_batches: i64,
    records_applied: i64,
    records_rejected: i64,
    queued_batches: i64,
    queued_records: i64,
}

impl From<MinutePoint> for MinuteView {
    fn from(p: MinutePoint) -> Self {
        MinuteView {
            minute: rfc3339(p.minute),
            accepted_batches: p.accepted_batches,
            completed_batches: p.completed_batches,
            records_applied: p.records_applied,
            records_rejected: p.records_rejected,
            queued_batches: p.queued_batches,
            queued_records: p.queued_records,
        }
    }
}

pub async fn queue(
    principal: Principal,
    state: web::Data<AppState>,
    query: web::Query<QueueQuery>,
) -> Result<HttpResponse, ApiError> {
    require(&principal, Permission::BatchView)?;
    let asked = query.into_inner().retailer_id;
    let now = Utc::now().naive_utc();
    let since = minute_of(now) - TimeDelta::minutes(SERIES_MINUTES as i64 - 1);
    let visible = visible_retailer(&principal, [&asked, &None, &None], asked.clone());
    let retailer = visible.clone().flatten();
    let (depth, accepted, completed, alive) = with_conn(&state.pool, move |conn| {
        let alive_since = now - TimeDelta::from_std(HEARTBEAT_INTERVAL * 3).unwrap_or_default();
        let alive = heartbeats::count_alive_since(conn, alive_since)?;
        if visible.is_none() {
            // Another retailer's, asked by a retailer's caller: nothing it may see.
            return Ok((QueueDepth::default(), Vec::new(), Vec::new(), alive));
        }
        let r = retailer.as_deref();
        let depth = queue_depth(conn, r)?;
        let accepted = per_minute(conn, Event::Accepted, since, r)?;
        let completed = per_minute(conn, Event::Completed, since, r)?;
        Ok((depth, accepted, completed, alive))
    })
    .await?;
    let queued_now = (
        depth.pending + depth.running,
        depth.pending_records + depth.running_records,
    );
    let series = minute_series(now, SERIES_MINUTES, queued_now, &accepted, &completed);
    Ok(HttpResponse::Ok().json(QueueView {
        retailer_id: asked.or_else(|| principal.retailer_id.clone()),
        at: rfc3339(now),
        pending_batches: depth.pending,
        running_batches: depth.running,
        pending_records: depth.pending_records,
        running_records: depth.running_records,
        oldest_pending_on: depth.oldest_pending.map(rfc3339),
        oldest_pending_seconds: depth
            .oldest_pending
            .map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1000.0),
        executors_alive: alive,
        interval_seconds: 60,
        series: series.into_iter().map(MinuteView::from).collect(),
    }))
}
