//! Retention: COMPLETE batches (with their results) older than the retention period are
//! deleted in bounded chunks on a schedule, then the jobs left without batches.
//! Expired tokens go too. Inventory positions are never pruned.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use chrono::{TimeDelta, Utc};

use super::wakeup::Wakeup;
use crate::db::{accounts, batches, jobs, tokens, DbPool, WriteGate};

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
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            keep: Duration::from_secs(7 * 24 * 3600),
            interval: Duration::from_secs(3600),
            chunk: 10,
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
}

/// Deletes everything past retention, one chunk per statement, so no statement holds
/// locks for long. Stops early when `stopping` is set.
pub fn prune(
    pool: &DbPool,
    gate: &WriteGate,
    config: &RetentionConfig,
    stopping: &AtomicBool,
) -> anyhow::Result<PruneReport> {
    let cutoff =
        Utc::now().naive_utc() - TimeDelta::from_std(config.keep).unwrap_or(TimeDelta::MAX);
    let mut report = PruneReport::default();
    loop {
        let mut conn = pool.get().context("no database connection")?;
        let deleted = gate.executor(|| {
            batches::delete_completed_batches_before(&mut conn, cutoff, config.chunk)
        })?;
        report.batches += deleted;
        if deleted < config.chunk as usize || stopping.load(Ordering::SeqCst) {
            break;
        }
    }
    loop {
        let mut conn = pool.get().context("no database connection")?;
        let deleted = gate
            .executor(|| jobs::delete_empty_jobs_before(&mut conn, cutoff, config.chunk * 100))?;
        report.jobs += deleted;
        if deleted < (config.chunk * 100) as usize || stopping.load(Ordering::SeqCst) {
            break;
        }
    }
    let mut conn = pool.get().context("no database connection")?;
    let now = Utc::now().naive_utc();
    report.tokens = gate.executor(|| tokens::delete_expired_tokens(&mut conn, now))?;
    loop {
        let deleted = gate.executor(|| {
            accounts::delete_login_failures_before(
                &mut conn,
                now - LOGIN_FAILURES_KEPT,
                config.chunk * 100,
            )
        })?;
        report.login_failures += deleted;
        if deleted < (config.chunk * 100) as usize || stopping.load(Ordering::SeqCst) {
            break;
        }
    }
    Ok(report)
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
