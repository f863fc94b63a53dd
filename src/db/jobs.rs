//! Jobs: the containers batches are posted to.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_query;
use diesel::sql_types::{BigInt, Timestamp};

use super::models::{Job, NewJob};
use super::schema::jobs;
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
    let delete = |sql| {
        sql_query(sql)
            .bind::<Timestamp, _>(cutoff)
            .bind::<BigInt, _>(limit)
    };
    match conn {
        DbConnection::Sqlite(c) => delete(
            "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE created_on < ? \
             AND NOT EXISTS (SELECT 1 FROM batches WHERE batches.job_id = jobs.id) ORDER BY id LIMIT ?)",
        )
        .execute(c),
        DbConnection::Pg(c) => delete(
            "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE created_on < $1 \
             AND NOT EXISTS (SELECT 1 FROM batches WHERE batches.job_id = jobs.id) ORDER BY id LIMIT $2)",
        )
        .execute(c),
    }
}
