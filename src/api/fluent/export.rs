//! `GET /api/v4.1/job/{jobId}/batch/{batchId}/results`: every result of a COMPLETE batch,
//! streamed as CSV or NDJSON a page at a time, each beside the record it answers (so
//! failures can be fixed and sent again), filterable by `responseCode`.

use std::ops::Range;
use std::sync::Arc;

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::stream;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use super::jobs::find_visible_job;
use crate::api::error::ApiError;
use crate::api::principal::require;
use crate::api::support::{parse_id, with_conn, AppState};
use crate::auth::{Permission, Principal};
use crate::db::models::{BatchResult, COMPLETE};
use crate::db::results::{filtered_results, ResultFilter};
use crate::db::{batches, DbPool};

/// Results read per page: memory holds one page, not the batch's results.
const PAGE: i64 = 1000;

/// The record fields CSV columns are named after, in InventoryPost's order.
const RECORD_COLUMNS: [&str; 11] = [
    "retailerId",
    "locationRef",
    "skuRef",
    "qty",
    "correctedQty",
    "reservedQty",
    "inventoryId",
    "ref",
    "type",
    "status",
    "attributes",
];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExportQuery {
    format: Option<String>,
    /// Comma-separated codes: only these results.
    response_code: Option<String>,
    /// `true`: only results that are not 200.
    failed: Option<bool>,
}

#[derive(Clone, Copy, PartialEq)]
enum Format {
    Csv,
    Ndjson,
}

pub async fn export_results(
    principal: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    query: web::Query<ExportQuery>,
) -> Result<HttpResponse, ApiError> {
    require(&principal, Permission::BatchView)?;
    let job_id = parse_id("job", &path.0)?;
    let batch_id = parse_id("batch", &path.1)?;
    let query = query.into_inner();
    let format = format(&req, query.format.as_deref())?;
    let filter = ResultFilter {
        codes: match &query.response_code {
            None => Vec::new(),
            Some(codes) => codes
                .split(',')
                .map(|c| c.trim().parse::<i32>())
                .collect::<Result<_, _>>()
                .map_err(|_| {
                    ApiError::bad_request("'responseCode' must list result codes, e.g. 400,401")
                })?,
        },
        failed: query.failed.unwrap_or(false),
    };
    let entities = with_conn(&state.pool, move |conn| {
        find_visible_job(conn, &principal, job_id)?;
        let batch = batches::find_batch(conn, job_id, batch_id)?.ok_or_else(|| {
            ApiError::NotFound(format!("batch {batch_id} not found in job {job_id}"))
        })?;
        if batch.status != COMPLETE {
            return Err(ApiError::Conflict(format!(
                "batch {batch_id} is {}: its results are written when it is COMPLETE",
                batch.status
            )));
        }
        Ok(batches::find_entities(conn, batch_id)?.unwrap_or_else(|| "[]".to_owned()))
    })
    .await?;
    let records = Arc::new(Records::new(entities));
    let (content_type, head) = match format {
        Format::Csv => ("text/csv; charset=utf-8", csv_row(&csv_header())),
        Format::Ndjson => ("application/x-ndjson", Vec::new()),
    };
    let pages = stream::unfold(Some(0), move |from| {
        let (pool, filter, records) = (state.pool.clone(), filter.clone(), records.clone());
        async move {
            let from = from?;
            match page(&pool, batch_id, from, &filter).await {
                Ok(rows) => {
                    let next = (rows.len() as i64 == PAGE)
                        .then(|| rows.last().map_or(from, |r| r.seq + 1));
                    Some((Ok::<_, ApiError>(render(format, &rows, &records)), next))
                }
                Err(e) => Some((Err(e), None)),
            }
        }
    });
    let body = stream::iter([Ok(Bytes::from(head))]).chain(pages);
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .streaming(body))
}

use futures_util::StreamExt as _;

async fn page(
    pool: &DbPool,
    batch_id: i64,
    from: i32,
    filter: &ResultFilter,
) -> Result<Vec<BatchResult>, ApiError> {
    let filter = filter.clone();
    with_conn(pool, move |conn| {
        Ok(filtered_results(conn, batch_id, from, PAGE, &filter)?)
    })
    .await
}

/// CSV when `?format=csv` or `Accept: text/csv`; NDJSON when `?format=ndjson` or by default.
fn format(req: &HttpRequest, asked: Option<&str>) -> Result<Format, ApiError> {
    match asked {
        Some("csv") => return Ok(Format::Csv),
        Some("ndjson") => return Ok(Format::Ndjson),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "'format' must be csv or ndjson, not '{other}'"
            )))
        }
        None => {}
    }
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    Ok(if accept.contains("text/csv") {
        Format::Csv
    } else {
        Format::Ndjson
    })
}

/// A batch's records, found by index in its stored JSON without copying them.
struct Records {
    text: String,
    spans: Vec<Range<usize>>,
}

impl Records {
    fn new(text: String) -> Records {
        let base = text.as_ptr() as usize;
        let spans = serde_json::from_str::<Vec<&RawValue>>(&text)
            .map(|records| {
                records
                    .iter()
                    .map(|r| {
                        let start = r.get().as_ptr() as usize - base;
                        start..start + r.get().len()
                    })
                    .collect()
            })
            .unwrap_or_default();
        Records { text, spans }
    }

    fn get(&self, seq: i32) -> &str {
        self.spans
            .get(seq as usize)
            .map_or("null", |span| &self.text[span.clone()])
    }
}

fn render(format: Format, rows: &[BatchResult], records: &Records) -> Bytes {
    let mut out = Vec::new();
    for row in rows {
        let record = records.get(row.seq);
        match format {
            Format::Ndjson => {
                let raw: Box<RawValue> = serde_json::from_str(record).unwrap_or_else(|_| {
                    serde_json::value::to_raw_value(&Value::Null).expect("null is JSON")
                });
                let line = json!({
                    "index": row.seq + 1,
                    "responseCode": row.response_code,
                    "message": row.message,
                    "entityId": row.entity_id.map(|id| id.to_string()),
                    "entityRef": row.entity_ref,
                    "record": raw,
                });
                out.extend_from_slice(line.to_string().as_bytes());
                out.push(b'\n');
            }
            Format::Csv => out.extend(csv_row(&csv_fields(row, record))),
        }
    }
    Bytes::from(out)
}

fn csv_header() -> Vec<String> {
    ["index", "responseCode", "message", "entityId", "entityRef"]
        .into_iter()
        .chain(RECORD_COLUMNS)
        .chain(["otherFields"])
        .map(str::to_owned)
        .collect()
}

/// A result and its record's fields (objects as JSON; fields beyond InventoryPost's in
/// `otherFields`, as a JSON object).
fn csv_fields(row: &BatchResult, record: &str) -> Vec<String> {
    let mut fields: Map<String, Value> = serde_json::from_str(record).unwrap_or_default();
    let text = |v: Option<Value>| match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s,
        Some(other) => other.to_string(),
    };
    let mut out = vec![
        (row.seq + 1).to_string(),
        row.response_code.to_string(),
        row.message.clone(),
        row.entity_id.map(|id| id.to_string()).unwrap_or_default(),
        row.entity_ref.clone().unwrap_or_default(),
    ];
    out.extend(RECORD_COLUMNS.iter().map(|c| text(fields.remove(*c))));
    out.push(if fields.is_empty() {
        String::new()
    } else {
        Value::Object(fields).to_string()
    });
    out
}

fn csv_row(fields: &[String]) -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(fields).expect("writing to memory");
    writer.into_inner().expect("writing to memory")
}
