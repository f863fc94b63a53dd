//! Jobs: the containers batches are posted to.

use diesel::prelude::*;

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
