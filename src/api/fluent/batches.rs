//! `POST /api/v4.1/job/{jobId}/batch` and `GET /api/v4.1/job/{jobId}/batch/{batchId}`.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{NaiveDateTime, TimeDelta, Utc};
use serde::Serialize;

use super::jobs::{find_visible_job, IdResponse};
use crate::api::body::Body;
use crate::api::error::ApiError;
use crate::api::idempotency::{create_once, request_key, stored_response, Answer, Made};
use crate::api::notifications::EmailView;
use crate::api::principal::require;
use crate::api::support::{
    blocking, check_queue, parse_id, require_json, rfc3339, with_conn, ApiSettings, AppState,
    PageQuery,
};
use crate::auth::{Permission, Principal};
use crate::db::models::{Batch, Job, NewBatch, COMPLETE, FLUENT, PENDING};
use crate::db::{accounts, batches, heartbeats, results, DbConnection};
use crate::domain::batch::{parse_create_batch, preprocesses, BatchDraft};
use crate::domain::job::{job_status, notify_email, JobStatus};
use crate::domain::keys::KeyBox;
use crate::domain::paging::Page;
use crate::executor::HEARTBEAT_INTERVAL;
use crate::notify::Outbox;

/// What a batch's view needs beside the batch.
pub struct ViewContext {
    now: NaiveDateTime,
    /// An executor said it was alive lately.
    executor_alive: bool,
    stalled_after: TimeDelta,
    /// How long the retailer's COMPLETE batches are kept.
    keep: TimeDelta,
}

impl ViewContext {
    pub fn load(
        conn: &mut DbConnection,
        settings: &ApiSettings,
        retailer_id: &str,
    ) -> Result<ViewContext, ApiError> {
        let now = Utc::now().naive_utc();
        let gone_after = TimeDelta::from_std(HEARTBEAT_INTERVAL * 3).unwrap_or(TimeDelta::MAX);
        let executor_alive = heartbeats::last_beat(conn)?.is_some_and(|t| now - t < gone_after);
        let days = accounts::find_retailer(conn, retailer_id)?.and_then(|r| r.retention_days);
        let keep = days.map_or(settings.retention, |d| {
            Duration::from_secs(d as u64 * 86_400)
        });
        Ok(ViewContext {
            now,
            executor_alive,
            stalled_after: TimeDelta::from_std(settings.stalled_after).unwrap_or(TimeDelta::MAX),
            keep: TimeDelta::from_std(keep).unwrap_or(TimeDelta::MAX),
        })
    }

    /// Whether `batch` has waited past the threshold with no executor alive to run it.
    fn stalled(&self, batch: &Batch) -> bool {
        let stalled = batch.status != COMPLETE
            && !self.executor_alive
            && self.now - batch.created_on > self.stalled_after;
        if stalled {
            warn_stalled(batch.id, (self.now - batch.created_on).num_seconds());
        }
        stalled
    }
}

/// Logs a stalled batch, at most once a minute per process (views are polled).
fn warn_stalled(batch_id: i64, waited: i64) {
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = Utc::now().timestamp();
    if LAST.load(Ordering::Relaxed) + 60 <= now {
        LAST.store(now, Ordering::Relaxed);
        log::warn!(
            "batch {batch_id} has waited {waited} s and no executor is alive: is one running?"
        );
    }
}

/// What the batch, job and job-results views show of a batch: its state, progress (the
/// SDK's `processedEntities` / `totalEntities`), counts once COMPLETE, and the batch-level
/// fields it was posted with (`source`, `event`, `catalogueRef`, `conditions`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchFacts {
    pub batch_id: String,
    pub entity_type: String,
    pub status: String,
    pub created_on: String,
    pub started_on: Option<String>,
    pub completed_on: Option<String>,
    pub attempts: i32,
    pub total_entities: i32,
    pub processed_entities: i32,
    pub applied_entities: Option<i32>,
    pub rejected_entities: Option<i32>,
    pub unchanged_entities: Option<i32>,
    /// Ended COMPLETE because it was cancelled.
    pub cancelled: bool,
    /// A cancel was asked while it ran.
    pub cancel_requested: bool,
    /// Waited past `STOCKBATCH_STALLED_SECS` with no executor alive.
    pub stalled: bool,
    /// When retention will prune it, once COMPLETE.
    pub expires_on: Option<String>,
    /// The summary email the job's `meta.notify` asked for (the batch's own view only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notification: Option<EmailView>,
    #[serde(flatten)]
    pub posted_with: serde_json::Map<String, serde_json::Value>,
}

