//! The batch queue: accept, list, claim, complete, release.

use chrono::NaiveDateTime;
use diesel::connection::SimpleConnection;
use diesel::dsl::case_when;
use diesel::prelude::*;
use diesel::sql_query;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};

use super::models::{Batch, ClaimedBatch, NewBatch, COMPLETE, PENDING, RUNNING};
use super::schema::{batch_records, batch_result_chunks, batches};
use super::sql::numbered_for_sqlite;
use super::{write_transaction, DbConnection};

/// Stores a batch and its records.
pub fn insert_batch(conn: &mut DbConnection, batch: &NewBatch) -> QueryResult<i64> {
    let id = diesel::insert_into(batches::table)
        .values(batch)
        .returning(batches::id)
        .get_result(conn)?;
    diesel::insert_into(batch_records::table)
        .values((
            batch_records::batch_id.eq(id),
            batch_records::entities.eq(batch.entities),
        ))
        .execute(conn)?;
    Ok(id)
}

/// Stores an accepted batch as PENDING and tells executors. Call inside a transaction: on
/// PostgreSQL it first takes its retailer's turn (a row lock held until commit), so a
/// retailer's batch ids commit in id order and an executor that sees a batch also sees
/// every earlier one of its retailer — ids are acceptance order. SQLite has one writer.
pub fn accept_batch(conn: &mut DbConnection, batch: &NewBatch) -> QueryResult<i64> {
    if let DbConnection::Pg(c) = conn {
        sql_query(
            "INSERT INTO accept_turns (retailer_id) VALUES ($1) \
             ON CONFLICT (retailer_id) DO UPDATE SET retailer_id = EXCLUDED.retailer_id",
        )
        .bind::<Text, _>(batch.retailer_id)
        .execute(c)?;
    }
    let id = insert_batch(conn, batch)?;
    notify_queue_changed(conn)?;
    Ok(id)
}

/// How full the queue is: unfinished batches of `retailer`, unfinished batches in all,
/// and records of unfinished batches in all.
pub fn queue_load(conn: &mut DbConnection, retailer: &str) -> QueryResult<(i64, i64, i64)> {
    let unfinished = || batches::table.filter(batches::status.ne(COMPLETE));
    let of_retailer = unfinished()
        .filter(batches::retailer_id.eq(retailer))
        .count()
        .get_result(conn)?;
    let (all, records): (i64, Option<i64>) = unfinished()
        .select((
            diesel::dsl::count_star(),
            diesel::dsl::sum(batches::record_count),
        ))
        .first(conn)?;
    Ok((of_retailer, all, records.unwrap_or(0)))
}

/// The unfinished part of the queue, for metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueGauges {
    pub pending: i64,
    pub running: i64,
    /// Records of unfinished batches.
    pub records: i64,
    pub oldest_pending: Option<NaiveDateTime>,
}

pub fn queue_gauges(conn: &mut DbConnection) -> QueryResult<QueueGauges> {
    let rows: Vec<(String, i64, Option<i64>, Option<NaiveDateTime>)> = batches::table
        .filter(batches::status.ne(COMPLETE))
        .group_by(batches::status)
        .select((
            batches::status,
            diesel::dsl::count_star(),
            diesel::dsl::sum(batches::record_count),
            diesel::dsl::min(batches::created_on),
        ))
        .load(conn)?;
    let mut gauges = QueueGauges::default();
    for (status, count, records, oldest) in rows {
        gauges.records += records.unwrap_or(0);
        if status == PENDING {
            gauges.pending = count;
            gauges.oldest_pending = oldest;
        } else {
            gauges.running += count;
        }
    }
    Ok(gauges)
}

/// The records a batch was posted with (kept until retention prunes the batch).
pub fn find_entities(conn: &mut DbConnection, id: i64) -> QueryResult<Option<String>> {
    batch_records::table
        .find(id)
        .select(batch_records::entities)
        .first(conn)
        .optional()
}

/// Closes a job now (it takes no more batches).
pub fn close_job(conn: &mut DbConnection, job_id: i64, now: NaiveDateTime) -> QueryResult<()> {
    use super::schema::jobs;
    diesel::update(jobs::table.find(job_id).filter(jobs::closed_on.is_null()))
        .set(jobs::closed_on.eq(Some(now)))
        .execute(conn)
        .map(|_| ())
}

