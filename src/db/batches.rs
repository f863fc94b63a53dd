//! The batch queue: accept, list, claim, complete, release.

use chrono::NaiveDateTime;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_query;
use diesel::sql_types::{Text, Timestamp};

use super::models::{Batch, ClaimedBatch, NewBatch, COMPLETE, PENDING, RUNNING};
use super::schema::batches;
use super::sql::delete_before;
use super::DbConnection;

pub fn insert_batch(conn: &mut DbConnection, batch: &NewBatch) -> QueryResult<i64> {
    diesel::insert_into(batches::table)
        .values(batch)
        .returning(batches::id)
        .get_result(conn)
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

const CLAIM_SQLITE: &str = "UPDATE batches \
    SET status = 'RUNNING', attempts = attempts + 1, lease_owner = ?, lease_expires_at = ? \
    WHERE id = (SELECT id FROM batches WHERE status <> 'COMPLETE' \
                AND (status = 'PENDING' OR lease_expires_at < ? OR lease_owner = ?) ORDER BY id LIMIT 1) \
    RETURNING id, job_id, attempts, record_count, entities";

const CLAIM_POSTGRES: &str = "UPDATE batches \
    SET status = 'RUNNING', attempts = attempts + 1, lease_owner = $1, lease_expires_at = $2 \
    WHERE id = (SELECT id FROM batches WHERE status <> 'COMPLETE' \
                AND (status = 'PENDING' OR lease_expires_at < $3 OR lease_owner = $4) ORDER BY id LIMIT 1 \
                FOR UPDATE SKIP LOCKED) \
    RETURNING id, job_id, attempts, record_count, entities";

/// Takes the oldest batch that is pending, whose lease has expired, or that `owner`
/// itself left `RUNNING` (an executor runs one batch at a time, so such a batch is one it
/// could not hand back, e.g. while the database was away). Marks it `RUNNING` under a
/// lease held by `owner` until `lease_until`, and counts the attempt.
pub fn claim_next_batch(
    conn: &mut DbConnection,
    owner: &str,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
) -> QueryResult<Option<ClaimedBatch>> {
    let claim = |sql| {
        sql_query(sql)
            .bind::<Text, _>(owner)
            .bind::<Timestamp, _>(lease_until)
            .bind::<Timestamp, _>(now)
            .bind::<Text, _>(owner)
    };
    match conn {
        DbConnection::Sqlite(c) => claim(CLAIM_SQLITE).get_result(c).optional(),
        DbConnection::Pg(c) => claim(CLAIM_POSTGRES).get_result(c).optional(),
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

/// Marks a batch `COMPLETE` if `owner` still holds it. Returns whether it did: `false`
/// means the lease was lost and the caller's transaction must roll back.
pub fn complete_batch(
    conn: &mut DbConnection,
    id: i64,
    owner: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let updated = diesel::update(held_by!(id, owner))
        .set((
            batches::status.eq(COMPLETE),
            batches::completed_on.eq(Some(now)),
            batches::entities.eq(None::<String>),
            batches::lease_owner.eq(None::<String>),
            batches::lease_expires_at.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)?;
    Ok(updated == 1)
}

/// Locks the batch row until the transaction ends, if `owner` still holds the batch.
/// `false` means the lease was lost and the caller's transaction must roll back.
pub fn lock_held_batch(conn: &mut DbConnection, id: i64, owner: &str) -> QueryResult<bool> {
    let updated = diesel::update(held_by!(id, owner))
        .set(batches::lease_owner.eq(batches::lease_owner))
        .execute(conn)?;
    Ok(updated == 1)
}

/// Hands a batch held by `owner` back to the queue for another attempt.
pub fn release_batch(conn: &mut DbConnection, id: i64, owner: &str) -> QueryResult<bool> {
    let updated = diesel::update(held_by!(id, owner))
        .set((
            batches::status.eq(PENDING),
            batches::lease_owner.eq(None::<String>),
            batches::lease_expires_at.eq(None::<NaiveDateTime>),
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

/// Tells executors on every node that a batch is waiting (PostgreSQL; a no-op on SQLite,
/// whose single executor is woken in-process).
pub fn notify_batch_accepted(conn: &mut DbConnection) -> QueryResult<()> {
    match conn {
        DbConnection::Pg(c) => c.batch_execute(&format!("NOTIFY {BATCH_CHANNEL}")),
        DbConnection::Sqlite(_) => Ok(()),
    }
}

const PRUNED: &str = "SELECT id FROM batches WHERE status = 'COMPLETE' AND created_on < $1 \
    ORDER BY id LIMIT $2";

/// Deletes up to `limit` COMPLETE batches created before `cutoff`, with their results.
/// Both statements write first, so on SQLite the transaction takes the write lock at once
/// rather than failing to upgrade a read when another process has written meanwhile.
pub fn delete_completed_batches_before(
    conn: &mut DbConnection,
    cutoff: NaiveDateTime,
    limit: i64,
) -> QueryResult<usize> {
    conn.transaction(|conn| {
        let results = format!("DELETE FROM batch_results WHERE batch_id IN ({PRUNED})");
        delete_before(conn, &results, cutoff, limit)?;
        let batches = format!("DELETE FROM batches WHERE id IN ({PRUNED})");
        delete_before(conn, &batches, cutoff, limit)
    })
}
