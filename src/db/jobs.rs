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

/// Which jobs a listing shows; `None` matches every one.
#[derive(Debug, Default, Clone)]
pub struct JobFilter {
    pub retailer_id: Option<String>,
    /// `Some(true)`: only jobs still open at `now`; `Some(false)`: only closed ones.
    pub open: Option<bool>,
}

macro_rules! filtered_jobs {
    ($filter:expr, $now:expr) => {{
        let mut query = jobs::table.into_boxed();
        if let Some(v) = &$filter.retailer_id {
            query = query.filter(jobs::retailer_id.eq(v.clone()));
        }
        // Open as `domain::job::job_status` has it: not closed by now, and created today
        // (UTC); jobs close at midnight.
        let midnight = $now.date().and_hms_opt(0, 0, 0).expect("midnight exists");
        let open = jobs::closed_on
            .is_null()
            .or(jobs::closed_on.gt($now))
            .and(jobs::created_on.ge(midnight));
        match $filter.open {
            Some(true) => query = query.filter(open),
            Some(false) => query = query.filter(diesel::dsl::not(open)),
            None => {}
        }
        query
    }};
}

/// One page of jobs, newest first, and how many match in all.
pub fn list_jobs(
    conn: &mut DbConnection,
    filter: &JobFilter,
    now: NaiveDateTime,
    offset: i64,
    limit: i64,
) -> QueryResult<(Vec<Job>, i64)> {
    let total = filtered_jobs!(filter, now).count().get_result(conn)?;
    let page = filtered_jobs!(filter, now)
        .order(jobs::id.desc())
        .offset(offset)
        .limit(limit)
        .select(Job::as_select())
        .load(conn)?;
    Ok((page, total))
}

/// What one job's batches of one status add up to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchTally {
    pub job_id: i64,
    pub status: String,
    pub batches: i64,
    /// COMPLETE with at least one record not applied (cancelled ones included).
    pub failed: i64,
    pub cancelled: i64,
    pub records: i64,
    pub processed: i64,
    pub applied: i64,
    pub rejected: i64,
    pub unchanged: i64,
}

/// The batches of `job_ids` added up by job and status: two grouped reads over the
/// `batches_job_id` index, however many batches the jobs hold.
pub fn tally_job_batches(conn: &mut DbConnection, job_ids: &[i64]) -> QueryResult<Vec<BatchTally>> {
    use super::models::COMPLETE;
    use super::schema::batches;
    use diesel::dsl::{count_star, sum};
    if job_ids.is_empty() {
        return Ok(Vec::new());
    }
    type Row = (
        Option<i64>,
        String,
        i64,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
    );
    let rows: Vec<Row> = batches::table
        .filter(batches::job_id.eq_any(job_ids))
        .group_by((batches::job_id, batches::status))
        .select((
            batches::job_id,
            batches::status,
            count_star(),
            sum(batches::cancelled),
            sum(batches::record_count),
            sum(batches::processed_count),
            sum(batches::applied_count),
            sum(batches::rejected_count),
            sum(batches::unchanged_count),
        ))
        .load(conn)?;
    let failed: Vec<(Option<i64>, i64)> = batches::table
        .filter(batches::job_id.eq_any(job_ids))
        .filter(batches::status.eq(COMPLETE))
        .filter(batches::rejected_count.gt(0))
        .group_by(batches::job_id)
        .select((batches::job_id, count_star()))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(
            |(
                job_id,
                status,
                batches,
                cancelled,
                records,
                processed,
                applied,
                rejected,
                unchanged,
            )| {
                let job_id = job_id?;
                let failed = if status == COMPLETE {
                    failed
                        .iter()
                        .find(|(j, _)| *j == Some(job_id))
                        .map_or(0, |(_, n)| *n)
                } else {
                    0
                };
                Some(BatchTally {
                    job_id,
                    status,
                    batches,
                    failed,
                    cancelled: cancelled.unwrap_or(0),
                    records: records.unwrap_or(0),
                    processed: processed.unwrap_or(0),
                    applied: applied.unwrap_or(0),
                    rejected: rejected.unwrap_or(0),
                    unchanged: unchanged.unwrap_or(0),
                })
            },
        )
        .collect())
}