pub fn find_batch_by_id(conn: &mut DbConnection, id: i64) -> QueryResult<Option<Batch>> {
    batches::table
        .find(id)
        .select(Batch::as_select())
        .first(conn)
        .optional()
}

pub fn find_batch(conn: &mut DbConnection, job_id: i64, id: i64) -> QueryResult<Option<Batch>> {
    batches::table
        .filter(batches::id.eq(id))
        .filter(batches::job_id.eq(job_id))
        .select(Batch::as_select())
        .first(conn)
        .optional()
}

pub fn list_job_batches(conn: &mut DbConnection, job_id: i64) -> QueryResult<Vec<Batch>> {
    batches::table
        .filter(batches::job_id.eq(job_id))
        .order(batches::id)
        .select(Batch::as_select())
        .load(conn)
}

/// The claim, written once with `$n` placeholders and a collation marker: batch ids are
/// acceptance order (per retailer, ids commit in order: see [`insert_batch`]), and a batch
/// runs only once every earlier unfinished batch of its retailer whose key box meets its own
/// has completed — so batches that touch a common position apply one after the other, in
/// order, while the rest run in parallel. Dry runs count too: their results must show the
/// stock as it is at their turn, before later batches change it. A batch with no box (no valid record) touches nothing. Key bounds compare byte-wise
/// (`COLLATE "C"` on PostgreSQL, SQLite's default), as Rust computed them.
const CLAIM: &str = "UPDATE batches \
    SET status = 'RUNNING', attempts = attempts + 1, lease_owner = $1, lease_expires_at = $2, \
        started_on = COALESCE(started_on, $3) \
    WHERE id = (SELECT b.id FROM batches b WHERE b.status <> 'COMPLETE' \
        AND (b.status = 'PENDING' OR b.lease_expires_at < $3 OR b.lease_owner = $1) \
        AND NOT EXISTS (SELECT 1 FROM batches a WHERE a.status <> 'COMPLETE' \
            AND a.retailer_id = b.retailer_id AND a.id < b.id \
            AND a.sku_min COLLATED <= b.sku_max AND b.sku_min COLLATED <= a.sku_max \
            AND a.loc_min COLLATED <= b.loc_max AND b.loc_min COLLATED <= a.loc_max) \
        ORDER BY b.id LIMIT 1 LOCKED) \
    RETURNING id, job_id, retailer_id, api, action, options, dry_run, preprocessing, attempts, \
        record_count, created_on";

/// Takes the oldest batch that may run now (see [`CLAIM`]) and is pending, whose lease has
/// expired, or that `owner` itself left `RUNNING` (an executor runs one batch at a time and
/// holds at most one claimed ahead, so such a batch is one it could not hand back, e.g.
/// while the database was away). Marks it `RUNNING` under a lease held by `owner` until
/// `lease_until`, and counts the attempt.
pub fn claim_next_batch(
    conn: &mut DbConnection,
    owner: &str,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
) -> QueryResult<Option<ClaimedBatch>> {
    let claim = |sql: String| {
        sql_query(sql)
            .bind::<Text, _>(owner)
            .bind::<Timestamp, _>(lease_until)
            .bind::<Timestamp, _>(now)
    };
    match conn {
        DbConnection::Sqlite(c) => {
            let sql = CLAIM.replace(" COLLATED", "").replace(" LOCKED", "");
            claim(numbered_for_sqlite(&sql)).get_result(c).optional()
        }
        DbConnection::Pg(c) => {
            let sql = CLAIM
                .replace(" COLLATED", " COLLATE \"C\"")
                .replace(" LOCKED", " FOR UPDATE SKIP LOCKED");
            claim(sql).get_result(c).optional()
        }
    }
}

/// The batch `id` while it runs under a lease held by `owner`.
macro_rules! held_by {
    ($id:expr, $owner:expr) => {
        batches::table
            .filter(batches::id.eq($id))
            .filter(batches::status.eq(RUNNING))
            .filter(batches::lease_owner.eq($owner))
    };
}

/// What a batch's items came to, counted when it completes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub applied: i32,
    pub rejected: i32,
    pub unchanged: i32,
    /// It stopped because it was cancelled.
    pub cancelled: bool,
}