impl BatchFacts {
    pub fn of(batch: &Batch, ctx: &ViewContext) -> BatchFacts {
        BatchFacts {
            batch_id: batch.id.to_string(),
            entity_type: batch.entity_type.clone(),
            status: batch.status.clone(),
            created_on: rfc3339(batch.created_on),
            started_on: batch.started_on.map(rfc3339),
            completed_on: batch.completed_on.map(rfc3339),
            attempts: batch.attempts,
            total_entities: batch.record_count,
            processed_entities: batch.processed_count,
            applied_entities: batch.applied_count,
            rejected_entities: batch.rejected_count,
            unchanged_entities: batch.unchanged_count,
            cancelled: batch.cancelled != 0,
            cancel_requested: batch.cancel_requested != 0,
            stalled: ctx.stalled(batch),
            expires_on: (batch.status == COMPLETE).then(|| rfc3339(batch.created_on + ctx.keep)),
            notification: None,
            posted_with: batch
                .meta
                .as_deref()
                .and_then(|m| serde_json::from_str(m).ok())
                .unwrap_or_default(),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BatchResponse {
    #[serde(flatten)]
    facts: BatchFacts,
    job_id: String,
    start: i64,
    count: i64,
    total: i64,
    results: Vec<RecordResult>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RecordResult {
    entity_id: Option<String>,
    entity_ref: Option<String>,
    response_code: i32,
    message: String,
}

/// Stores the batch as `PENDING` and returns at once; the executor is woken to run it.
pub async fn create_batch(
    principal: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    require(&principal, Permission::BatchCreate)?;
    require_json(&req)?;
    let job_id = parse_id("job", &path)?;
    let key = request_key(&req, &principal, &body)?;
    // The body is checked before a connection is taken: a bad request is a 400 even while
    // the database is away.
    let (draft, body) = blocking(move || match parse_create_batch(&body) {
        Ok(draft) => Ok((draft, body)),
        Err(errors) => Err(ApiError::BadRequest(errors)),
    })
    .await?;
    let (settings, outbox) = (state.settings.clone(), state.outbox.clone());
    let answer = create_once(&state, key, move |conn| {
        // The body's share of the in-flight budget is held until the batch is stored.
        let _body = body;
        let job = find_visible_job(conn, &principal, job_id)?;
        store_batch(conn, &job, &draft, &settings, &outbox)
    })
    .await?;
    if matches!(answer, Answer::Made(_)) {
        state.wakeup.notify();
        state.outbox.wake();
    }
    Ok(stored_response(answer.made()))
}

/// Queues `draft` as a PENDING batch of `job`, which must be open and under the queue's
/// limits; answers Fluent's `{"id"}`.
pub fn store_batch(
    conn: &mut DbConnection,
    job: &Job,
    draft: &BatchDraft,
    settings: &ApiSettings,
    outbox: &Outbox,
) -> Result<Made, ApiError> {
    let now = Utc::now().naive_utc();
    if job_status(job.created_on, job.closed_on, now) == JobStatus::Closed {
        return Err(ApiError::Conflict(format!(
            "job {} is CLOSED: jobs close at the end of the UTC day they were created in, or \
             when cancelled; create a new job",
            job.id
        )));
    }
    check_queue(
        conn,
        &settings.queue_limits,
        &job.retailer_id,
        draft.record_count,
    )?;
    let key_box = draft.key_box(&job.retailer_id);
    let bound = |f: fn(&KeyBox) -> &String| key_box.as_ref().map(|b| f(b).as_str());
    let preprocessing = settings.batch_preprocessing && preprocesses(job.meta.as_deref());
    let batch = NewBatch {
        job_id: Some(job.id),
        retailer_id: &job.retailer_id,
        api: FLUENT,
        action: draft.action,
        entity_type: draft.entity_type,
        status: PENDING,
        record_count: draft.record_count as i32,
        entities: &draft.entities,
        options: None,
        dry_run: 0,
        sku_min: bound(|b| &b.sku_min),
        sku_max: bound(|b| &b.sku_max),
        loc_min: bound(|b| &b.loc_min),
        loc_max: bound(|b| &b.loc_max),
        meta: draft.meta.as_deref(),
        preprocessing: i32::from(preprocessing),
        attempts: 0,
        created_on: now,
    };
    let id = batches::accept_batch(conn, &batch)?;
    let email = notify_email(job.meta.as_deref());
    outbox.batch_accepted(conn, id, email.as_deref(), now)?;
    let body =
        serde_json::to_string(&IdResponse { id: id.to_string() }).map_err(anyhow::Error::from)?;
    Ok(Made {
        status: 200,
        response: Some(body),
        batch_id: Some(id),
    })
}

pub async fn get_batch(
    principal: Principal,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    require(&principal, Permission::BatchView)?;
    let job_id = parse_id("job", &path.0)?;
    let batch_id = parse_id("batch", &path.1)?;
    let page = Page::from_query(query.start, query.count).map_err(ApiError::BadRequest)?;
    let settings = state.settings.clone();
    let (batch, rows, ctx, email) = with_conn(&state.pool, move |conn| {
        let job = find_visible_job(conn, &principal, job_id)?;
        let batch = batches::find_batch(conn, job_id, batch_id)?.ok_or_else(|| {
            ApiError::NotFound(format!("batch {batch_id} not found in job {job_id}"))
        })?;
        // Results show once the whole batch is done, never a partly applied batch's.
        let rows = if batch.status == COMPLETE {
            results::page_results(conn, batch_id, page.offset(), page.count)?
        } else {
            Vec::new()
        };
        let ctx = ViewContext::load(conn, &settings, &job.retailer_id)?;
        let email = EmailView::load(conn, batch_id)?;
        Ok((batch, rows, ctx, email))
    })
    .await?;
    Ok(HttpResponse::Ok().json(BatchResponse {
        facts: BatchFacts {
            notification: email,
            ..BatchFacts::of(&batch, &ctx)
        },
        job_id: job_id.to_string(),
        start: page.start,
        count: page.count,
        total: batch.record_count.into(),
        results: rows
            .into_iter()
            .map(|r| RecordResult {
                entity_id: r.entity_id.map(|id| id.to_string()),
                entity_ref: r.entity_ref,
                response_code: r.response_code,
                message: r.message,
            })
            .collect(),
    }))
}
