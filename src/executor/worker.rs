//! The executor loop: claim, apply, repeat; sleep when the queue is empty or the
//! database is away; survive any failure of any batch.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{TimeDelta, Utc};
use diesel::QueryResult;

use super::apply::{apply_batch, fail_batch, ApplyOutcome, BatchSummary};
use super::completions::Completions;
use super::listener::spawn_listener;
use super::retention::{spawn_pruner, RetentionConfig};
use super::wakeup::Wakeup;
use crate::db::models::ClaimedBatch;
use crate::db::{batches, heartbeats, DbConnection, DbPool, WriteGate};
use crate::metrics::{executor_event, metrics, BatchLabels, RetailerLabels};
use crate::notify::Outbox;

/// How often an executor says it is alive; readers take one silent for three times this
/// long as gone.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);

/// Batches larger than this give the memory they used back to the system once applied.
const LARGE_BATCH_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// How often an idle executor looks at the queue without being woken.
    pub poll_interval: Duration,
    /// How long a claim lasts before another executor may take the batch over.
    pub lease: Duration,
    /// Attempts after which a batch is completed with 500 results.
    pub max_attempts: i32,
    /// Batches this process applies at once, each on its own thread and connection.
    pub workers: usize,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        ExecutorConfig {
            poll_interval: Duration::from_secs(1),
            lease: Duration::from_secs(60),
            max_attempts: 3,
            workers: 2,
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
    gate: WriteGate,
    completions: Completions,
    owner: String,
    /// Woken when this executor claims a batch, so an idle sibling looks for the next.
    siblings: Option<Wakeup>,
    outbox: Outbox,
    /// The batch claimed by the transaction that completed the last one (SQLite).
    claimed_ahead: Mutex<Option<ClaimedBatch>>,
}

impl Executor {
    /// An executor writing through `gate`, shared with the API of the same process, and
    /// telling the API's waiting requests of each batch it completes.
    pub fn new(
        pool: DbPool,
        config: ExecutorConfig,
        gate: WriteGate,
        completions: Completions,
    ) -> Self {
        let nanos = Utc::now().timestamp_subsec_nanos();
        let owner = format!("executor-{}-{nanos:08x}", std::process::id());
        Executor {
            pool,
            config,
            gate,
            completions,
            owner,
            siblings: None,
            outbox: Outbox::default(),
            claimed_ahead: Mutex::default(),
        }
    }

    /// Writes completed batches' events and emails to `outbox`.
    pub fn with_outbox(mut self, outbox: Outbox) -> Self {
        self.outbox = outbox;
        self
    }