/// Marks a batch `COMPLETE` with its counts if `owner` still holds it. Returns whether it
/// did: `false` means the lease was lost and the caller's transaction must roll back.
pub fn complete_batch(
    conn: &mut DbConnection,
    id: i64,
    owner: &str,
    now: NaiveDateTime,
    counts: Counts,
) -> QueryResult<bool> {
    let updated = diesel::update(held_by!(id, owner))
        .set((
            batches::status.eq(COMPLETE),
            batches::completed_on.eq(Some(now)),
            batches::lease_owner.eq(None::<String>),
            batches::lease_expires_at.eq(None::<NaiveDateTime>),
            batches::processed_count.eq(batches::record_count),
            batches::applied_count.eq(Some(counts.applied)),
            batches::rejected_count.eq(Some(counts.rejected)),
            batches::unchanged_count.eq(Some(counts.unchanged)),
            batches::cancelled.eq(i32::from(counts.cancelled)),
        ))
        .execute(conn)?;
    Ok(updated == 1)
}

/// Counts `done` more items of a running batch as processed (its progress).
pub fn add_processed(conn: &mut DbConnection, id: i64, done: i32) -> QueryResult<()> {
    diesel::update(batches::table.find(id))
        .set(batches::processed_count.eq(batches::processed_count + done))
        .execute(conn)
        .map(|_| ())
}

/// Locks the batch row until the transaction ends, if `owner` still holds the batch, and
/// says whether a cancel was asked. `None` means the lease was lost and the caller's
/// transaction must roll back.
pub fn lock_held_batch(conn: &mut DbConnection, id: i64, owner: &str) -> QueryResult<Option<bool>> {
    let cancel: Option<i32> = diesel::update(held_by!(id, owner))
        .set(batches::lease_owner.eq(batches::lease_owner))
        .returning(batches::cancel_requested)
        .get_result(conn)
        .optional()?;
    Ok(cancel.map(|c| c != 0))
}

/// Ends a PENDING batch as cancelled: COMPLETE, with the marker and `counts` of all its
/// results (those an earlier attempt recorded, and the cancelled rest). `false` when it is
/// no longer PENDING (an executor claimed it, or it is done).
pub fn cancel_pending_batch(
    conn: &mut DbConnection,
    id: i64,
    now: NaiveDateTime,
    counts: Counts,
) -> QueryResult<bool> {
    let started = case_when(
        batches::started_on.is_null(),
        Some(now).into_sql::<Nullable<Timestamp>>(),
    )
    .otherwise(batches::started_on);
    let updated = diesel::update(
        batches::table
            .filter(batches::id.eq(id))
            .filter(batches::status.eq(PENDING)),
    )
    .set((
        batches::status.eq(COMPLETE),
        batches::cancelled.eq(1),
        batches::started_on.eq(started),
        batches::completed_on.eq(Some(now)),
        batches::processed_count.eq(batches::record_count),
        batches::applied_count.eq(Some(counts.applied)),
        batches::rejected_count.eq(Some(counts.rejected)),
        batches::unchanged_count.eq(Some(counts.unchanged)),
    ))
    .execute(conn)?;
    Ok(updated == 1)
}

/// Asks the executor running a batch to stop at its next safe point. `false` when it is
/// not RUNNING.
pub fn request_cancel(conn: &mut DbConnection, id: i64) -> QueryResult<bool> {
    let updated = diesel::update(
        batches::table
            .filter(batches::id.eq(id))
            .filter(batches::status.eq(RUNNING)),
    )
    .set(batches::cancel_requested.eq(1))
    .execute(conn)?;
    Ok(updated == 1)
}

/// Hands a batch held by `owner` back to the queue for another attempt.
pub fn release_batch(conn: &mut DbConnection, id: i64, owner: &str) -> QueryResult<bool> {
    hand_back(conn, id, owner, 0)
}

/// Hands back a batch `owner` claimed but never started (it stopped first): it is pending
/// again, and the claim is not counted as an attempt.
pub fn unclaim_batch(conn: &mut DbConnection, id: i64, owner: &str) -> QueryResult<bool> {
    hand_back(conn, id, owner, 1)
}

/// Makes a batch held by `owner` pending again, taking back `uncounted` attempts; one that
/// no attempt is left of has not started.
fn hand_back(conn: &mut DbConnection, id: i64, owner: &str, uncounted: i32) -> QueryResult<bool> {
    let never_started = case_when(
        batches::attempts.le(uncounted),
        None::<NaiveDateTime>.into_sql::<Nullable<Timestamp>>(),
    )
    .otherwise(batches::started_on);
    let updated = diesel::update(held_by!(id, owner))
        .set((
            batches::status.eq(PENDING),
            batches::lease_owner.eq(None::<String>),
            batches::lease_expires_at.eq(None::<NaiveDateTime>),
            batches::attempts.eq(batches::attempts - uncounted),
            batches::started_on.eq(never_started),
        ))
        .execute(conn)?;
    Ok(updated == 1)
}

