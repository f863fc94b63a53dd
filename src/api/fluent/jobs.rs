//! `POST /api/v4.1/job`, `GET /api/v4.1/job/{jobId}` and its results, and the dashboard's
//! list of recent jobs, `GET /api/v4.1/jobs`.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::batches::{BatchFacts, ViewContext};
use super::inventory::visible_retailer;
use crate::api::body::Body;
use crate::api::error::ApiError;
use crate::api::idempotency::{create_once, request_key, stored_response, Made};
use crate::api::principal::require;
use crate::api::support::{parse_id, require_json, rfc3339, with_conn, AppState, Listing};
use crate::api::ErrorEntry;
use crate::auth::{Permission, Principal};
use crate::db::jobs::{BatchTally, JobFilter};
use crate::db::models::{Job, NewJob, COMPLETE, PENDING, RUNNING};
use crate::db::{batches, jobs, results, DbConnection};
use crate::domain::job::{closes_at, job_status, parse_create_job, JobStatus};
use crate::domain::paging::Page;

/// The answer to a create: Fluent's `{"id": "..."}`.
#[derive(Serialize)]
pub struct IdResponse {
    pub id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JobResponse {
    job_id: String,
    name: String,
    retailer_id: String,
    status: &'static str,
    meta: Option<serde_json::Value>,
    created_on: String,
    batch: Vec<BatchFacts>,
}

pub async fn create_job(
    principal: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    require(&principal, Permission::JobCreate)?;
    require_json(&req)?;
    let draft = parse_create_job(&body).map_err(ApiError::BadRequest)?;
    if !principal.sees(&draft.retailer_id) {
        return Err(ApiError::Forbidden(format!(
            "this user may not create jobs for retailer {}",
            draft.retailer_id
        )));
    }
    let key = request_key(&req, &principal, &body)?;
    let answer = create_once(&state, key, move |conn| {
        let job = NewJob {
            name: &draft.name,
            retailer_id: &draft.retailer_id,
            meta: draft.meta.as_deref(),
            created_on: Utc::now().naive_utc(),
        };
        let id = jobs::insert_job(conn, &job)?;
        let body = serde_json::to_string(&IdResponse { id: id.to_string() })
            .map_err(anyhow::Error::from)?;
        Ok(Made {
            status: 200,
            response: Some(body),
            batch_id: None,
        })
    })
    .await?;
    Ok(stored_response(answer.made()))
}

pub async fn get_job(
    principal: Principal,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    require(&principal, Permission::JobView)?;
    let job_id = parse_id("job", &path)?;
    let settings = state.settings.clone();
    let (job, batches, ctx) = with_conn(&state.pool, move |conn| {
        let job = find_visible_job(conn, &principal, job_id)?;
        let batches = batches::list_job_batches(conn, job_id)?;
        let ctx = ViewContext::load(conn, &settings, &job.retailer_id)?;
        Ok((job, batches, ctx))
    })
    .await?;
    Ok(HttpResponse::Ok().json(JobResponse {
        job_id: job.id.to_string(),
        status: job_status(job.created_on, job.closed_on, Utc::now().naive_utc()).as_str(),
        meta: job
            .meta
            .as_deref()
            .and_then(|m| serde_json::from_str(m).ok()),
        name: job.name,
        retailer_id: job.retailer_id,
        created_on: rfc3339(job.created_on),
        batch: batches.iter().map(|b| BatchFacts::of(b, &ctx)).collect(),
    }))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JobResults {
    id: String,
    status: &'static str,
    total_batches: usize,
    /// COMPLETE with every record applied (200, unchanged included).
    successful_batches: usize,
    /// COMPLETE with at least one record not applied.
    failed_batches: usize,
    pending_batches: usize,
    running_batches: usize,
    records: RecordCounts,
    results: Vec<BatchOutcome>,
}

#[derive(Serialize, Default)]
struct RecordCounts {
    /// Records in every batch of the job, COMPLETE or not.
    total: i64,
    applied: i64,
    rejected: i64,
    unchanged: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BatchOutcome {
    batch_id: String,
    status: String,
    processed_entities: i32,
    total_entities: i32,
    /// The first records not applied (at most [`MAX_ERRORS_SHOWN`]), as `{code, message}`.
    errors: Vec<ErrorEntry>,
}

/// Errors shown per batch in the job results; the batch's results have them all.
const MAX_ERRORS_SHOWN: i64 = 10;

/// `GET /api/v4.1/job/{jobId}/results`: every batch's outcome, as Fluent's SDK reads it.
pub async fn job_results(
    principal: Principal,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    require(&principal, Permission::JobView)?;
    let job_id = parse_id("job", &path)?;
    let (job, batches) = with_conn(&state.pool, move |conn| {
        let job = find_visible_job(conn, &principal, job_id)?;
        let batches = batches::list_job_batches(conn, job_id)?
            .into_iter()
            .map(|b| {
                let errors = if b.rejected_count.unwrap_or(0) > 0 {
                    results::first_errors(conn, b.id, MAX_ERRORS_SHOWN)?
                } else {
                    Vec::new()
                };
                Ok((b, errors))
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        Ok((job, batches))
    })
    .await?;
    let mut records = RecordCounts::default();
    let (mut successful, mut failed, mut pending, mut running) = (0, 0, 0, 0);
    for (b, _) in &batches {
        records.total += i64::from(b.record_count);
        records.applied += i64::from(b.applied_count.unwrap_or(0));
        records.rejected += i64::from(b.rejected_count.unwrap_or(0));
        records.unchanged += i64::from(b.unchanged_count.unwrap_or(0));
        match (b.status.as_str(), b.rejected_count.unwrap_or(0)) {
            (COMPLETE, 0) => successful += 1,
            (COMPLETE, _) => failed += 1,
            (RUNNING, _) => running += 1,
            _ => pending += 1,
        }
    }
    Ok(HttpResponse::Ok().json(JobResults {
        id: job.id.to_string(),
        status: job_status(job.created_on, job.closed_on, Utc::now().naive_utc()).as_str(),
        total_batches: batches.len(),
        successful_batches: successful,
        failed_batches: failed,
        pending_batches: pending,
        running_batches: running,
        records,
        results: batches
            .into_iter()
            .map(|(b, errors)| BatchOutcome {
                batch_id: b.id.to_string(),
                status: b.status,
                processed_entities: b.processed_count,
                total_entities: b.record_count,
                errors: errors
                    .into_iter()
                    .map(|(code, message)| ErrorEntry {
                        code: code.to_string(),
                        message,
                    })
                    .collect(),
            })
            .collect(),
    }))
}

/// The job, if it exists and belongs to a retailer the caller sees; otherwise 404, the
/// same answer whether the job is missing or another retailer's.
pub fn find_visible_job(
    conn: &mut DbConnection,
    principal: &Principal,
    job_id: i64,
) -> Result<Job, ApiError> {
    jobs::find_job(conn, job_id)?
        .filter(|job| principal.sees(&job.retailer_id))
        .ok_or_else(|| ApiError::NotFound(format!("job {job_id} not found")))
}

/// Unknown parameters are refused: a misspelt filter must not silently list everything.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobListQuery {
    retailer_id: Option<String>,
    status: Option<String>,
    start: Option<i64>,
    count: Option<i64>,
}

/// A job as the dashboard lists it: its batches and records added up.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JobSummary {
    job_id: String,
    name: String,
    retailer_id: String,
    status: &'static str,
    created_on: String,
    /// When it closed (cancelled, or the end of its UTC day); `null` while it is open.
    closed_on: Option<String>,
    batches: BatchCounts,
    records: JobRecords,
    /// Records processed of records posted, 0 to 1; 0 for a job without batches.
    progress: f64,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct BatchCounts {
    total: i64,
    pending: i64,
    running: i64,
    complete: i64,
    /// COMPLETE with at least one record not applied (cancelled ones included).
    failed: i64,
    cancelled: i64,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct JobRecords {
    total: i64,
    processed: i64,
    applied: i64,
    rejected: i64,
    unchanged: i64,
}

/// `GET /api/v4.1/jobs`: a page of jobs, newest first, each with its batches by status and
/// its records added up; filtered by `retailerId` and `status` (`OPEN`, `CLOSED`). A
/// retailer's caller sees only its retailer's jobs.
pub async fn list_jobs(
    principal: Principal,
    state: web::Data<AppState>,
    query: web::Query<JobListQuery>,
) -> Result<HttpResponse, ApiError> {
    require(&principal, Permission::JobView)?;
    let query = query.into_inner();
    let page = Page::from_query(query.start, query.count).map_err(ApiError::BadRequest)?;
    let open = match query.status.as_deref() {
        None => None,
        Some("OPEN") => Some(true),
        Some("CLOSED") => Some(false),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "'status' must be OPEN or CLOSED, not '{other}'"
            )))
        }
    };
    let Some(retailer_id) = visible_retailer(
        &principal,
        [&query.retailer_id, &None, &None],
        query.retailer_id.clone(),
    ) else {
        return Ok(HttpResponse::Ok().json(Listing::<JobSummary>::empty(page)));
    };
    let filter = JobFilter { retailer_id, open };
    let now = Utc::now().naive_utc();
    let (jobs, total, tallies) = with_conn(&state.pool, move |conn| {
        let (jobs, total) = jobs::list_jobs(conn, &filter, now, page.offset(), page.count)?;
        let ids: Vec<i64> = jobs.iter().map(|j| j.id).collect();
        let tallies = jobs::tally_job_batches(conn, &ids)?;
        Ok((jobs, total, tallies))
    })
    .await?;
    Ok(HttpResponse::Ok().json(Listing {
        total,
        results: jobs
            .into_iter()
            .map(|job| summarize(job, &tallies, now))
            .collect(),
        ..Listing::empty(page)
    }))
}

fn summarize(job: Job, tallies: &[BatchTally], now: chrono::NaiveDateTime) -> JobSummary {
    let mut batches = BatchCounts::default();
    let mut records = JobRecords::default();
    for t in tallies.iter().filter(|t| t.job_id == job.id) {
        batches.total += t.batches;
        match t.status.as_str() {
            PENDING => batches.pending += t.batches,
            RUNNING => batches.running += t.batches,
            _ => batches.complete += t.batches,
        }
        batches.failed += t.failed;
        batches.cancelled += t.cancelled;
        records.total += t.records;
        records.processed += t.processed;
        records.applied += t.applied;
        records.rejected += t.rejected;
        records.unchanged += t.unchanged;
    }
    let status = job_status(job.created_on, job.closed_on, now);
    JobSummary {
        job_id: job.id.to_string(),
        status: status.as_str(),
        created_on: rfc3339(job.created_on),
        closed_on: (status == JobStatus::Closed)
            .then(|| rfc3339(closes_at(job.created_on, job.closed_on))),
        name: job.name,
        retailer_id: job.retailer_id,
        progress: if records.total > 0 {
            (records.processed as f64 / records.total as f64).min(1.0)
        } else {
            0.0
        },
        batches,
        records,
    }
}
