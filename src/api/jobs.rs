//! `POST /api/v4.1/job` and `GET /api/v4.1/job/{jobId}`.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde::Serialize;

use super::error::ApiError;
use super::support::{parse_id, require_json, rfc3339, with_conn, AppState};
use crate::db::models::NewJob;
use crate::db::{batches, jobs};
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
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    require_json(&req)?;
    let draft = parse_create_job(&body).map_err(ApiError::BadRequest)?;
    let id = with_conn(&state.pool, move |conn| {
        let job = NewJob {
            name: &draft.name,
            retailer_id: &draft.retailer_id,
            meta: draft.meta.as_deref(),
            created_on: Utc::now().naive_utc(),
        };
        Ok(jobs::insert_job(conn, &job)?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(IdResponse { id: id.to_string() }))
}

pub async fn get_job(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let job_id = parse_id("job", &path)?;
    let (job, batches) = with_conn(&state.pool, move |conn| {
        let job = jobs::find_job(conn, job_id)?
            .ok_or_else(|| ApiError::NotFound(format!("job {job_id} not found")))?;
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
