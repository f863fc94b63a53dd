//! The dispatchers: threads of the executor role that claim due deliveries and emails under
//! a lease, send them, and record how each attempt ended — retrying with exponential
//! backoff and jitter until the retry window closes. Each thread has its own connection
//! checkouts (never held while sending) and a short send timeout, so a slow or dead
//! receiver holds up one thread for one timeout and never a batch; a subscription has at
//! most one delivery in flight, so it cannot take every thread either.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use chrono::{NaiveDateTime, TimeDelta, Utc};

use super::email::{compose, EmailSender};
use super::sealing::Sealer;
use super::webhooks::WebhookSender;
use super::NotifyConfig;
use crate::db::notifications::{self, Attempt};
use crate::db::{DbPool, WriteGate};
use crate::executor::Wakeup;
use crate::metrics::notification_attempt;

#[derive(Clone)]
pub struct Dispatcher {
    pool: DbPool,
    gate: WriteGate,
    config: NotifyConfig,
    key: Arc<Sealer>,
    /// Woken when webhook events and emails are written by this process.
    webhooks: Wakeup,
    emails: Wakeup,
    owner: String,
}

/// Running dispatcher threads.
pub struct DispatcherHandle {
    stopping: Arc<AtomicBool>,
    wakeups: Vec<Wakeup>,
    threads: Vec<JoinHandle<()>>,
}

impl DispatcherHandle {
    /// Stops after the attempts in flight and waits for the threads.
    pub fn stop(self) {
        self.stopping.store(true, Ordering::SeqCst);
        for wakeup in &self.wakeups {
            wakeup.notify();
        }
        for thread in self.threads {
            if thread.join().is_err() {
                log::error!("a dispatcher thread panicked");
            }
        }
    }
}

impl Dispatcher {
    pub fn new(
        pool: DbPool,
        gate: WriteGate,
        config: NotifyConfig,
        key: Arc<Sealer>,
        webhooks: Wakeup,
        emails: Wakeup,
    ) -> Self {
        let nanos = Utc::now().timestamp_subsec_nanos();
        Dispatcher {
            pool,
            gate,
            config,
            key,
            webhooks,
            emails,
            owner: format!("dispatcher-{}-{nanos:08x}", std::process::id()),
        }
    }

    /// Starts the webhook threads, and the email thread when a relay is configured.
    pub fn spawn(self) -> anyhow::Result<DispatcherHandle> {
        let stopping = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for n in 0..self.config.webhook_workers.max(1) {
            let (me, stopping) = (self.clone(), stopping.clone());
            threads.push(
                std::thread::Builder::new()
                    .name(format!("webhooks-{n}"))
                    .spawn(move || me.webhook_loop(&format!("{}-{n}", me.owner), &stopping))?,
            );
        }
        if let Some(relay) = &self.config.smtp {
            let sender = EmailSender::new(relay, self.config.send_timeout)?;
            let (me, stopping) = (self.clone(), stopping.clone());
            threads.push(
                std::thread::Builder::new()
                    .name("emails".to_owned())
                    .spawn(move || me.email_loop(&sender, &stopping))?,
            );
        }
        Ok(DispatcherHandle {
            stopping,
            wakeups: vec![self.webhooks, self.emails],
            threads,
        })
    }

    fn webhook_loop(&self, owner: &str, stopping: &AtomicBool) {
        let sender = match WebhookSender::new(
            self.key.clone(),
            self.config.send_timeout,
            self.config.allow_private_destinations,
        ) {
            Ok(sender) => sender,
            Err(e) => {
                log::error!("webhooks cannot be sent: {e:#}");
                return;
            }
        };
        self.run(stopping, &self.webhooks, || {
            self.deliver_once(&sender, owner)
        });
    }

    fn email_loop(&self, sender: &EmailSender, stopping: &AtomicBool) {
        let owner = format!("{}-email", self.owner);
        self.run(stopping, &self.emails, || self.email_once(sender, &owner));
    }

