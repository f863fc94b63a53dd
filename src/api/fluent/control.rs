//! Batch control: cancel a batch or a whole job, and resubmit a batch's failed records.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde::Serialize;
use serde_json::value::RawValue;

use super::batches::{store_batch, BatchFacts, ViewContext};
use super::jobs::find_visible_job;
use crate::api::body::Body;
use crate::api::error::ApiError;
use crate::api::idempotency::{create_once, request_key, stored_response, Answer};
use crate::api::principal::require;
use crate::api::support::{parse_id, require_json, with_conn, AppState};
use crate::auth::{Permission, Principal};
use crate::db::models::{Batch, COMPLETE};
use crate::db::{batches, results, write_transaction};
use crate::domain::batch::parse_create_batch;
use crate::executor::{cancel_batch as cancel, Cancelled};
use crate::notify::JobClosed;

/// `POST /api/v4.1/job/{jobId}/batch/{batchId}/cancel`: 200 when the batch was PENDING
/// (nothing of it applied; it is COMPLETE and `cancelled` now), 202 when it is RUNNING (its
/// executor stops at the next safe point), 409 when it is COMPLETE.
pub async fn cancel_batch(
    principal: Principal,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    require(&principal, Permission::BatchCreate)?;
    let job_id = parse_id("job", &path.0)?;
    let batch_id = parse_id("batch", &path.1)?;
    let (gate, settings, outbox) = (
        state.gate.clone(),
        state.settings.clone(),
        state.outbox.clone(),
    );
    let (outcome, batch, ctx) = with_conn(&state.pool, move |conn| {
        gate.api(|| {
            write_transaction(conn, |conn| {
                let job = find_visible_job(conn, &principal, job_id)?;
                let batch = find(conn, job_id, batch_id)?;
                let outcome = cancel(conn, &outbox, &batch, Utc::now().naive_utc())?;
                let batch = find(conn, job_id, batch_id)?;
                let ctx = ViewContext::load(conn, &settings, &job.retailer_id)?;
                Ok::<_, ApiError>((outcome, batch, ctx))
            })
        })
    })
    .await?;
    let status = match outcome {
        Cancelled::Now => StatusCode::OK,
        Cancelled::Requested => StatusCode::ACCEPTED,
        Cancelled::TooLate => {
            return Err(ApiError::Conflict(format!(
                "batch {batch_id} is COMPLETE: it can no longer be cancelled"
            )))
        }
    };
    state.wakeup.notify();
    state.outbox.wake();
    Ok(HttpResponse::build(status).json(BatchFacts::of(&batch, &ctx)))
}

