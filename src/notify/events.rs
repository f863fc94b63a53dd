//! The events, in Fluent's event shape: `BATCH_CREATE`, `BATCH_COMPLETE` and
//! `INVENTORY_CHANGED` of a batch (entityType `BATCH`; rootEntityType `JOB` for Fluent
//! batches, none for StateSet's), and `JOB_CLOSED`. An event is written only when a
//! subscription wants it, in the transaction of the change it describes.

use argon2::password_hash::rand_core::{OsRng, RngCore};
use chrono::NaiveDateTime;
use diesel::QueryResult;
use serde::Serialize;
use serde_json::{json, Value};

use crate::api::rfc3339;
use crate::db::models::{Batch, FLUENT};
use crate::db::notifications::{self, NewEvent};
use crate::db::{batches, movements, DbConnection};
use crate::domain::webhook::{BATCH_COMPLETE, BATCH_CREATE, INVENTORY_CHANGED, JOB_CLOSED};

/// The body of every delivery.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Event<'a> {
    /// Unique per event; a receiver that sees one twice (after a crash) has it already.
    id: &'a str,
    name: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    retailer_id: &'a str,
    entity_type: &'static str,
    entity_id: String,
    entity_ref: Option<String>,
    root_entity_type: Option<&'static str>,
    root_entity_id: Option<String>,
    source: &'static str,
    created_on: String,
    attributes: Value,
}

/// A job closed by a cancel, with what became of its batches.
#[derive(Debug, Clone)]
pub struct JobClosed {
    pub job_id: i64,
    pub retailer_id: String,
    pub cancelled_batches: usize,
    pub cancelling_batches: usize,
}

/// A UUID (version 4) from the OS's CSPRNG.
pub fn new_event_id() -> String {
    let mut b = [0u8; 16];
    OsRng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex = crate::auth::secrets::hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Stores `event` with a delivery for each subscriber.
fn store(
    conn: &mut DbConnection,
    event: &Event,
    subscribers: &[i64],
    now: NaiveDateTime,
    retry_until: NaiveDateTime,
) -> QueryResult<()> {
    let payload = serde_json::to_string(event).expect("events serialise");
    notifications::insert_event(
        conn,
        &NewEvent {
            event_id: event.id,
            name: event.name,
            retailer_id: event.retailer_id,
            payload: &payload,
            subscribers,
        },
        now,
        retry_until,
    )
    .map(|_| ())
}

fn batch_event<'a>(
    event_id: &'a str,
    name: &'a str,
    batch: &'a Batch,
    now: NaiveDateTime,
    attributes: Value,
) -> Event<'a> {
    let fluent = batch.api == FLUENT;
    Event {
        id: event_id,
        name,
        kind: "NORMAL",
        retailer_id: &batch.retailer_id,
        entity_type: "BATCH",
        entity_id: batch.id.to_string(),
        entity_ref: (!fluent).then(|| format!("batch_{}", batch.id)),
        root_entity_type: fluent.then_some("JOB"),
        root_entity_id: batch.job_id.map(|id| id.to_string()),
        source: "stockbatch",
        created_on: rfc3339(now),
        attributes,
    }
}

/// The batch's summary counts, as its views show them.
fn summary(batch: &Batch) -> Value {
    json!({
        "api": batch.api,
        "action": batch.action,
        "entityType": batch.entity_type,
        "status": batch.status,
        "dryRun": batch.dry_run != 0,
        "cancelled": batch.cancelled != 0,
        "totalEntities": batch.record_count,
        "appliedEntities": batch.applied_count,
        "rejectedEntities": batch.rejected_count,
        "unchangedEntities": batch.unchanged_count,
        "createdOn": rfc3339(batch.created_on),
        "completedOn": batch.completed_on.map(rfc3339),
    })
}

pub(super) fn batch_created(
    conn: &mut DbConnection,
    batch_id: i64,
    now: NaiveDateTime,
    retry_until: NaiveDateTime,
) -> QueryResult<()> {
    let Some(batch) = batches::find_batch_by_id(conn, batch_id)? else {
        return Ok(());
    };
    let subscribers = notifications::subscribers(conn, &batch.retailer_id, BATCH_CREATE)?;
    if subscribers.is_empty() {
        return Ok(());
    }
    let id = new_event_id();
    let event = batch_event(&id, BATCH_CREATE, &batch, now, summary(&batch));
    store(conn, &event, &subscribers, now, retry_until)
}

pub(super) fn batch_completed(
    conn: &mut DbConnection,
    batch_id: i64,
    now: NaiveDateTime,
    retry_until: NaiveDateTime,
) -> QueryResult<()> {
    let Some(batch) = batches::find_batch_by_id(conn, batch_id)? else {
        return Ok(());
    };
    let completed = notifications::subscribers(conn, &batch.retailer_id, BATCH_COMPLETE)?;
    if !completed.is_empty() {
        let id = new_event_id();
        let event = batch_event(&id, BATCH_COMPLETE, &batch, now, summary(&batch));
        store(conn, &event, &completed, now, retry_until)?;
    }
    if batch.dry_run != 0 {
        return Ok(());
    }
    let changed = notifications::subscribers(conn, &batch.retailer_id, INVENTORY_CHANGED)?;
    if changed.is_empty() {
        return Ok(());
    }
    let positions = movements::changes_of_batch(conn, batch.id)?;
    if positions.is_empty() {
        return Ok(());
    }
    let attributes = json!({
        "api": batch.api,
        "action": batch.action,
        "positionCount": positions.len(),
        "positions": positions
            .iter()
            .map(|p| json!({
                "locationRef": p.location_ref,
                "skuRef": p.sku_ref,
                "previousQty": p.previous_qty,
                "qty": p.qty,
            }))
            .collect::<Vec<_>>(),
    });
    let id = new_event_id();
    let event = batch_event(&id, INVENTORY_CHANGED, &batch, now, attributes);
    store(conn, &event, &changed, now, retry_until)
}

pub(super) fn job_closed(
    conn: &mut DbConnection,
    closed: &JobClosed,
    now: NaiveDateTime,
    retry_until: NaiveDateTime,
) -> QueryResult<()> {
    let subscribers = notifications::subscribers(conn, &closed.retailer_id, JOB_CLOSED)?;
    if subscribers.is_empty() {
        return Ok(());
    }
    let id = new_event_id();
    let event = Event {
        id: &id,
        name: JOB_CLOSED,
        kind: "NORMAL",
        retailer_id: &closed.retailer_id,
        entity_type: "JOB",
        entity_id: closed.job_id.to_string(),
        entity_ref: None,
        root_entity_type: Some("JOB"),
        root_entity_id: Some(closed.job_id.to_string()),
        source: "stockbatch",
        created_on: rfc3339(now),
        attributes: json!({
            "status": "CLOSED",
            "reason": "cancelled",
            "cancelledBatches": closed.cancelled_batches,
            "cancellingBatches": closed.cancelling_batches,
        }),
    };
    store(conn, &event, &subscribers, now, retry_until)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_version_4_uuids_and_differ() {
        let (a, b) = (new_event_id(), new_event_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!("89ab".contains(&a[19..20]));
    }
}