    /// Repeats `step` while it finds work, waits when it finds none, backs off on errors.
    fn run(
        &self,
        stopping: &AtomicBool,
        wakeup: &Wakeup,
        mut step: impl FnMut() -> anyhow::Result<bool>,
    ) {
        let mut backoff = Duration::from_millis(100);
        while !stopping.load(Ordering::SeqCst) {
            match step() {
                Ok(true) => backoff = Duration::from_millis(100),
                Ok(false) => wakeup.wait(self.config.poll_interval),
                Err(e) => {
                    log::warn!("dispatcher: {e:#}; retrying in {} ms", backoff.as_millis());
                    wakeup.wait(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
        // Pass the stop on to a sibling waiting on the same wake-up.
        wakeup.notify();
    }

    fn lease_until(&self, now: NaiveDateTime) -> NaiveDateTime {
        now + TimeDelta::from_std(self.config.lease).unwrap_or(TimeDelta::seconds(30))
    }

    /// Sends one due delivery, if any; whether there was one.
    fn deliver_once(&self, sender: &WebhookSender, owner: &str) -> anyhow::Result<bool> {
        let now = Utc::now().naive_utc();
        let mut conn = self.pool.get().context("no database connection")?;
        if !notifications::delivery_due(&mut conn, now)? {
            return Ok(false);
        }
        let claimed = self.gate.executor_brief(|| {
            notifications::claim_delivery(&mut conn, owner, now, self.lease_until(now))
        })?;
        drop(conn);
        let Some(delivery) = claimed else {
            return Ok(false);
        };
        // A sibling looks for the next one meanwhile.
        self.webhooks.notify();
        let sent = sender.send(&delivery);
        let done = Utc::now().naive_utc();
        let attempt = match &sent {
            Ok(status) => Attempt::Done {
                status: Some(*status),
            },
            Err(failure) => self.after_failure(
                failure.status,
                &failure.error,
                failure.permanent,
                delivery.attempts,
                done,
                delivery.retry_until,
            ),
        };
        let mut conn = self.pool.get().context("no database connection")?;
        let recorded = self.gate.executor_brief(|| {
            notifications::record_delivery(&mut conn, delivery.id, owner, &attempt, done)
        })?;
        if !recorded {
            log::warn!(
                "delivery {}: its lease ran out while sending; another dispatcher may send it again",
                delivery.id
            );
            return Ok(true);
        }
        match &attempt {
            Attempt::Done { .. } => {
                notification_attempt("webhook", "sent");
                if delivery.attempts > 1 {
                    // The receiver is back: its waiting deliveries need not wait out their backoff.
                    self.gate.executor_brief(|| {
                        notifications::hurry_subscription(&mut conn, delivery.subscription_id, done)
                    })?;
                }
            }
            Attempt::Retry { error, .. } => {
                notification_attempt("webhook", "retried");
                log::info!(
                    "delivery {} of event {} (attempt {}): {error}; will retry",
                    delivery.id,
                    delivery.event_id,
                    delivery.attempts
                );
            }
            Attempt::Failed { error, .. } => {
                notification_attempt("webhook", "failed");
                log::warn!(
                    "delivery {} of event {} failed for good: {error}",
                    delivery.id,
                    delivery.event_id
                );
            }
        }
        Ok(true)
    }

    /// Sends one due email, if any; whether there was one.
    fn email_once(&self, sender: &EmailSender, owner: &str) -> anyhow::Result<bool> {
        let now = Utc::now().naive_utc();
        let mut conn = self.pool.get().context("no database connection")?;
        if !notifications::email_due(&mut conn, now)? {
            return Ok(false);
        }
        let Some(email) = self.gate.executor_brief(|| {
            notifications::claim_email(&mut conn, owner, now, self.lease_until(now))
        })?
        else {
            return Ok(false);
        };
        let composed = compose(&mut conn, email.batch_id, self.config.failed_items_in_email)?;
        drop(conn);
        let sent = match &composed {
            Some(composed) => sender.send(&email.recipient, composed),
            None => Err("the batch was pruned before its email was sent".to_owned()),
        };
        let done = Utc::now().naive_utc();
        let attempt = match sent {
            Ok(()) => Attempt::Done { status: None },
            Err(error) => self.after_failure(
                None,
                &error,
                composed.is_none(),
                email.attempts,
                done,
                email.retry_until,
            ),
        };
        let mut conn = self.pool.get().context("no database connection")?;
        self.gate.executor_brief(|| {
            notifications::record_email(&mut conn, email.id, owner, &attempt, done)
        })?;
        match &attempt {
            Attempt::Done { .. } => notification_attempt("email", "sent"),
            Attempt::Retry { error, .. } => {
                notification_attempt("email", "retried");
                log::info!("email about batch {}: {error}; will retry", email.batch_id);
            }
            Attempt::Failed { error, .. } => {
                notification_attempt("email", "failed");
                log::warn!(
                    "email about batch {} failed for good: {error}",
                    email.batch_id
                );
            }
        }
        Ok(true)
    }

    /// A retry after the backoff for `attempts`, unless that passes `retry_until`.
    fn after_failure(
        &self,
        status: Option<i32>,
        error: &str,
        permanent: bool,
        attempts: i32,
        now: NaiveDateTime,
        retry_until: NaiveDateTime,
    ) -> Attempt {
        let error = bounded(error);
        if !permanent {
            let at = now + backoff(&self.config, attempts, OsRng.next_u64());
            if at <= retry_until {
                return Attempt::Retry { at, status, error };
            }
        }
        Attempt::Failed {
            status,
            error: format!("{error} (gave up after {attempts} attempts)"),
        }
    }
}

/// The wait after the `attempts`-th failure: `first_retry` doubled each time, at most
/// `max_retry_delay`, then drawn at random from its upper half (jitter, so receivers
/// coming back are not hit by every retry at once).
fn backoff(config: &NotifyConfig, attempts: i32, random: u64) -> TimeDelta {
    let doublings = attempts.saturating_sub(1).clamp(0, 30) as u32;
    let full = config
        .first_retry
        .saturating_mul(1u32 << doublings.min(31))
        .min(config.max_retry_delay);
    let half = full / 2;
    let jitter = Duration::from_nanos(random % (half.as_nanos().max(1) as u64));
    TimeDelta::from_std(half + jitter).unwrap_or(TimeDelta::hours(1))
}

/// Error texts are kept short.
fn bounded(error: &str) -> String {
    match error.char_indices().nth(500) {
        Some((end, _)) => format!("{}…", &error[..end]),
        None => error.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_its_cap() {
        let mut config = NotifyConfig::new("sqlite://x.db");
        config.first_retry = Duration::from_secs(10);
        config.max_retry_delay = Duration::from_secs(3600);
        let secs = |attempts, random| backoff(&config, attempts, random).num_milliseconds();
        assert_eq!(secs(1, 0), 5_000);
        assert!(secs(1, u64::MAX) < 10_000);
        assert_eq!(secs(2, 0), 10_000);
        assert_eq!(secs(3, 0), 20_000);
        assert_eq!(secs(20, 0), 1_800_000);
        assert!(secs(100, u64::MAX) < 3_600_000);
        let draws: std::collections::HashSet<_> = (0..20u64)
            .map(|r| secs(4, r.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
            .collect();
        assert!(draws.len() > 10, "jitter spreads retries: {draws:?}");
    }

    #[test]
    fn long_errors_are_cut_on_a_character_boundary() {
        let long = "é".repeat(800);
        let cut = bounded(&long);
        assert_eq!(cut.chars().count(), 501);
        assert_eq!(bounded("short"), "short");
    }
}