fn find(conn: &mut crate::db::DbConnection, job_id: i64, batch_id: i64) -> Result<Batch, ApiError> {
    batches::find_batch(conn, job_id, batch_id)?
        .ok_or_else(|| ApiError::NotFound(format!("batch {batch_id} not found in job {job_id}")))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JobCancelled {
    id: String,
    status: &'static str,
    /// Batches that were PENDING: nothing of them was applied.
    cancelled_batches: usize,
    /// Batches that were RUNNING: they stop at their next safe point.
    cancelling_batches: usize,
}

/// `POST /api/v4.1/job/{jobId}/cancel`: cancels every unfinished batch of the job and
/// closes it.
pub async fn cancel_job(
    principal: Principal,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    require(&principal, Permission::JobCreate)?;
    let job_id = parse_id("job", &path)?;
    let (gate, outbox) = (state.gate.clone(), state.outbox.clone());
    let answer = with_conn(&state.pool, move |conn| {
        gate.api(|| {
            write_transaction(conn, |conn| {
                let job = find_visible_job(conn, &principal, job_id)?;
                let now = Utc::now().naive_utc();
                batches::close_job(conn, job_id, now)?;
                let mut answer = JobCancelled {
                    id: job_id.to_string(),
                    status: "CLOSED",
                    cancelled_batches: 0,
                    cancelling_batches: 0,
                };
                for batch in batches::list_job_batches(conn, job_id)? {
                    match cancel(conn, &outbox, &batch, now)? {
                        Cancelled::Now => answer.cancelled_batches += 1,
                        Cancelled::Requested => answer.cancelling_batches += 1,
                        Cancelled::TooLate => {}
                    }
                }
                let closed = JobClosed {
                    job_id,
                    retailer_id: job.retailer_id,
                    cancelled_batches: answer.cancelled_batches,
                    cancelling_batches: answer.cancelling_batches,
                };
                outbox.job_closed(conn, &closed, now)?;
                Ok::<_, ApiError>(answer)
            })
        })
    })
    .await?;
    state.outbox.wake();
    Ok(HttpResponse::Ok().json(answer))
}

/// `POST /api/v4.1/job/{jobId}/batch/{batchId}/resubmit`: a new batch in the same (open)
/// job of the batch's records that were not applied — or of the corrected records the body
/// gives (`{"entities": [...]}`). Answers `{"id"}` of the new batch; `Idempotency-Key`
/// makes it safe to retry.
pub async fn resubmit_batch(
    principal: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    require(&principal, Permission::BatchCreate)?;
    if !body.is_empty() {
        require_json(&req)?;
    }
    let job_id = parse_id("job", &path.0)?;
    let batch_id = parse_id("batch", &path.1)?;
    let key = request_key(&req, &principal, &body)?;
    let (settings, outbox) = (state.settings.clone(), state.outbox.clone());
    let answer = create_once(&state, key, move |conn| {
        let job = find_visible_job(conn, &principal, job_id)?;
        let batch = find(conn, job_id, batch_id)?;
        if batch.status != COMPLETE {
            return Err(ApiError::Conflict(format!(
                "batch {batch_id} is {}: resubmit it once it is COMPLETE",
                batch.status
            )));
        }
        let entities = if body.is_empty() {
            failed_records(conn, batch_id)?
        } else {
            corrected_records(&body)?
        };
        let request =
            format!(r#"{{"action":"UPSERT","entityType":"INVENTORY","entities":{entities}}}"#);
        let mut draft = parse_create_batch(request.as_bytes()).map_err(ApiError::BadRequest)?;
        let mut meta: serde_json::Map<String, serde_json::Value> = batch
            .meta
            .as_deref()
            .and_then(|m| serde_json::from_str(m).ok())
            .unwrap_or_default();
        meta.insert("resubmittedFrom".to_owned(), batch_id.to_string().into());
        draft.meta = Some(serde_json::Value::Object(meta).to_string());
        store_batch(conn, &job, &draft, &settings, &outbox)
    })
    .await?;
    if matches!(answer, Answer::Made(_)) {
        state.wakeup.notify();
        state.outbox.wake();
    }
    Ok(stored_response(answer.made()))
}

/// The records of a batch that were not applied, as a JSON array.
fn failed_records(conn: &mut crate::db::DbConnection, batch_id: i64) -> Result<String, ApiError> {
    let failed = results::failed_seqs(conn, batch_id)?;
    if failed.is_empty() {
        return Err(ApiError::Conflict(format!(
            "batch {batch_id} has no records to resubmit: every one was applied"
        )));
    }
    let entities = batches::find_entities(conn, batch_id)?.ok_or_else(|| {
        ApiError::Conflict(format!("batch {batch_id}'s records are no longer kept"))
    })?;
    let records: Vec<&RawValue> = serde_json::from_str(&entities)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored records: {e}")))?;
    let chosen: Vec<&str> = failed
        .iter()
        .filter_map(|&seq| records.get(seq as usize).map(|r| r.get()))
        .collect();
    Ok(format!("[{}]", chosen.join(",")))
}

/// The `entities` of a resubmit body, as a JSON array.
fn corrected_records(body: &[u8]) -> Result<String, ApiError> {
    #[derive(serde::Deserialize)]
    struct Corrected<'a> {
        #[serde(borrow)]
        entities: Option<&'a RawValue>,
    }
    let wire: Corrected = crate::domain::json::parse_object(body)
        .map_err(|e| ApiError::bad_request(format!("the request body is {e}")))?;
    wire.entities
        .map(|e| e.get().to_owned())
        .ok_or_else(|| ApiError::bad_request("'entities' is required"))
}
