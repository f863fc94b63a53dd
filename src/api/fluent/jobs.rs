//! `POST /api/v4.1/job` and `GET /api/v4.1/job/{jobId}`.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde::Serialize;

use crate::api::body::Body;
use crate::api::error::ApiError;
use crate::api::idempotency::{create_once, request_key, stored_response, Made};
use crate::api::principal::require;
use crate::api::support::{parse_id, require_json, rfc3339, with_conn, AppState};
use crate::auth::{Permission, Principal};
use crate::db::models::{Job, NewJob};
use crate::db::{batches, jobs, DbConnection};
use crate::domain::job::{job_status, parse_create_job};

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
    batch: Vec<JobBatch>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JobBatch {
    batch_id: String,
    entity_type: String,
    status: String,
    created_on: String,
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
    let (job, batches) = with_conn(&state.pool, move |conn| {
        let job = find_visible_job(conn, &principal, job_id)?;
        let batches = batches::list_job_batches(conn, job_id)?;
        Ok((job, batches))
    })
    .await?;
    Ok(HttpResponse::Ok().json(JobResponse {
        job_id: job.id.to_string(),
        status: job_status(job.created_on, Utc::now().naive_utc()).as_str(),
        meta: job
            .meta
            .as_deref()
            .and_then(|m| serde_json::from_str(m).ok()),
        name: job.name,
        retailer_id: job.retailer_id,
        created_on: rfc3339(job.created_on),
        batch: batches
            .into_iter()
            .map(|b| JobBatch {
                batch_id: b.id.to_string(),
                entity_type: b.entity_type,
                status: b.status,
                created_on: rfc3339(b.created_on),
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
