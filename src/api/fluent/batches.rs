//! `POST /api/v4.1/job/{jobId}/batch` and `GET /api/v4.1/job/{jobId}/batch/{batchId}`.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::jobs::{find_visible_job, IdResponse};
use crate::api::body::Body;
use crate::api::error::ApiError;
use crate::api::idempotency::{create_once, request_key, stored_response, Answer, Made};
use crate::api::principal::require;
use crate::api::support::{blocking, parse_id, require_json, rfc3339, with_conn, AppState};
use crate::auth::{Permission, Principal};
use crate::db::models::{Batch, NewBatch, COMPLETE, FLUENT, PENDING};
use crate::db::{batches, results};
use crate::domain::batch::{parse_create_batch, preprocesses};
use crate::domain::job::{job_status, JobStatus};
use crate::domain::keys::KeyBox;
use crate::domain::paging::Page;

#[derive(Deserialize)]
pub struct PageQuery {
    start: Option<i64>,
    count: Option<i64>,
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
    #[serde(flatten)]
    pub posted_with: serde_json::Map<String, serde_json::Value>,
}

impl BatchFacts {
    pub fn of(batch: &Batch) -> BatchFacts {
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
    let preprocessing = state.settings.batch_preprocessing;
    let answer = create_once(&state, key, move |conn| {
        // The body's share of the in-flight budget is held until the batch is stored.
        let _body = body;
        let job = find_visible_job(conn, &principal, job_id)?;
        let now = Utc::now().naive_utc();
        if job_status(job.created_on, now) == JobStatus::Closed {
            return Err(ApiError::Conflict(format!(
                "job {job_id} is CLOSED: jobs close at the end of the UTC day they were created in; create a new job"
            )));
        }
        let key_box = draft.key_box(&job.retailer_id);
        let bound = |f: fn(&KeyBox) -> &String| key_box.as_ref().map(|b| f(b).as_str());
        let batch = NewBatch {
            job_id: Some(job_id),
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
            preprocessing: i32::from(preprocessing && preprocesses(job.meta.as_deref())),
            attempts: 0,
            created_on: now,
        };
        let id = batches::accept_batch(conn, &batch)?;
        let body = serde_json::to_string(&IdResponse { id: id.to_string() })
            .map_err(anyhow::Error::from)?;
        Ok(Made {
            status: 200,
            response: Some(body),
            batch_id: Some(id),
        })
    })
    .await?;
    if matches!(answer, Answer::Made(_)) {
        state.wakeup.notify();
    }
    Ok(stored_response(answer.made()))
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
    let (batch, rows) = with_conn(&state.pool, move |conn| {
        find_visible_job(conn, &principal, job_id)?;
        let batch = batches::find_batch(conn, job_id, batch_id)?.ok_or_else(|| {
            ApiError::NotFound(format!("batch {batch_id} not found in job {job_id}"))
        })?;
        // Results show once the whole batch is done, never a partly applied batch's.
        let rows = if batch.status == COMPLETE {
            results::page_results(conn, batch_id, page.offset(), page.count)?
        } else {
            Vec::new()
        };
        Ok((batch, rows))
    })
    .await?;
    Ok(HttpResponse::Ok().json(BatchResponse {
        facts: BatchFacts::of(&batch),
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
