//! Executors' heartbeats: each running executor says it is alive every few seconds, so a
//! queue that nobody runs can be told from one that is merely busy.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::executor_heartbeats as beats;
use super::DbConnection;

pub fn beat(conn: &mut DbConnection, owner: &str, now: NaiveDateTime) -> QueryResult<()> {
    let updated = diesel::update(beats::table.find(owner))
        .set(beats::last_seen.eq(now))
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(beats::table)
            .values((beats::owner.eq(owner), beats::last_seen.eq(now)))
            .execute(conn)?;
    }
    Ok(())
}

/// An executor that stops cleanly says so.
pub fn forget(conn: &mut DbConnection, owner: &str) -> QueryResult<()> {
    diesel::delete(beats::table.find(owner))
        .execute(conn)
        .map(|_| ())
}

/// When any executor was last seen alive.
pub fn last_beat(conn: &mut DbConnection) -> QueryResult<Option<NaiveDateTime>> {
    beats::table
        .select(diesel::dsl::max(beats::last_seen))
        .first(conn)
}

/// Deletes heartbeats older than `cutoff` (executors that died without saying so).
pub fn delete_beats_before(conn: &mut DbConnection, cutoff: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(beats::table.filter(beats::last_seen.lt(cutoff))).execute(conn)
}

/// Executors seen alive since `since`.
pub fn count_alive_since(conn: &mut DbConnection, since: NaiveDateTime) -> QueryResult<i64> {
    beats::table
        .filter(beats::last_seen.ge(since))
        .count()
        .get_result(conn)
}
