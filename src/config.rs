//! Runtime settings, from flags or environment variables (see `cli.rs`).

use std::time::Duration;

use crate::api::{ApiSettings, BodyLimits};
use crate::auth::accounts::Bootstrap;
use crate::auth::hasher::HasherConfig;
use crate::auth::TokenSettings;
use crate::executor::{ExecutorConfig, RetentionConfig};
use crate::notify::NotifyConfig;

/// Which parts of the service a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// HTTP API and executor in one process.
    All,
    /// HTTP API only: batches are run by executor processes.
    Api,
    /// Executor only: no HTTP listener.
    Executor,
}

impl Role {
    pub fn runs_api(self) -> bool {
        matches!(self, Role::All | Role::Api)
    }

    pub fn runs_executor(self) -> bool {
        matches!(self, Role::All | Role::Executor)
    }
}

/// `/metrics`: on the API's listener for `token` bearers and administrators, and open on
/// `bind` when given.
#[derive(Clone, Default)]
pub struct MetricsConfig {
    pub bind: Option<String>,
    pub token: Option<String>,
}

impl std::fmt::Debug for MetricsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsConfig")
            .field("bind", &self.bind)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    pub bind_addr: String,
    pub role: Role,
    /// Database connections of the API; the executor has its own (one per worker, plus two).
    pub pool_size: u32,
    /// How long a request waits for a working connection before answering 503; also the
    /// limit on connecting and on unacknowledged traffic to PostgreSQL.
    pub db_timeout: Duration,
    /// Request bodies: largest, bytes in flight, time to arrive.
    pub bodies: BodyLimits,
    /// Password and client-secret checks: threads and queue.
    pub hasher: HasherConfig,
    /// Idempotency keys, StateSet waits.
    pub api: ApiSettings,
    /// HTTP worker threads; 0 means one per CPU core.
    pub http_workers: usize,
    pub executor: ExecutorConfig,
    pub retention: RetentionConfig,
    pub tokens: TokenSettings,
    /// Webhooks and emails.
    pub notify: NotifyConfig,
    /// Where `/metrics` is served, and to whom.
    pub metrics: MetricsConfig,
    /// Credentials for the administrator and OAuth client created on an empty database.
    pub bootstrap: Bootstrap,
}

impl Config {
    /// Defaults for a local SQLite file, as a newcomer runs it.
    pub fn new(database_url: impl Into<String>, bind_addr: impl Into<String>) -> Self {
        let database_url = database_url.into();
        Config {
            notify: NotifyConfig::new(&database_url),
            metrics: MetricsConfig::default(),
            database_url,
            bind_addr: bind_addr.into(),
            role: Role::All,
            pool_size: 8,
            db_timeout: Duration::from_secs(3),
            bodies: BodyLimits::default(),
            hasher: HasherConfig::default(),
            api: ApiSettings::default(),
            http_workers: 0,
            executor: ExecutorConfig::default(),
            retention: RetentionConfig::default(),
            tokens: TokenSettings::default(),
            bootstrap: Bootstrap::default(),
        }
    }
}
