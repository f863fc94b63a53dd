//! Retention: COMPLETE batches (with their results) older than the retention period are
//! deleted in bounded chunks on a schedule, then the jobs left without batches.
//! Expired tokens go too, and finished webhook deliveries and emails. Inventory positions are never pruned.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use chrono::{TimeDelta, Utc};

use super::wakeup::Wakeup;
use crate::db::{
    accounts, batches, heartbeats, idempotency, jobs, notifications, tokens, DbPool, WriteGate,
};

/// Failed-login counters untouched this long are forgotten (locks last at most 15 minutes).
const LOGIN_FAILURES_KEPT: TimeDelta = TimeDelta::hours(1);

#[derive(Debug, Clone)]
pub struct RetentionConfig {
    /// How long batches and their results are kept.
    pub keep: Duration,
    /// How often pruning runs.
    pub interval: Duration,
    /// Batches deleted per statement (each with up to 5000 results).
    pub chunk: i64,
    /// How long Idempotency-Key answers are kept.
    pub idempotency_ttl: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            keep: Duration::from_secs(7 * 24 * 3600),
            interval: Duration::from_secs(3600),
            chunk: 10,
            idempotency_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PruneReport {
    pub batches: usize,
    pub jobs: usize,
    /// Expired access and refresh tokens.
    pub tokens: usize,
    /// Failed-login counters past [`LOGIN_FAILURES_KEPT`].
    pub login_failures: usize,
    /// Idempotency-Key answers past their time.
    pub idempotency_keys: usize,
    /// Finished webhook deliveries and emails (and their events) past retention.
    pub notifications: usize,
}

/// Deletes everything past retention, one chunk per statement, so no statement holds
/// locks for long. Stops early when `stopping` is set.
pub fn prune(
    pool: &DbPool,
    gate: &WriteGate,
    config: &RetentionConfig,
    stopping: &AtomicBool,
) -> anyhow::Result<PruneReport> {
    let now = Utc::now().naive_utc();
    let cutoff = now - TimeDelta::from_std(config.keep).unwrap_or(TimeDelta::MAX);
    let rows = config.chunk * 100;
    let keys_cutoff = now - TimeDelta::from_std(config.idempotency_ttl).unwrap_or(TimeDelta::MAX);
    // A connection per statement, so none is held between chunks.
    let conn = || pool.get().context("no database connection");
    let mut batches = delete_in_chunks(config.chunk, stopping, || {
        let mut conn = conn()?;
        Ok(gate.executor(|| {
            batches::delete_completed_batches_before(&mut conn, cutoff, config.chunk, None)
        })?)
    })?;
    for (retailer, days) in accounts::list_retention_overrides(&mut *conn()?)? {
        let cutoff = now - TimeDelta::days(days.into());
        batches += delete_in_chunks(config.chunk, stopping, || {
            let mut conn = conn()?;
            Ok(gate.executor(|| {
                batches::delete_completed_batches_before(
                    &mut conn,
                    cutoff,
                    config.chunk,
                    Some(&retailer),
                )
            })?)
        })?;
    }
    let jobs = delete_in_chunks(rows, stopping, || {
        let mut conn = conn()?;
        Ok(gate.executor(|| jobs::delete_empty_jobs_before(&mut conn, cutoff, rows))?)
    })?;
    let tokens = {
        let mut conn = conn()?;
        gate.executor(|| tokens::delete_expired_tokens(&mut conn, now))?
    };
    let login_failures = delete_in_chunks(rows, stopping, || {
        let mut conn = conn()?;
        Ok(gate.executor(|| {
            accounts::delete_login_failures_before(&mut conn, now - LOGIN_FAILURES_KEPT, rows)
        })?)
    })?;
    let idempotency_keys = delete_in_chunks(rows, stopping, || {
        let mut conn = conn()?;
        Ok(gate.executor(|| idempotency::delete_answers_before(&mut conn, keys_cutoff, rows))?)
    })?;
    let notifications = delete_in_chunks(rows, stopping, || {
        let mut conn = conn()?;
        Ok(gate.executor(|| notifications::delete_finished_before(&mut conn, cutoff, rows))?)
    })?;
    let gone = now - TimeDelta::days(1);
    {
        let mut conn = conn()?;
        gate.executor(|| heartbeats::delete_beats_before(&mut conn, gone))?;
    }
    Ok(PruneReport {
        batches,
        jobs,
        tokens,
        login_failures,
        idempotency_keys,
        notifications,
    })
}

/// Runs a bounded delete until it deletes fewer than `chunk` rows; returns the total.
fn delete_in_chunks(
    chunk: i64,
    stopping: &AtomicBool,
    mut delete: impl FnMut() -> anyhow::Result<usize>,
) -> anyhow::Result<usize> {
    let mut total = 0;
    loop {
        let deleted = delete()?;
        total += deleted;
        if deleted < chunk as usize || stopping.load(Ordering::SeqCst) {
            return Ok(total);
        }
    }
}

pub fn spawn_pruner(
    pool: DbPool,
    gate: WriteGate,
    config: RetentionConfig,
    sleeper: Wakeup,
    stopping: Arc<AtomicBool>,
) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("retention".into())
        .spawn(move || {
            while !stopping.load(Ordering::SeqCst) {
                match prune(&pool, &gate, &config, &stopping) {
                    Ok(report) if report != PruneReport::default() => {
                        log::info!(
                            "retention: pruned {} batches and {} jobs",
                            report.batches,
                            report.jobs
                        )
                    }
                    Ok(_) => {}
                    Err(e) => log::warn!("retention: {e:#}"),
                }
                sleeper.wait(config.interval);
            }
        })
        .expect("can spawn the retention thread")
}
