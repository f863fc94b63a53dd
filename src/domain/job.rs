//! Jobs: what a valid create request is, and when a job closes.

use chrono::{NaiveDateTime, TimeDelta};
use serde::Deserialize;
use validator::{Validate, ValidateEmail};

use super::json::parse_object;
use super::scalar::{required_key, required_text, Scalar};

pub const MAX_NAME_CHARS: usize = 255;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateJobWire<'a> {
    #[serde(default, borrow)]
    name: Option<Scalar<'a>>,
    #[serde(default, borrow)]
    retailer_id: Option<Scalar<'a>>,
    #[serde(default)]
    meta: Option<serde_json::Value>,
}

/// A job ready to store.
#[derive(Debug, Clone, PartialEq, Validate)]
pub struct JobDraft {
    #[validate(length(min = 1, max = 255))]
    pub name: String,
    #[validate(length(min = 1, max = 255))]
    pub retailer_id: String,
    /// `meta` as JSON text, when the client sent an object.
    pub meta: Option<String>,
}

/// Parses `POST /job` and lists every problem with it.
pub fn parse_create_job(body: &[u8]) -> Result<JobDraft, Vec<String>> {
    let wire: CreateJobWire =
        parse_object(body).map_err(|e| vec![format!("the request body is {e}")])?;
    let mut errors = Vec::new();
    let name = match wire.name {
        Some(Scalar::Str(name)) => required_text("name", Some(&Scalar::Str(name)), MAX_NAME_CHARS),
        Some(_) => Err("'name' must be a string".to_owned()),
        None => Err("'name' is required".to_owned()),
    }
    .map_err(|e| errors.push(e))
    .unwrap_or_default();
    let retailer_id = required_key("retailerId", wire.retailer_id.as_ref())
        .map_err(|e| errors.push(e))
        .unwrap_or_default();
    let meta = match wire.meta {
        None => None,
        Some(value @ serde_json::Value::Object(_)) => {
            match &value["notify"] {
                serde_json::Value::Null => {}
                serde_json::Value::String(email)
                    if email.len() <= 254 && email.validate_email() => {}
                _ => errors.push("'meta.notify' must be an email address".to_owned()),
            }
            Some(value.to_string())
        }
        Some(_) => {
            errors.push("'meta' must be an object".to_owned());
            None
        }
    };
    let draft = JobDraft {
        name,
        retailer_id,
        meta,
    };
    if errors.is_empty() {
        debug_assert!(draft.validate().is_ok());
        Ok(draft)
    } else {
        Err(errors)
    }
}

/// The address a job's `meta.notify` asks batch emails to go to.
pub fn notify_email(job_meta: Option<&str>) -> Option<String> {
    let meta: serde_json::Value = serde_json::from_str(job_meta?).ok()?;
    meta["notify"].as_str().map(str::to_owned)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    Open,
    Closed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Open => "OPEN",
            JobStatus::Closed => "CLOSED",
        }
    }
}

/// A job is open until the end of the UTC day it was created in, or until it is cancelled.
pub fn job_status(
    created_on: NaiveDateTime,
    closed_on: Option<NaiveDateTime>,
    now: NaiveDateTime,
) -> JobStatus {
    if now < closes_at(created_on, closed_on) {
        JobStatus::Open
    } else {
        JobStatus::Closed
    }
}

/// When a job closes, or closed: when it was cancelled, or else at the end of the UTC day
/// it was created in.
pub fn closes_at(created_on: NaiveDateTime, closed_on: Option<NaiveDateTime>) -> NaiveDateTime {
    let midnight = created_on
        .date()
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        + TimeDelta::days(1);
    closed_on.map_or(midnight, |closed| closed.min(midnight))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn at(d: u32, h: u32, m: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 11, d)
            .unwrap()
            .and_hms_opt(h, m, 0)
            .unwrap()
    }

    #[test]
    fn jobs_close_at_utc_midnight() {
        assert_eq!(
            job_status(at(22, 0, 1), None, at(22, 23, 59)),
            JobStatus::Open
        );
        assert_eq!(
            job_status(at(22, 23, 59), None, at(23, 0, 0)),
            JobStatus::Closed
        );
        assert_eq!(
            job_status(at(22, 10, 0), None, at(25, 10, 0)),
            JobStatus::Closed
        );
        assert_eq!(
            job_status(at(22, 10, 0), Some(at(22, 11, 0)), at(22, 12, 0)),
            JobStatus::Closed,
            "cancelled"
        );
    }

    #[test]
    fn retailer_id_may_be_a_number_or_a_string() {
        let a = parse_create_job(br#"{"name":"Batch Inventory Job","retailerId":197}"#).unwrap();
        let b = parse_create_job(
            br#"{"name":"Batch Inventory Job","retailerId":"197","meta":{"preprocessing":"skip"}}"#,
        )
        .unwrap();
        assert_eq!(a.retailer_id, "197");
        assert_eq!(b.retailer_id, "197");
        assert_eq!(b.meta.as_deref(), Some(r#"{"preprocessing":"skip"}"#));
    }

    #[test]
    fn every_problem_is_listed() {
        let errors = parse_create_job(br#"{"meta":[1]}"#).unwrap_err();
        assert_eq!(
            errors,
            vec![
                "'name' is required",
                "'retailerId' is required",
                "'meta' must be an object"
            ]
        );
        let long = format!(r#"{{"name":"{}","retailerId":1}}"#, "n".repeat(256));
        assert_eq!(
            parse_create_job(long.as_bytes()).unwrap_err(),
            vec!["'name' must be at most 255 characters"]
        );
        assert_eq!(
            parse_create_job(b"[1]").unwrap_err(),
            vec!["the request body is not a JSON object"]
        );
        assert_eq!(
            parse_create_job(br#"{"name":"   ","retailerId":1}"#).unwrap_err(),
            vec!["'name' must not be blank"]
        );
        assert!(parse_create_job(b"{").unwrap_err()[0]
            .starts_with("the request body is not valid JSON"));
    }
}
