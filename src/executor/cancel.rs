//! Cancelling batches: a PENDING batch is not applied at all; a RUNNING one stops at its
//! executor's next safe point (the start of each of its transactions); a COMPLETE one
//! cannot be cancelled. Cancelled batches end COMPLETE with a `cancelled` marker, and every
//! item not applied gets a result saying so.

use chrono::NaiveDateTime;
use diesel::QueryResult;

use super::apply::{cancelled_row, recorded_results};
use crate::db::models::Batch;
use crate::db::{batches, results, DbConnection};
use crate::notify::Outbox;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancelled {
    /// It was PENDING: nothing of it was applied; it is COMPLETE now.
    Now,
    /// It is RUNNING: its executor stops at the next safe point.
    Requested,
    /// It is COMPLETE: too late.
    TooLate,
}

/// Cancels `batch`. Call inside a writing transaction.
pub fn cancel_batch(
    conn: &mut DbConnection,
    outbox: &Outbox,
    batch: &Batch,
    now: NaiveDateTime,
) -> QueryResult<Cancelled> {
    // An earlier attempt may have applied and recorded part of it before it was released.
    let (recorded, mut counts) = recorded_results(conn, batch.id)?;
    let rows: Vec<_> = (0..batch.record_count as usize)
        .filter(|i| !recorded.contains_key(i))
        .map(cancelled_row)
        .collect();
    counts.rejected += rows.len() as i32;
    counts.cancelled = true;
    if batches::cancel_pending_batch(conn, batch.id, now, counts)? {
        results::insert_results(conn, batch.id, &rows)?;
        batches::notify_queue_changed(conn)?;
        outbox.batch_completed(conn, batch.id, now)?;
        return Ok(Cancelled::Now);
    }
    if batches::request_cancel(conn, batch.id)? {
        return Ok(Cancelled::Requested);
    }
    Ok(Cancelled::TooLate)
}
