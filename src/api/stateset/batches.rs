//! `POST /api/v1/inventory/batch` and `GET /api/v1/inventory/batch/{batch_id}`: StateSet's
//! batch operations, queued and applied like Fluent batches, on the same stock. The POST
//! waits a few seconds for the batch and answers 200 with its results, or 202 `processing`.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::api::body::Body;
use crate::api::error::ApiError;
use crate::api::idempotency::{create_once, request_key, Answer, Made};
use crate::api::notifications::EmailView;
use crate::api::principal::require;
use crate::api::support::{
    blocking, check_queue, parse_id, require_json, rfc3339, with_conn, AppState,
};
use crate::auth::{Permission, Principal};
use crate::db::models::{Batch, BatchResult, NewBatch, COMPLETE, PENDING, STATESET};
use crate::db::{batches, results, write_transaction, DbConnection};
use crate::domain::inventory::CODE_OK;
use crate::domain::operations::CODE_SKIPPED;
use crate::domain::stateset::{parse_batch_request, Options, MAX_ITEMS};
use crate::executor::CODE_CANCELLED;
use crate::executor::{cancel_batch as cancel, Cancelled};

/// How StateSet names a batch: `batch_<id>`.
const ID_PREFIX: &str = "batch_";
/// How often a waiting POST looks at its batch when no executor in this process says it
/// is done (the executor may run on another node).
const POLL: Duration = Duration::from_millis(25);

#[derive(Serialize)]
struct BatchView {
    batch_id: String,
    status: &'static str,
    operation: String,
    validate_only: bool,
    summary: Summary,
    results: Vec<ItemResult>,
    /// It ended because it was cancelled (its items not applied are `skipped`).
    cancelled: bool,
    notification_email: Option<String>,
    /// The summary email asked for with `options.notification_email`, and how it went.
    notification: Option<EmailView>,
    created_at: String,
    completed_at: Option<String>,
}

#[derive(Serialize, Default)]
struct Summary {
    total_items: i64,
    processed: i64,
    failed: i64,
    skipped: i64,
}

#[derive(Serialize)]
struct ItemResult {
    sku: Option<String>,
    status: &'static str,
    message: String,
    /// As stored: it was written as JSON by the executor.
    data: Option<Box<RawValue>>,
}

/// The caller's retailer: the StateSet API acts for exactly one.
pub(super) fn own_retailer(principal: &Principal) -> Result<&str, ApiError> {
    principal.retailer_id.as_deref().ok_or_else(|| {
        ApiError::Forbidden(
            "the StateSet API acts for one retailer: call it with a retailer's user or API key"
                .to_owned(),
        )
    })
}

pub async fn create_batch(
    principal: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    require(&principal, Permission::BatchCreate)?;
    let retailer = own_retailer(&principal)?.to_owned();
    require_json(&req)?;
    let key = request_key(&req, &principal, &body)?;
    let default_location = principal.default_location.clone();
    let (draft, body) = blocking(
        move || match parse_batch_request(&body, &default_location) {
            Ok(draft) => Ok((draft, body)),
            Err(errors) => Err(ApiError::BadRequest(errors)),
        },
    )
    .await?;
    let limits = state.settings.queue_limits;
    let outbox = state.outbox.clone();
    let answer = create_once(&state, key, move |conn| {
        let _body = body;
        check_queue(conn, &limits, &retailer, draft.item_count)?;
        let options = serde_json::to_string(&draft.options).map_err(anyhow::Error::from)?;
        let key_box = draft.key_box.as_ref();
        let batch = NewBatch {
            job_id: None,
            retailer_id: &retailer,
            api: STATESET,
            action: draft.operation.as_str(),
            entity_type: "INVENTORY",
            status: PENDING,
            record_count: draft.item_count as i32,
            entities: &draft.items,
            options: Some(&options),
            dry_run: i32::from(draft.options.validate_only),
            sku_min: key_box.map(|b| b.sku_min.as_str()),
            sku_max: key_box.map(|b| b.sku_max.as_str()),
            loc_min: key_box.map(|b| b.loc_min.as_str()),
            loc_max: key_box.map(|b| b.loc_max.as_str()),
            meta: None,
            preprocessing: 0,
            attempts: 0,
            created_on: Utc::now().naive_utc(),
        };
        let id = batches::accept_batch(conn, &batch)?;
        let email = draft.options.notification_email.as_deref();
        outbox.batch_accepted(conn, id, email, batch.created_on)?;
        Ok(Made {
            status: 200,
            response: None,
            batch_id: Some(id),
        })
    })
    .await?;
    if matches!(answer, Answer::Made(_)) {
        state.wakeup.notify();
        state.outbox.wake();
    }
    let id = answer
        .made()
        .batch_id
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("a StateSet answer names its batch")))?;
    let view = wait_for(&state, &principal, id).await?;
    let status = if view.status == "processing" {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok(HttpResponse::build(status).json(view))
}

