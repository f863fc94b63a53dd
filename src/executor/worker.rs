//! The executor loop: claim, apply, repeat; sleep when the queue is empty or the
//! database is away; survive any failure of any batch.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{TimeDelta, Utc};

use super::apply::{apply_batch, fail_batch, ApplyOutcome};
use super::wakeup::Wakeup;
use crate::db::models::ClaimedBatch;
use crate::db::{batches, jobs, DbPool};

#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// How often an idle executor looks at the queue without being woken.
    pub poll_interval: Duration,
    /// How long a claim lasts before another executor may take the batch over.
    pub lease: Duration,
    /// Attempts after which a batch is completed with 500 results.
    pub max_attempts: i32,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        ExecutorConfig {
            poll_interval: Duration::from_secs(1),
            lease: Duration::from_secs(60),
            max_attempts: 3,
        }
    }
}

/// What one step of the executor did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Processed(i64),
    QueueEmpty,
}

pub struct Executor {
    pool: DbPool,
    config: ExecutorConfig,
    owner: String,
}

impl Executor {
    pub fn new(pool: DbPool, config: ExecutorConfig) -> Self {
        let nanos = Utc::now().timestamp_subsec_nanos();
        let owner = format!("executor-{}-{nanos:08x}", std::process::id());
        Executor {
            pool,
            config,
            owner,
        }
    }

    /// Claims and runs the oldest runnable batch, if any. A batch that fails or panics is
    /// released for another attempt, or completed with 500 results after the last one.
    pub fn run_once(&self) -> anyhow::Result<Step> {
        let mut conn = self.pool.get().context("no database connection")?;
        let now = Utc::now().naive_utc();
        let lease_until =
            now + TimeDelta::from_std(self.config.lease).unwrap_or(TimeDelta::minutes(1));
        let Some(batch) = batches::claim_next_batch(&mut conn, &self.owner, now, lease_until)
            .context("claiming a batch failed")?
        else {
            return Ok(Step::QueueEmpty);
        };
        if batch.attempts > self.config.max_attempts {
            let reason = format!("processing failed {} times", batch.attempts - 1);
            fail_batch(&mut conn, &batch, &self.owner, &reason)?;
            log::error!("batch {} COMPLETE with 500 results: {reason}", batch.id);
            return Ok(Step::Processed(batch.id));
        }
        let started = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let job =
                jobs::find_job(&mut conn, batch.job_id)?.context("the batch's job is gone")?;
            apply_batch(&mut conn, &batch, &job.retailer_id, &self.owner)
        }));
        // A panic may have left the connection inside a transaction: the pool drops it.
        drop(conn);
        let failure = match outcome {
            Ok(Ok(ApplyOutcome::Completed(summary))) => {
                log::info!(
                    "batch {} COMPLETE: {} records, {} applied, {} rejected, {} ms (attempt {})",
                    batch.id,
                    summary.records,
                    summary.applied,
                    summary.rejected,
                    started.elapsed().as_millis(),
                    batch.attempts
                );
                return Ok(Step::Processed(batch.id));
            }
            Ok(Ok(ApplyOutcome::LeaseLost)) => {
                log::warn!(
                    "batch {}: lease lost to another executor, its work discarded",
                    batch.id
                );
                return Ok(Step::Processed(batch.id));
            }
            Ok(Err(e)) => format!("{e:#}"),
            Err(panic) => format!("panicked: {}", panic_message(&*panic)),
        };
        self.after_failure(&batch, &failure)?;
        Ok(Step::Processed(batch.id))
    }

    fn after_failure(&self, batch: &ClaimedBatch, failure: &str) -> anyhow::Result<()> {
        let mut conn = self.pool.get().context("no database connection")?;
        if batch.attempts >= self.config.max_attempts {
            log::error!(
                "batch {} attempt {} failed: {failure}; giving up",
                batch.id,
                batch.attempts
            );
            let reason = format!("processing failed {} times", batch.attempts);
            fail_batch(&mut conn, batch, &self.owner, &reason)?;
        } else {
            log::warn!(
                "batch {} attempt {} failed: {failure}; will retry",
                batch.id,
                batch.attempts
            );
            batches::release_batch(&mut conn, batch.id, &self.owner)
                .context("releasing the batch failed")?;
        }
        Ok(())
    }

    /// Runs the loop on its own thread until [`ExecutorHandle::stop`].
    pub fn spawn(self, wakeup: Wakeup) -> ExecutorHandle {
        let stopping = Arc::new(AtomicBool::new(false));
        let thread = {
            let stopping = stopping.clone();
            let wakeup = wakeup.clone();
            std::thread::Builder::new()
                .name("executor".into())
                .spawn(move || self.run_loop(&stopping, &wakeup))
                .expect("can spawn the executor thread")
        };
        ExecutorHandle {
            stopping,
            wakeup,
            thread,
        }
    }

    fn run_loop(&self, stopping: &AtomicBool, wakeup: &Wakeup) {
        log::info!("executor {} started", self.owner);
        let mut backoff = Duration::from_millis(100);
        while !stopping.load(Ordering::SeqCst) {
            match self.run_once() {
                Ok(Step::Processed(_)) => backoff = Duration::from_millis(100),
                Ok(Step::QueueEmpty) => wakeup.wait(self.config.poll_interval),
                Err(e) => {
                    log::error!("executor: {e:#}; retrying in {} ms", backoff.as_millis());
                    wakeup.wait(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
        log::info!("executor {} stopped", self.owner);
    }
}

/// A running executor thread.
pub struct ExecutorHandle {
    stopping: Arc<AtomicBool>,
    wakeup: Wakeup,
    thread: JoinHandle<()>,
}

impl ExecutorHandle {
    /// Stops taking batches, lets the running one finish, and waits for the thread.
    pub fn stop(self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.wakeup.notify();
        if self.thread.join().is_err() {
            log::error!("the executor thread panicked");
        }
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}