/// Returns every `RUNNING` batch to the queue. Only safe where no other executor can
/// be running, i.e. a single-node SQLite service at start-up.
pub fn requeue_running_batches(conn: &mut DbConnection) -> QueryResult<usize> {
    diesel::update(batches::table.filter(batches::status.eq(RUNNING)))
        .set((
            batches::status.eq(PENDING),
            batches::lease_owner.eq(None::<String>),
            batches::lease_expires_at.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)
}

/// Extends the lease `owner` holds on a running batch. `false`: the lease is gone.
pub fn renew_lease(
    conn: &mut DbConnection,
    id: i64,
    owner: &str,
    until: NaiveDateTime,
) -> QueryResult<bool> {
    let updated = diesel::update(held_by!(id, owner))
        .set(batches::lease_expires_at.eq(Some(until)))
        .execute(conn)?;
    Ok(updated == 1)
}

/// The channel PostgreSQL executors listen on for newly accepted batches.
pub const BATCH_CHANNEL: &str = "stockbatch_batches";

/// Tells executors on every node that the queue changed — a batch was accepted, or one
/// completed and may have let later ones run (PostgreSQL, delivered at commit; a no-op on
/// SQLite, whose executor is woken in-process).
pub fn notify_queue_changed(conn: &mut DbConnection) -> QueryResult<()> {
    match conn {
        DbConnection::Pg(c) => c.batch_execute(&format!("NOTIFY {BATCH_CHANNEL}")),
        DbConnection::Sqlite(_) => Ok(()),
    }
}

/// COMPLETE batches created before `$1`, at most `$2`: of retailer `$3`, or (without it)
/// of every retailer that keeps its batches for the server's default time.
const PRUNED: &str = "SELECT id FROM batches WHERE status = 'COMPLETE' AND created_on < $1 \
    AND RETAILER ORDER BY id LIMIT $2";

/// Deletes up to `limit` COMPLETE batches created before `cutoff`, with their records and
/// results: of `retailer`, or when `None` of every retailer without a retention of its own.
/// The batches are chosen once, so a batch completing meanwhile cannot slip into one of the
/// deletes and not the others.
pub fn delete_completed_batches_before(
    conn: &mut DbConnection,
    cutoff: NaiveDateTime,
    limit: i64,
    retailer: Option<&str>,
) -> QueryResult<usize> {
    #[derive(QueryableByName)]
    struct Pruned {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    let pruned = PRUNED.replace(
        "RETAILER",
        match retailer {
            Some(_) => "retailer_id = $3",
            None => {
                "retailer_id NOT IN (SELECT id FROM retailers WHERE retention_days IS NOT NULL)"
            }
        },
    );
    write_transaction(conn, |conn| {
        let query = |sql: &str| {
            sql_query(sql)
                .bind::<Timestamp, _>(cutoff)
                .bind::<BigInt, _>(limit)
        };
        let rows: Vec<Pruned> = match (&mut *conn, retailer) {
            (DbConnection::Sqlite(c), None) => query(&numbered_for_sqlite(&pruned)).load(c)?,
            (DbConnection::Pg(c), None) => query(&pruned).load(c)?,
            (DbConnection::Sqlite(c), Some(r)) => query(&numbered_for_sqlite(&pruned))
                .bind::<Text, _>(r)
                .load(c)?,
            (DbConnection::Pg(c), Some(r)) => query(&pruned).bind::<Text, _>(r).load(c)?,
        };
        let ids: Vec<i64> = rows.into_iter().map(|row| row.id).collect();
        if ids.is_empty() {
            return Ok(0);
        }
        diesel::delete(
            batch_result_chunks::table.filter(batch_result_chunks::batch_id.eq_any(&ids)),
        )
        .execute(conn)?;
        diesel::delete(batch_records::table.filter(batch_records::batch_id.eq_any(&ids)))
            .execute(conn)?;
        diesel::delete(batches::table.filter(batches::id.eq_any(&ids))).execute(conn)
    })
}