    /// Claims and runs the oldest runnable batch, if any. A batch that fails or panics is
    /// released for another attempt, or completed with 500 results after the last one.
    pub fn run_once(&self) -> anyhow::Result<Step> {
        let mut conn = self.pool.get().context("no database connection")?;
        let ahead = self.claimed_ahead().take();
        let batch = match ahead {
            Some(batch) => batch,
            None => {
                let now = Utc::now().naive_utc();
                let lease_until = now + lease_delta(self.config.lease);
                let claimed = self
                    .gate
                    .executor_brief(|| {
                        batches::claim_next_batch(&mut conn, &self.owner, now, lease_until)
                    })
                    .context("claiming a batch failed")?;
                let Some(batch) = claimed else {
                    return Ok(Step::QueueEmpty);
                };
                self.claimed();
                batch
            }
        };
        if batch.attempts > self.config.max_attempts {
            let reason = format!("processing failed {} times", batch.attempts - 1);
            executor_event("final_failure");
            fail_batch(
                &mut conn,
                &self.gate,
                &self.outbox,
                &batch,
                &self.owner,
                &reason,
            )?;
            self.completions.notify();
            self.outbox.wake();
            log::error!("batch {} COMPLETE with 500 results: {reason}", batch.id);
            return Ok(Step::Processed(batch.id));
        }
        let started = Instant::now();
        let records = match batches::find_entities(&mut conn, batch.id) {
            Ok(Some(records)) => records,
            Ok(None) => return self.failed(batch, "the batch has no records stored"),
            Err(e) => return self.failed(batch, &format!("reading its records failed: {e}")),
        };
        let outcome = std::thread::scope(|scope| {
            // Other executors may take over a batch whose lease ran out: keep it fresh
            // while this one runs.
            let (finished, keeper_stop) = mpsc::channel::<()>();
            scope.spawn(|| self.keep_lease(batch.id, keeper_stop));
            let claim_next = self.gate.is_gated().then(|| lease_delta(self.config.lease));
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                apply_batch(
                    &mut conn,
                    &self.gate,
                    &self.outbox,
                    &batch,
                    &records,
                    &self.owner,
                    claim_next,
                )
            }));
            drop(finished);
            outcome
        });
        // A panic may have left the connection inside a transaction: the pool drops it.
        drop(conn);
        if records.len() > LARGE_BATCH_BYTES {
            drop(records);
            crate::startup::release_free_memory();
        }
        let failure = match outcome {
            Ok(Ok(ApplyOutcome::Completed(summary, next))) => {
                if let Some(next) = next {
                    self.claimed();
                    *self.claimed_ahead() = Some(*next);
                }
                self.completions.notify();
                self.outbox.wake();
                record_completion(&batch, &summary, started.elapsed());
                log::info!(
                    "batch {} COMPLETE: {} {} records, {} applied, {} rejected, {} skipped, {} ms (attempt {}, {} transactions)",
                    batch.id,
                    batch.api,
                    summary.records,
                    summary.applied,
                    summary.rejected,
                    summary.skipped,
                    started.elapsed().as_millis(),
                    batch.attempts,
                    summary.transactions
                );
                return Ok(Step::Processed(batch.id));
            }
            Ok(Ok(ApplyOutcome::LeaseLost)) => {
                executor_event("lease_lost");
                log::warn!(
                    "batch {}: lease lost to another executor, its open transaction rolled back",
                    batch.id
                );
                return Ok(Step::Processed(batch.id));
            }
            Ok(Err(e)) => format!("{e:#}"),
            Err(panic) => format!("panicked: {}", panic_message(&*panic)),
        };
        self.failed(batch, &failure)
    }

    /// Handles a failed attempt at `batch` (see [`Executor::after_failure`]).
    fn failed(&self, batch: ClaimedBatch, failure: &str) -> anyhow::Result<Step> {
        self.after_failure(&batch, failure)?;
        Ok(Step::Processed(batch.id))
    }

    fn claimed_ahead(&self) -> MutexGuard<'_, Option<ClaimedBatch>> {
        self.claimed_ahead.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a claim and lets an idle sibling look for the batch after it.
    fn claimed(&self) {
        executor_event("claim");
        if let Some(siblings) = &self.siblings {
            siblings.notify();
        }
    }

    /// Renews the lease on `batch_id` every third of the lease until `stop` hangs up.
    fn keep_lease(&self, batch_id: i64, stop: mpsc::Receiver<()>) {
        while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(self.config.lease / 3) {
            let until = Utc::now().naive_utc() + lease_delta(self.config.lease);
            let renewed =
                self.write_briefly(|conn| batches::renew_lease(conn, batch_id, &self.owner, until));
            match renewed {
                Ok(true) => executor_event("lease_renewal"),
                Ok(false) => {
                    // The batch completed a moment ago, or another executor took it over:
                    // the run itself reports a loss when its next write finds the lease gone.
                    log::debug!("batch {batch_id}: lease no longer held; renewals stop");
                    return;
                }
                Err(e) => log::warn!("batch {batch_id}: renewing the lease failed: {e:#}"),
            }
        }
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
            fail_batch(
                &mut conn,
                &self.gate,
                &self.outbox,
                batch,
                &self.owner,
                &reason,
            )?;
            self.completions.notify();
            self.outbox.wake();
        } else {
            executor_event("retry");
            log::warn!(
                "batch {} attempt {} failed: {failure}; will retry",
                batch.id,
                batch.attempts
            );
            self.gate
                .executor_brief(|| batches::release_batch(&mut conn, batch.id, &self.owner))
                .context("releasing the batch failed")?;
        }
        Ok(())
    }

    /// Runs `config.workers` loops, each on its own thread, until [`ExecutorHandle::stop`],
    /// with the retention pruner beside them and, on PostgreSQL (`listen_url`), a `LISTEN` for new batches.
    pub fn spawn(
        self,
        wakeup: Wakeup,
        listen_url: Option<String>,
        retention: RetentionConfig,
    ) -> ExecutorHandle {
        let stopping = Arc::new(AtomicBool::new(false));
        let pruner_sleep = Wakeup::default();
        let mut threads = vec![spawn_pruner(
            self.pool.clone(),
            self.gate.clone(),
            retention,
            pruner_sleep.clone(),
            stopping.clone(),
        )];
        if let Some(url) = listen_url {
            threads.push(spawn_listener(url, wakeup.clone(), stopping.clone()));
        }
        let workers = self.config.workers.max(1);
        for n in 0..workers {
            let worker = Executor {
                pool: self.pool.clone(),
                config: self.config.clone(),
                gate: self.gate.clone(),
                completions: self.completions.clone(),
                // Each worker holds its own leases: a batch under its owner is its own.
                owner: if workers == 1 {
                    self.owner.clone()
                } else {
                    format!("{}-{n}", self.owner)
                },
                siblings: (workers > 1).then(|| wakeup.clone()),
                outbox: self.outbox.clone(),
                claimed_ahead: Mutex::default(),
            };
            let stopping = stopping.clone();
            let wakeup = wakeup.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("executor-{n}"))
                    .spawn(move || worker.run_loop(&stopping, &wakeup))
                    .expect("can spawn an executor thread"),
            );
        }
        ExecutorHandle {
            stopping,
            wakeups: vec![wakeup, pruner_sleep],
            threads,
        }
    }

    fn run_loop(&self, stopping: &AtomicBool, wakeup: &Wakeup) {
        log::info!("executor {} started", self.owner);
        let mut backoff = Duration::from_millis(100);
        let mut last_beat: Option<Instant> = None;
        while !stopping.load(Ordering::SeqCst) {
            if last_beat.is_none_or(|t| t.elapsed() >= HEARTBEAT_INTERVAL) {
                match self.beat() {
                    Ok(()) => last_beat = Some(Instant::now()),
                    Err(e) => log::warn!("executor {}: heartbeat failed: {e:#}", self.owner),
                }
            }
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
        // Pass the stop on to a sibling still waiting on the shared wake-up.
        wakeup.notify();
        let ahead = self.claimed_ahead().take();
        if let Some(batch) = ahead {
            let returned =
                self.write_briefly(|conn| batches::unclaim_batch(conn, batch.id, &self.owner));
            if let Err(e) = returned {
                log::warn!(
                    "batch {}: handing it back unstarted failed: {e:#}",
                    batch.id
                );
            }
        }
        if let Ok(mut conn) = self.pool.get() {
            let _ = heartbeats::forget(&mut conn, &self.owner);
        }
        log::info!("executor {} stopped", self.owner);
    }

    /// Says this executor is alive (see `db::heartbeats`).
    fn beat(&self) -> anyhow::Result<()> {
        let now = Utc::now().naive_utc();
        self.write_briefly(|conn| heartbeats::beat(conn, &self.owner, now))
    }

    /// Runs a short write on a connection of its own, in its turn at the write gate.
    fn write_briefly<T>(
        &self,
        write: impl FnOnce(&mut DbConnection) -> QueryResult<T>,
    ) -> anyhow::Result<T> {
        let mut conn = self.pool.get().context("no database connection")?;
        Ok(self.gate.executor_brief(|| write(&mut conn))?)
    }
}

