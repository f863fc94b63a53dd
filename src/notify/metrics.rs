//! Counters of this process's deliveries and emails, for the metrics endpoint; the queue's
//! age comes from the database (every node's deliveries).

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::NaiveDateTime;
use diesel::QueryResult;

use crate::db::{notifications, DbConnection};

#[derive(Default)]
pub struct NotifyMetrics {
    /// Webhook deliveries a receiver took (2xx).
    pub deliveries_sent: AtomicU64,
    /// Attempts that failed and will be tried again.
    pub deliveries_retried: AtomicU64,
    /// Deliveries given up on (retry window over, or a refused destination).
    pub deliveries_failed: AtomicU64,
    pub emails_sent: AtomicU64,
    pub emails_retried: AtomicU64,
    pub emails_failed: AtomicU64,
}

pub static METRICS: NotifyMetrics = NotifyMetrics {
    deliveries_sent: AtomicU64::new(0),
    deliveries_retried: AtomicU64::new(0),
    deliveries_failed: AtomicU64::new(0),
    emails_sent: AtomicU64::new(0),
    emails_retried: AtomicU64::new(0),
    emails_failed: AtomicU64::new(0),
};

pub(super) fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Seconds the oldest undelivered event has waited, or 0 with none waiting.
pub fn delivery_queue_age(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<f64> {
    Ok(notifications::oldest_pending_delivery(conn)?
        .map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1000.0))
}