pub async fn get_batch(
    principal: Principal,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    require(&principal, Permission::BatchView)?;
    own_retailer(&principal)?;
    let id = batch_id(&path)?;
    Ok(HttpResponse::Ok().json(load_view(&state, &principal, id).await?))
}

/// `POST /api/v1/inventory/batch/{batch_id}/cancel`: 200 when the batch was still queued
/// (nothing of it applied), 202 when it runs (it stops at its next safe point), 409 when done.
pub async fn cancel_batch(
    principal: Principal,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    require(&principal, Permission::BatchCreate)?;
    let retailer = own_retailer(&principal)?.to_owned();
    let id = batch_id(&path)?;
    let (gate, outbox) = (state.gate.clone(), state.outbox.clone());
    let outcome = with_conn(&state.pool, move |conn| {
        gate.api(|| {
            write_transaction(conn, |conn| {
                let batch = find_own(conn, &retailer, id)?;
                Ok::<_, ApiError>(cancel(conn, &outbox, &batch, Utc::now().naive_utc())?)
            })
        })
    })
    .await?;
    let status = match outcome {
        Cancelled::Now => StatusCode::OK,
        Cancelled::Requested => StatusCode::ACCEPTED,
        Cancelled::TooLate => {
            return Err(ApiError::Conflict(format!(
                "batch {ID_PREFIX}{id} is done: it can no longer be cancelled"
            )))
        }
    };
    state.wakeup.notify();
    state.outbox.wake();
    Ok(HttpResponse::build(status).json(load_view(&state, &principal, id).await?))
}

fn batch_id(raw: &str) -> Result<i64, ApiError> {
    parse_id("batch", raw.strip_prefix(ID_PREFIX).unwrap_or(raw))
}

/// The StateSet batch `id` of `retailer`; any other is answered as missing.
fn find_own(conn: &mut DbConnection, retailer: &str, id: i64) -> Result<Batch, ApiError> {
    batches::find_batch_by_id(conn, id)?
        .filter(|b| b.api == STATESET && b.retailer_id == retailer)
        .ok_or_else(|| ApiError::NotFound(format!("batch {ID_PREFIX}{id} not found")))
}

/// The batch's view once it is complete, or as it is when the wait runs out.
async fn wait_for(state: &AppState, principal: &Principal, id: i64) -> Result<BatchView, ApiError> {
    let deadline = tokio::time::Instant::now() + state.settings.stateset_wait;
    loop {
        let completed = state.completions.notified();
        tokio::pin!(completed);
        completed.as_mut().enable();
        let view = load_view(state, principal, id).await?;
        let now = tokio::time::Instant::now();
        if view.status != "processing" || now >= deadline {
            return Ok(view);
        }
        let _ = tokio::time::timeout(POLL.min(deadline - now), completed).await;
    }
}

async fn load_view(
    state: &AppState,
    principal: &Principal,
    id: i64,
) -> Result<BatchView, ApiError> {
    let retailer = own_retailer(principal)?.to_owned();
    let (batch, rows, email) = with_conn(&state.pool, move |conn| {
        let batch = find_own(conn, &retailer, id)?;
        let rows = if batch.status == COMPLETE {
            results::page_results(conn, id, 0, MAX_ITEMS as i64)?
        } else {
            Vec::new()
        };
        let email = EmailView::load(conn, id)?;
        Ok((batch, rows, email))
    })
    .await?;
    Ok(view(batch, rows, email))
}

fn view(batch: Batch, rows: Vec<BatchResult>, notification: Option<EmailView>) -> BatchView {
    let options: Option<Options> = batch
        .options
        .as_deref()
        .and_then(|o| serde_json::from_str(o).ok());
    let mut summary = Summary {
        total_items: batch.record_count.into(),
        ..Summary::default()
    };
    let results: Vec<ItemResult> = rows
        .into_iter()
        .map(|r| {
            let status = match r.response_code {
                CODE_OK => "success",
                CODE_SKIPPED | CODE_CANCELLED => "skipped",
                _ => "error",
            };
            match status {
                "success" => summary.processed += 1,
                "skipped" => summary.skipped += 1,
                _ => summary.failed += 1,
            }
            ItemResult {
                sku: r.entity_ref,
                status,
                message: r.message,
                data: r.data.and_then(|d| RawValue::from_string(d).ok()),
            }
        })
        .collect();
    let status = if batch.status != COMPLETE {
        "processing"
    } else if summary.failed == 0 && summary.skipped == 0 {
        "completed"
    } else if summary.processed == 0 {
        "failed"
    } else {
        "partial"
    };
    BatchView {
        batch_id: format!("{ID_PREFIX}{}", batch.id),
        status,
        operation: batch.action,
        validate_only: batch.dry_run != 0,
        cancelled: batch.cancelled != 0,
        summary,
        results,
        notification_email: options.and_then(|o| o.notification_email),
        notification,
        created_at: rfc3339(batch.created_on),
        completed_at: batch.completed_on.map(rfc3339),
    }
}
