//! What the dashboard reads of the queue: how full it is now, and per minute since a time
//! the batches accepted and completed, with their records. Grouped in SQL, so a read costs
//! an index range of the hour's batches and returns at most one row a minute.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_query;
use diesel::sql_types::{BigInt, Text, Timestamp};

use super::models::{COMPLETE, PENDING};
use super::schema::batches;
use super::sql::numbered_for_sqlite;
use super::DbConnection;
use crate::domain::activity::MinuteCounts;

/// The unfinished part of the queue, of one retailer or of all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    pub pending: i64,
    pub running: i64,
    pub pending_records: i64,
    pub running_records: i64,
    pub oldest_pending: Option<NaiveDateTime>,
}

pub fn queue_depth(conn: &mut DbConnection, retailer: Option<&str>) -> QueryResult<QueueDepth> {
    use diesel::dsl::{count_star, min, sum};
    let unfinished = batches::table.filter(batches::status.ne(COMPLETE));
    let columns = (
        batches::status,
        count_star(),
        sum(batches::record_count),
        min(batches::created_on),
    );
    let rows: Vec<(String, i64, Option<i64>, Option<NaiveDateTime>)> = match retailer {
        Some(retailer) => unfinished
            .filter(batches::retailer_id.eq(retailer))
            .group_by(batches::status)
            .select(columns)
            .load(conn)?,
        None => unfinished
            .group_by(batches::status)
            .select(columns)
            .load(conn)?,
    };
    let mut depth = QueueDepth::default();
    for (status, count, records, oldest) in rows {
        if status == PENDING {
            depth.pending = count;
            depth.pending_records = records.unwrap_or(0);
            depth.oldest_pending = oldest;
        } else {
            depth.running += count;
            depth.running_records += records.unwrap_or(0);
        }
    }
    Ok(depth)
}

#[derive(QueryableByName)]
struct MinuteRow {
    #[diesel(sql_type = Text)]
    minute: String,
    #[diesel(sql_type = BigInt)]
    batches: i64,
    #[diesel(sql_type = BigInt)]
    records: i64,
    #[diesel(sql_type = BigInt)]
    applied: i64,
    #[diesel(sql_type = BigInt)]
    rejected: i64,
}

/// Which timestamp [`per_minute`] groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// `created_on` (the `batches_created_on` index).
    Accepted,
    /// `completed_on` (the `batches_completed_on` index).
    Completed,
}

/// Batches accepted, or completed, per minute from `since` on, of `retailer` or of all;
/// minutes without any are left out.
pub fn per_minute(
    conn: &mut DbConnection,
    event: Event,
    since: NaiveDateTime,
    retailer: Option<&str>,
) -> QueryResult<Vec<MinuteCounts>> {
    let column = match event {
        Event::Accepted => "created_on",
        Event::Completed => "completed_on",
    };
    let of_retailer = if retailer.is_some() {
        " AND retailer_id = $2"
    } else {
        ""
    };
    let sql = |minute: String| {
        format!(
            "SELECT {minute} AS minute, COUNT(*) AS batches, \
             COALESCE(SUM(record_count), 0) AS records, \
             COALESCE(SUM(applied_count), 0) AS applied, \
             COALESCE(SUM(rejected_count), 0) AS rejected \
             FROM batches WHERE {column} >= $1{of_retailer} GROUP BY 1"
        )
    };
    let rows: Vec<MinuteRow> = match conn {
        DbConnection::Sqlite(c) => {
            let text =
                numbered_for_sqlite(&sql(format!("strftime('%Y-%m-%d %H:%M:00', {column})")));
            let query = sql_query(text).bind::<Timestamp, _>(since);
            match retailer {
                Some(r) => query.bind::<Text, _>(r).load(c)?,
                None => query.load(c)?,
            }
        }
        DbConnection::Pg(c) => {
            let text = sql(format!(
                "to_char(date_trunc('minute', {column}), 'YYYY-MM-DD HH24:MI:SS')"
            ));
            let query = sql_query(text).bind::<Timestamp, _>(since);
            match retailer {
                Some(r) => query.bind::<Text, _>(r).load(c)?,
                None => query.load(c)?,
            }
        }
    };
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let minute = NaiveDateTime::parse_from_str(&r.minute, "%Y-%m-%d %H:%M:%S").ok()?;
            Some(MinuteCounts {
                minute,
                batches: r.batches,
                records: r.records,
                applied: r.applied,
                rejected: r.rejected,
            })
        })
        .collect())
}
