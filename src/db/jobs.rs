//! Jobs: the containers batches are posted to.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::models::{Job, NewJob};
use super::schema::jobs;
use super::sql::delete_before;
use super::DbConnection;

pub fn insert_job(conn: &mut DbConnection, job: &NewJob) -> QueryResult<i64> {
    diesel::insert_into(jobs::table)
        .values(job)
        .returning(jobs::id)
        .get_result(conn)
}

pub fn find_job(conn: &mut DbConnection, id: i64) -> QueryResult<Option<Job>> {
    jobs::table
        .find(id)
        .select(Job::as_select())
        .first(conn)
        .optional()
}

/// Deletes up to `limit` jobs created before `cutoff` that have no batches left.
pub fn delete_empty_jobs_before(
    conn: &mut DbConnection,
    cutoff: NaiveDateTime,
    limit: i64,
) -> QueryResult<usize> {
    delete_before(
        conn,
        "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE created_on < $1 \
         AND NOT EXISTS (SELECT 1 FROM batches WHERE batches.job_id = jobs.id) ORDER BY id LIMIT $2)",
        cutoff,
        limit,
    )
}
