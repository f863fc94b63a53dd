//! Batch emails: a plain-text summary of a completed batch — its counts and the items not
//! applied (up to a limit), with where to fetch the rest — sent through the SMTP relay.

use std::fmt::Write;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::{Message, SmtpTransport, Transport};

use super::SmtpRelay;
use crate::api::rfc3339;
use crate::db::models::{Batch, FLUENT};
use crate::db::results::{filtered_results, ResultFilter};
use crate::db::{batches, DbConnection};

pub struct EmailSender {
    transport: SmtpTransport,
    from: Mailbox,
}

impl EmailSender {
    pub fn new(relay: &SmtpRelay, timeout: Duration) -> anyhow::Result<Self> {
        let transport = SmtpTransport::from_url(&relay.url)
            .map_err(|e| anyhow::anyhow!("STOCKBATCH_SMTP_URL is not a usable SMTP URL: {e}"))?
            .timeout(Some(timeout))
            .build();
        let from = relay
            .from
            .parse()
            .map_err(|e| anyhow::anyhow!("STOCKBATCH_SMTP_FROM is not an email address: {e}"))?;
        Ok(EmailSender { transport, from })
    }

    pub fn send(&self, to: &str, email: &Composed) -> Result<(), String> {
        let to: Mailbox = to.parse().map_err(|e| format!("bad recipient: {e}"))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(email.body.clone())
            .map_err(|e| format!("cannot build the message: {e}"))?;
        self.transport
            .send(&message)
            .map(|_| ())
            .map_err(|e| format!("the SMTP relay refused or failed: {e}"))
    }
}

pub struct Composed {
    pub subject: String,
    pub body: String,
}

/// The email about `batch_id`, or `None` once the batch is gone.
pub fn compose(
    conn: &mut DbConnection,
    batch_id: i64,
    failed_limit: usize,
) -> diesel::QueryResult<Option<Composed>> {
    let Some(batch) = batches::find_batch_by_id(conn, batch_id)? else {
        return Ok(None);
    };
    let not_applied = filtered_results(
        conn,
        batch_id,
        0,
        failed_limit as i64,
        &ResultFilter {
            codes: Vec::new(),
            failed: true,
        },
    )?;
    Ok(Some(summary(&batch, &not_applied, failed_limit)))
}

fn summary(
    batch: &Batch,
    not_applied: &[crate::db::models::BatchResult],
    failed_limit: usize,
) -> Composed {
    let total = batch.record_count;
    let applied = batch.applied_count.unwrap_or(0);
    let failed = total - applied;
    let fluent = batch.api == FLUENT;
    let (api, name, rest) = if fluent {
        let job = batch.job_id.unwrap_or_default();
        (
            "Fluent",
            format!("batch {} of job {job}", batch.id),
            format!(
                "GET /api/v4.1/job/{job}/batch/{}/results?failed=true",
                batch.id
            ),
        )
    } else {
        (
            "StateSet",
            format!("batch batch_{}", batch.id),
            format!("GET /api/v1/inventory/batch/batch_{}", batch.id),
        )
    };
    let outcome = if batch.cancelled != 0 {
        "was cancelled"
    } else if failed == 0 {
        "completed"
    } else {
        "completed with failures"
    };
    let dry = if batch.dry_run != 0 { " (dry run)" } else { "" };
    let subject =
        format!("stockbatch: {name}{dry} {outcome}: {applied} of {total} applied, {failed} not");
    let mut body = String::new();
    let _ = writeln!(
        body,
        "{api} {name} for retailer {}{dry} {outcome}.",
        batch.retailer_id
    );
    let _ = writeln!(body);
    let _ = writeln!(body, "Operation:   {}", batch.action);
    let _ = writeln!(body, "Items:       {total}");
    let _ = writeln!(
        body,
        "Applied:     {applied} ({} of them unchanged)",
        batch.unchanged_count.unwrap_or(0)
    );
    let _ = writeln!(body, "Not applied: {failed}");
    let _ = writeln!(body, "Accepted:    {}", rfc3339(batch.created_on));
    if let Some(done) = batch.completed_on {
        let _ = writeln!(body, "Completed:   {}", rfc3339(done));
    }
    if !not_applied.is_empty() {
        let _ = writeln!(body);
        let shown = if failed as usize > not_applied.len() {
            format!("the first {} of {failed}", not_applied.len())
        } else {
            format!("{failed}")
        };
        let _ = writeln!(body, "Items not applied ({shown}):");
        for r in not_applied {
            let _ = writeln!(
                body,
                "  #{} {}: {} {}",
                r.seq,
                r.entity_ref.as_deref().unwrap_or("-"),
                r.response_code,
                r.message
            );
        }
    }
    let _ = writeln!(body);
    if failed as usize > failed_limit {
        let _ = writeln!(body, "Every result: {rest}");
    } else {
        let _ = writeln!(body, "Results: {rest}");
    }
    Composed { subject, body }
}
