//! Notifications: events written to an outbox in the transaction of the change they
//! describe, then delivered by dispatchers in the executor role as signed webhooks and as
//! emails about batches.

mod destination;
mod dispatcher;
mod email;
pub mod events;
mod sealing;
pub mod signing;
mod webhooks;

use std::path::PathBuf;
use std::time::Duration;

use chrono::{NaiveDateTime, TimeDelta};
use diesel::QueryResult;

pub use destination::{check_destination, DestinationError};
pub use dispatcher::{Dispatcher, DispatcherHandle};
pub use events::JobClosed;
pub use sealing::{new_webhook_secret, KeySource, Sealer, SealingKey};

use crate::db::{notifications, DbConnection};
use crate::executor::Wakeup;

/// An SMTP relay: `smtp://[user:pass@]host[:port][?tls=required]` (STARTTLS), or
/// `smtps://...` (TLS from the start), and the sender's address.
#[derive(Clone)]
pub struct SmtpRelay {
    pub url: String,
    pub from: String,
}

impl std::fmt::Debug for SmtpRelay {
    /// The URL may hold the relay's password: it is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpRelay")
            .field("url", &"<redacted>")
            .field("from", &self.from)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// Where emails go; without one they are recorded as not sent.
    pub smtp: Option<SmtpRelay>,
    /// Webhooks to loopback, private and link-local addresses (refused otherwise).
    pub allow_private_destinations: bool,
    /// The key webhook secrets are sealed with.
    pub sealing_key: KeySource,
    /// Longest a receiver or the relay may take to answer one attempt.
    pub send_timeout: Duration,
    /// How long a delivery or email is retried before it is marked failed.
    pub retry_for: Duration,
    /// The wait before the first retry; each next one doubles, up to `max_retry_delay`.
    pub first_retry: Duration,
    pub max_retry_delay: Duration,
    /// How long a dispatcher holds a delivery it is sending.
    pub lease: Duration,
    /// How often an idle dispatcher looks for due deliveries unprompted.
    pub poll_interval: Duration,
    /// Webhook deliveries sent at once by this process.
    pub webhook_workers: usize,
    /// Failed items an email lists before pointing at the API for the rest.
    pub failed_items_in_email: usize,
}

impl NotifyConfig {
    /// Defaults, with the sealing key in a file beside a SQLite database (or in the
    /// working directory for PostgreSQL).
    pub fn new(database_url: &str) -> Self {
        NotifyConfig {
            smtp: None,
            allow_private_destinations: false,
            sealing_key: KeySource::File(default_key_file(database_url)),
            send_timeout: Duration::from_secs(5),
            retry_for: Duration::from_secs(24 * 3600),
            first_retry: Duration::from_secs(10),
            max_retry_delay: Duration::from_secs(3600),
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            webhook_workers: 4,
            failed_items_in_email: 50,
        }
    }
}

fn default_key_file(database_url: &str) -> PathBuf {
    match crate::db::Backend::of_url(database_url) {
        crate::db::Backend::Sqlite => PathBuf::from(format!(
            "{}.sealing-key",
            crate::db::ConnectionManager::sqlite_path(database_url)
        )),
        crate::db::Backend::Postgres => PathBuf::from("stockbatch.sealing-key"),
    }
}

/// What writers of changes need to put their events in the outbox: called inside the
/// change's transaction, then [`Outbox::wake`] after it commits.
#[derive(Clone)]
pub struct Outbox {
    /// Whether this process's emails can be sent (an SMTP relay is configured).
    pub email_relay: bool,
    retry_for: TimeDelta,
    /// This process's webhook and email dispatchers.
    dispatchers: [Wakeup; 2],
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox {
            email_relay: false,
            retry_for: TimeDelta::hours(24),
            dispatchers: Default::default(),
        }
    }
}

impl Outbox {
    pub fn new(config: &NotifyConfig, webhooks: Wakeup, emails: Wakeup) -> Self {
        Outbox {
            email_relay: config.smtp.is_some(),
            retry_for: TimeDelta::from_std(config.retry_for).unwrap_or(TimeDelta::hours(24)),
            dispatchers: [webhooks, emails],
        }
    }

    /// Wakes this process's dispatchers (others poll).
    pub fn wake(&self) {
        self.dispatchers.iter().for_each(Wakeup::notify);
    }

    /// When a delivery or email written now stops being retried.
    pub fn retry_until(&self, now: NaiveDateTime) -> NaiveDateTime {
        now + self.retry_for
    }

    /// A batch was accepted: `BATCH_CREATE`, and the email asked for about it.
    pub fn batch_accepted(
        &self,
        conn: &mut DbConnection,
        batch_id: i64,
        email: Option<&str>,
        now: NaiveDateTime,
    ) -> QueryResult<()> {
        if let Some(recipient) = email {
            notifications::schedule_email(conn, batch_id, recipient, now)?;
        }
        events::batch_created(conn, batch_id, now, self.retry_until(now))
    }

    /// A batch completed: `BATCH_COMPLETE`, `INVENTORY_CHANGED`, and its email is due.
    pub fn batch_completed(
        &self,
        conn: &mut DbConnection,
        batch_id: i64,
        now: NaiveDateTime,
    ) -> QueryResult<()> {
        let until = self.retry_until(now);
        notifications::release_batch_email(conn, batch_id, now, until, self.email_relay)?;
        events::batch_completed(conn, batch_id, now, until)
    }

    /// A job was closed (cancelled): `JOB_CLOSED`.
    pub fn job_closed(
        &self,
        conn: &mut DbConnection,
        closed: &JobClosed,
        now: NaiveDateTime,
    ) -> QueryResult<()> {
        events::job_closed(conn, closed, now, self.retry_until(now))
    }
}