/// A running executor and its helper threads.
pub struct ExecutorHandle {
    stopping: Arc<AtomicBool>,
    wakeups: Vec<Wakeup>,
    threads: Vec<JoinHandle<()>>,
}

impl ExecutorHandle {
    /// Stops taking batches, lets the running one finish, and waits for the threads.
    pub fn stop(self) {
        self.stopping.store(true, Ordering::SeqCst);
        for wakeup in &self.wakeups {
            wakeup.notify();
        }
        for thread in self.threads {
            if thread.join().is_err() {
                log::error!("an executor thread panicked");
            }
        }
    }
}

/// Counts a completed batch's items and times in the metrics.
fn record_completion(batch: &ClaimedBatch, summary: &BatchSummary, took: Duration) {
    let m = metrics();
    let labels = BatchLabels {
        retailer: batch.retailer_id.clone(),
        api: batch.api.clone(),
    };
    m.batches_completed.get_or_create(&labels).inc();
    m.records_applied
        .get_or_create(&labels)
        .inc_by(summary.applied as u64);
    m.records_rejected
        .get_or_create(&labels)
        .inc_by((summary.rejected + summary.skipped) as u64);
    m.records_unchanged
        .get_or_create(&labels)
        .inc_by(summary.unchanged as u64);
    if batch.preprocessing != 0 {
        let retailer = RetailerLabels {
            retailer: batch.retailer_id.clone(),
        };
        let run = summary.applied + summary.rejected + summary.skipped;
        m.bpp_processed.get_or_create(&retailer).inc_by(run as u64);
        m.bpp_unchanged
            .get_or_create(&retailer)
            .inc_by(summary.unchanged as u64);
    }
    m.apply_seconds.observe(took.as_secs_f64());
    let waited = Utc::now().naive_utc() - batch.created_on;
    m.completion_seconds
        .observe(waited.num_milliseconds().max(0) as f64 / 1000.0);
}

fn lease_delta(lease: Duration) -> TimeDelta {
    TimeDelta::from_std(lease).unwrap_or(TimeDelta::minutes(1))
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}
