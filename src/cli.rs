//! The command line: `stockbatch [serve] [flags]` runs the service; `stockbatch user|client|
//! retailer|api-key ...` manage accounts; `stockbatch load FILE` loads a feed through the
//! API. Every flag can also come from the environment variable named beside it.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::api::{ApiSettings, BodyLimits, QueueLimits};
use crate::auth::accounts::{self, Bootstrap, ClientBinding};
use crate::auth::api_keys;
use crate::auth::hasher::HasherConfig;
use crate::auth::permissions::{format_list, parse_list};
use crate::auth::{TokenSettings, DEFAULT_LOCATION};
use crate::config::{Config, MetricsConfig, Role};
use crate::db::{self, build_pool, run_migrations, DbConnection};
use crate::domain::webhook::parse_subscription;
use crate::executor::{ExecutorConfig, RetentionConfig};
use crate::notify::{
    check_destination, new_webhook_secret, KeySource, NotifyConfig, SealingKey, SmtpRelay,
};
use crate::startup::Application;

#[derive(Parser, Debug)]
#[command(
    name = "stockbatch",
    version,
    about = "Fluent Commerce v4.1 Job & Batch API for inventory feeds"
)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the service (the default when no command is given).
    Serve(Box<ServeArgs>),
    /// Manage users: `user create|list|disable|enable`.
    User {
        #[command(flatten)]
        db: DbArgs,
        #[command(subcommand)]
        action: UserAction,
    },
    /// Manage OAuth clients: `client create|list|disable|enable`.
    Client {
        #[command(flatten)]
        db: DbArgs,
        #[command(subcommand)]
        action: ClientAction,
    },
    /// Manage retailers: `retailer create|list`.
    Retailer {
        #[command(flatten)]
        db: DbArgs,
        #[command(subcommand)]
        action: RetailerAction,
    },
    /// Manage API keys: `api-key create|list|revoke`.
    ApiKey {
        #[command(flatten)]
        db: DbArgs,
        #[command(subcommand)]
        action: ApiKeyAction,
    },
    /// Load a feed (CSV, NDJSON or a JSON array) through the API in batches, resumably.
    Load(Box<LoadArgs>),
    /// Manage webhook subscriptions: `webhook create|list|delete|deliveries`.
    Webhook {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        sealing: SealingArgs,
        #[command(subcommand)]
        action: WebhookAction,
    },
}

/// `stockbatch load`. The client secret and the password are read from
/// `STOCKBATCH_CLIENT_SECRET` and `STOCKBATCH_PASSWORD`, or asked for on the terminal:
/// never from the command line, where other users of the machine could read them.
#[derive(Args, Debug)]
struct LoadArgs {
    /// The feed: CSV with a header row, NDJSON, or one JSON array of InventoryPosts.
    file: std::path::PathBuf,
    /// The file's format (default: by its extension: .csv, .ndjson/.jsonl, .json).
    #[arg(long, value_enum)]
    format: Option<crate::loader::Format>,
    /// The service, e.g. `http://127.0.0.1:8080`.
    #[arg(long, env = "STOCKBATCH_URL")]
    url: String,
    /// The OAuth client to log in with (its secret: `STOCKBATCH_CLIENT_SECRET`).
    #[arg(long, env = "STOCKBATCH_CLIENT_ID")]
    client_id: String,
    /// Log in as this user (password: `STOCKBATCH_PASSWORD`); without it, as the client
    /// itself (client_credentials: the client must be bound to the retailer).
    #[arg(long, env = "STOCKBATCH_USERNAME")]
    username: Option<String>,
    /// The retailer whose job the records go to; records naming none get it.
    #[arg(long)]
    retailer: String,
    /// The job's name (default: `load FILE-NAME`). Part of the load's identity: another
    /// name makes another job.
    #[arg(long)]
    job_name: Option<String>,
    /// Batches in flight at once (posted and not yet COMPLETE).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
    /// CSV: read COLUMN as FIELD (an InventoryPost field, another name to keep it as, or
    /// `-` to leave it out); JSON: rename a top-level key. Repeatable.
    #[arg(long = "map", value_name = "COLUMN=FIELD")]
    maps: Vec<String>,
    /// Records per batch.
    #[arg(long, default_value_t = crate::loader::MAX_BATCH_RECORDS as u16,
          value_parser = clap::value_parser!(u16).range(1..=crate::loader::MAX_BATCH_RECORDS as i64))]
    batch_size: u16,
    /// CSV field delimiter: one ASCII character, or `tab` (default: a tab for .tsv files,
    /// a comma otherwise).
    #[arg(long)]
    delimiter: Option<String>,
    /// Where the failure report goes (default: FILE.failures.csv beside the file).
    #[arg(long)]
    report: Option<std::path::PathBuf>,
    /// Retries of one request (429/503 after Retry-After, 5xx, network errors) before
    /// the load stops.
    #[arg(long, default_value_t = 20)]
    max_retries: u32,
}

/// Where the key sealing webhook secrets comes from.
#[derive(Args, Debug, Clone)]
struct SealingArgs {
    /// The sealing key itself: base64 of 32 random bytes (every node needs the same).
    #[arg(
        long,
        env = "STOCKBATCH_SEALING_KEY",
        hide_env_values = true,
        global = true
    )]
    sealing_key: Option<String>,
    /// A file holding the sealing key, created if missing (default: beside a SQLite
    /// database, or `stockbatch.sealing-key` in the working directory for PostgreSQL).
    #[arg(long, env = "STOCKBATCH_SEALING_KEY_FILE", global = true)]
    sealing_key_file: Option<std::path::PathBuf>,
    /// Allow webhooks to loopback, private and link-local addresses.
    #[arg(long, env = "STOCKBATCH_WEBHOOK_ALLOW_PRIVATE", default_value_t = false, action = clap::ArgAction::Set, global = true)]
    webhook_allow_private: bool,
}

impl SealingArgs {
    fn source(&self, database_url: &str) -> KeySource {
        match (&self.sealing_key, &self.sealing_key_file) {
            (Some(key), _) => KeySource::Value(key.clone()),
            (None, Some(path)) => KeySource::File(path.clone()),
            (None, None) => NotifyConfig::new(database_url).sealing_key,
        }
    }
}

#[derive(Subcommand, Debug)]
enum WebhookAction {
    /// Subscribe a URL to events; the signing secret is printed once.
    Create {
        /// The http(s) URL events are POSTed to.
        #[arg(long)]
        url: String,
        /// Comma-separated: BATCH_CREATE, BATCH_COMPLETE, INVENTORY_CHANGED, JOB_CLOSED, or *.
        #[arg(long)]
        events: String,
        /// The retailer whose events it gets; every retailer's when omitted.
        #[arg(long)]
        retailer: Option<String>,
        /// Use this secret instead of a generated one.
        #[arg(long, env = "STOCKBATCH_NEW_WEBHOOK_SECRET", hide_env_values = true)]
        secret: Option<String>,
    },
    /// List subscriptions (never their secrets).
    List,
    /// Delete a subscription and its deliveries.
    Delete { id: i64 },
    /// The latest deliveries of a subscription.
    Deliveries {
        id: i64,
        #[arg(long, default_value_t = 20)]
        count: i64,
    },
}

#[derive(Args, Debug, Clone)]
struct DbArgs {
    /// `sqlite://PATH` (or a bare path) or `postgres://...`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://stockbatch.db",
        global = true
    )]
    database_url: String,
}

#[derive(Subcommand, Debug)]
enum UserAction {
    /// Create a user of one retailer (`--retailer`), or an administrator (`--admin`).
    Create {
        username: String,
        /// The retailer whose data the user works with.
        #[arg(long, conflicts_with = "admin", required_unless_present = "admin")]
        retailer: Option<String>,
        /// An account administrator over all retailers.
        #[arg(long)]
        admin: bool,
        /// Comma-separated: JOB_CREATE, JOB_VIEW, BATCH_CREATE, BATCH_VIEW, INVENTORY_VIEW, or ALL.
        #[arg(long, default_value = "ALL")]
        permissions: String,
        /// The password; prompted for (not echoed) when omitted.
        #[arg(long, env = "STOCKBATCH_USER_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// List users (never their passwords).
    List,
    /// Set a user's password; its tokens stop working at once.
    SetPassword {
        username: String,
        /// The new password; prompted for (not echoed) when omitted.
        #[arg(long, env = "STOCKBATCH_USER_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// Stop a user from logging in; its tokens stop working at once.
    Disable { username: String },
    /// Let a disabled user log in again.
    Enable { username: String },
}

#[derive(Subcommand, Debug)]
enum ClientAction {
    /// Create an OAuth client; its secret is printed once. With `--retailer` it may also
    /// get tokens for itself (grant_type=client_credentials), acting for that retailer.
    Create {
        client_id: String,
        /// Use this secret instead of a generated one.
        #[arg(long, env = "STOCKBATCH_NEW_CLIENT_SECRET", hide_env_values = true)]
        secret: Option<String>,
        /// Bind the client to this retailer for the client_credentials grant.
        #[arg(long)]
        retailer: Option<String>,
        /// With `--retailer`: what its own tokens may do (comma-separated, or ALL).
        #[arg(long, requires = "retailer", default_value = "ALL")]
        permissions: String,
    },
    /// List clients (never their secrets).
    List,
    /// Give a client a new secret, printed once; the old one and the client's own tokens
    /// stop working at once (its users' tokens stay).
    RotateSecret {
        client_id: String,
        /// Use this secret instead of a generated one.
        #[arg(long, env = "STOCKBATCH_NEW_CLIENT_SECRET", hide_env_values = true)]
        secret: Option<String>,
    },
    /// Refuse the client's logins; tokens issued through it stop working at once.
    Disable { client_id: String },
    /// Let a disabled client be used again.
    Enable { client_id: String },
}

#[derive(Subcommand, Debug)]
enum RetailerAction {
    /// Register a retailer, or name one already registered (`user create --retailer`,
    /// `client create --retailer` and `api-key create` register theirs).
    Create {
        id: String,
        #[arg(long)]
        name: Option<String>,
    },
    /// Give a retailer another name.
    Rename { id: String, name: String },
    /// Keep a retailer's COMPLETE batches DAYS days, or `default` for the server's setting.
    Retention { id: String, days: String },
    /// List retailers.
    List,
}

#[derive(Subcommand, Debug)]
enum ApiKeyAction {
    /// Create an API key of one retailer; the key is printed once.
    Create {
        name: String,
        /// The retailer whose data the key works with.
        #[arg(long)]
        retailer: String,
        /// Comma-separated: JOB_CREATE, JOB_VIEW, BATCH_CREATE, BATCH_VIEW, INVENTORY_VIEW, or ALL.
        #[arg(long, default_value = "ALL")]
        permissions: String,
        /// Where the key's requests that name no location apply.
        #[arg(long, default_value = DEFAULT_LOCATION)]
        default_location: String,
    },
    /// List API keys (never the keys or their hashes).
    List,
    /// Stop a key from working; requests with it are refused at once.
    Revoke { name: String },
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// `sqlite://PATH` (or a bare path) or `postgres://...`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://stockbatch.db")]
    database_url: String,
    /// Address the HTTP API listens on.
    #[arg(long = "bind", env = "BIND_ADDR", default_value = "127.0.0.1:8080")]
    bind_addr: String,
    /// Which parts run in this process.
    #[arg(long, env = "STOCKBATCH_ROLE", value_enum, default_value_t = Role::All)]
    role: Role,
    /// Database connections this process keeps.
    #[arg(long, env = "STOCKBATCH_POOL_SIZE", default_value_t = 8)]
    pool_size: u32,
    /// Largest request body in bytes (after decompression).
    #[arg(long, env = "STOCKBATCH_MAX_BODY_BYTES", default_value_t = 16 * 1024 * 1024)]
    max_body_bytes: usize,
    /// Request body bytes all requests together may hold; past it a POST gets 503.
    #[arg(long, env = "STOCKBATCH_MAX_BODY_BYTES_IN_FLIGHT", default_value_t = 64 * 1024 * 1024)]
    max_body_bytes_in_flight: usize,
    /// Seconds a request body may take to arrive before the request gets 408.
    #[arg(long, env = "STOCKBATCH_BODY_TIMEOUT_SECS", default_value_t = 60)]
    body_timeout_secs: u64,
    /// Threads checking passwords and client secrets (0: half the cores, at least one).
    #[arg(long, env = "STOCKBATCH_LOGIN_THREADS", default_value_t = 0)]
    login_threads: usize,
    /// Logins that may wait for a checking thread; past it a login gets 503.
    #[arg(long, env = "STOCKBATCH_LOGIN_QUEUE", default_value_t = 32)]
    login_queue: usize,
    /// Seconds an Idempotency-Key's answer is kept.
    #[arg(
        long,
        env = "STOCKBATCH_IDEMPOTENCY_TTL_SECS",
        default_value_t = 86_400
    )]
    idempotency_ttl_secs: u64,
    /// Milliseconds a StateSet batch POST waits for its results before answering 202.
    #[arg(long, env = "STOCKBATCH_STATESET_WAIT_MS", default_value_t = 5000)]
    stateset_wait_ms: u64,
    /// Batch Pre-Processing: records that would change nothing are not written (a job's
    /// `meta.preprocessing: "skip"` turns it off for that job; false, for every job).
    #[arg(long, env = "STOCKBATCH_BATCH_PREPROCESSING", default_value_t = true, action = clap::ArgAction::Set)]
    batch_preprocessing: bool,
    /// Unfinished batches one retailer may have queued; past it a POST gets 429.
    #[arg(
        long,
        env = "STOCKBATCH_MAX_QUEUED_BATCHES_PER_RETAILER",
        default_value_t = 1000
    )]
    max_queued_batches_per_retailer: i64,
    /// Unfinished batches of all retailers together; past it a POST gets 429.
    #[arg(long, env = "STOCKBATCH_MAX_QUEUED_BATCHES", default_value_t = 10_000)]
    max_queued_batches: i64,
    /// Records of unfinished batches together; past it a POST gets 429.
    #[arg(
        long,
        env = "STOCKBATCH_MAX_QUEUED_RECORDS",
        default_value_t = 20_000_000
    )]
    max_queued_records: i64,
    /// Seconds a batch may wait with no live executor before it is flagged stalled.
    #[arg(long, env = "STOCKBATCH_STALLED_SECS", default_value_t = 120)]
    stalled_secs: u64,
    /// HTTP worker threads (0: one per core).
    #[arg(long, env = "STOCKBATCH_HTTP_WORKERS", default_value_t = 0)]
    http_workers: usize,
    /// Milliseconds a request waits for a database connection before answering 503.
    #[arg(long, env = "STOCKBATCH_DB_TIMEOUT_MS", default_value_t = 3000)]
    db_timeout_ms: u64,
    /// Milliseconds an idle executor waits before looking at the queue unprompted.
    #[arg(long, env = "STOCKBATCH_POLL_INTERVAL_MS", default_value_t = 1000)]
    poll_interval_ms: u64,
    /// Batches applied at once, each on its own thread and connection (0: two). On SQLite
    /// their writes take turns at the one write lock.
    #[arg(long, env = "STOCKBATCH_EXECUTOR_WORKERS", default_value_t = 0)]
    executor_workers: usize,
    /// Seconds a claimed batch stays leased to its executor.
    #[arg(long, env = "STOCKBATCH_LEASE_SECS", default_value_t = 60)]
    lease_secs: u64,
    /// Attempts before a failing batch is completed with 500 results.
    #[arg(long, env = "STOCKBATCH_MAX_ATTEMPTS", default_value_t = 3)]
    max_attempts: i32,
    /// Days COMPLETE batches and their results are kept.
    #[arg(long, env = "STOCKBATCH_RETENTION_DAYS", default_value_t = 7)]
    retention_days: u64,
    /// Seconds an access token is valid.
    #[arg(long, env = "STOCKBATCH_TOKEN_TTL_SECS", default_value_t = 86_400)]
    token_ttl_secs: u64,
    /// Seconds a refresh token is valid (each works once).
    #[arg(long, env = "STOCKBATCH_REFRESH_TOKEN_TTL_SECS", default_value_t = 30 * 86_400)]
    refresh_token_ttl_secs: u64,
    /// First start only: the administrator's username (default `admin`).
    #[arg(long, env = "STOCKBATCH_ADMIN_USERNAME")]
    admin_username: Option<String>,
    /// First start only: the administrator's password (default: generated and printed once).
    #[arg(long, env = "STOCKBATCH_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,
    /// First start only: the OAuth client id (default `stockbatch`).
    #[arg(long, env = "STOCKBATCH_CLIENT_ID")]
    client_id: Option<String>,
    /// First start only: the OAuth client secret (default: generated and printed once).
    #[arg(long, env = "STOCKBATCH_CLIENT_SECRET", hide_env_values = true)]
    client_secret: Option<String>,
    /// Seconds between retention runs.
    #[arg(long, env = "STOCKBATCH_PRUNE_INTERVAL_SECS", default_value_t = 3600)]
    prune_interval_secs: u64,
    /// The SMTP relay for batch emails: `smtp://[user:pass@]host[:port][?tls=required]`
    /// (STARTTLS) or `smtps://...`; without it emails are recorded as not sent.
    #[arg(long, env = "STOCKBATCH_SMTP_URL", hide_env_values = true)]
    smtp_url: Option<String>,
    /// The sender of batch emails.
    #[arg(
        long,
        env = "STOCKBATCH_SMTP_FROM",
        default_value = "stockbatch <stockbatch@localhost>"
    )]
    smtp_from: String,
    #[command(flatten)]
    sealing: SealingArgs,
    /// Seconds a webhook receiver or the SMTP relay may take to answer one attempt.
    #[arg(long, env = "STOCKBATCH_NOTIFY_TIMEOUT_SECS", default_value_t = 5)]
    notify_timeout_secs: u64,
    /// Hours a webhook delivery or email is retried before it is marked failed.
    #[arg(long, env = "STOCKBATCH_NOTIFY_RETRY_HOURS", default_value_t = 24)]
    notify_retry_hours: u64,
    /// Milliseconds before the first retry of a delivery (doubling each time, up to an hour).
    #[arg(
        long,
        env = "STOCKBATCH_NOTIFY_FIRST_RETRY_MS",
        default_value_t = 10_000
    )]
    notify_first_retry_ms: u64,
    /// Seconds a dispatcher holds a delivery it is sending before another may take it.
    #[arg(long, env = "STOCKBATCH_NOTIFY_LEASE_SECS", default_value_t = 30)]
    notify_lease_secs: u64,
    /// Webhook deliveries this process sends at once.
    #[arg(long, env = "STOCKBATCH_WEBHOOK_WORKERS", default_value_t = 4)]
    webhook_workers: usize,
    /// Also serve `/metrics`, open, on this address (e.g. `127.0.0.1:9090`).
    #[arg(long, env = "STOCKBATCH_METRICS_BIND")]
    metrics_bind: Option<String>,
    /// A bearer token that may read `/metrics` on the API's listener (administrators' tokens may too).
    #[arg(long, env = "STOCKBATCH_METRICS_TOKEN", hide_env_values = true)]
    metrics_token: Option<String>,
}

impl ServeArgs {
    fn into_config(self) -> Config {
        let send_timeout = Duration::from_secs(self.notify_timeout_secs.max(1));
        let notify = NotifyConfig {
            smtp: self.smtp_url.map(|url| SmtpRelay {
                url,
                from: self.smtp_from,
            }),
            allow_private_destinations: self.sealing.webhook_allow_private,
            sealing_key: self.sealing.source(&self.database_url),
            send_timeout,
            retry_for: Duration::from_secs(self.notify_retry_hours.max(1) * 3600),
            first_retry: Duration::from_millis(self.notify_first_retry_ms.max(10)),
            // A lease outlasts any attempt, so a live dispatcher never loses one.
            lease: Duration::from_secs(self.notify_lease_secs).max(send_timeout * 2),
            webhook_workers: self.webhook_workers.max(1),
            ..NotifyConfig::new(&self.database_url)
        };
        Config {
            notify,
            metrics: MetricsConfig {
                bind: self.metrics_bind,
                token: self.metrics_token.filter(|t| !t.is_empty()),
            },
            role: self.role,
            pool_size: self.pool_size.max(2),
            db_timeout: Duration::from_millis(self.db_timeout_ms.max(100)),
            bodies: BodyLimits {
                max_bytes: self.max_body_bytes,
                in_flight_bytes: self.max_body_bytes_in_flight.max(self.max_body_bytes),
                timeout: Duration::from_secs(self.body_timeout_secs.max(1)),
            },
            api: ApiSettings {
                idempotency_ttl: Duration::from_secs(self.idempotency_ttl_secs.max(1)),
                stateset_wait: Duration::from_millis(self.stateset_wait_ms),
                batch_preprocessing: self.batch_preprocessing,
                queue_limits: QueueLimits {
                    batches_per_retailer: self.max_queued_batches_per_retailer.max(1),
                    batches: self.max_queued_batches.max(1),
                    records: self.max_queued_records.max(1),
                },
                retention: Duration::from_secs(self.retention_days * 24 * 3600),
                stalled_after: Duration::from_secs(self.stalled_secs.max(1)),
            },
            hasher: HasherConfig {
                threads: match self.login_threads {
                    0 => HasherConfig::default().threads,
                    n => n,
                },
                queue: self.login_queue,
            },
            http_workers: self.http_workers,
            executor: ExecutorConfig {
                poll_interval: Duration::from_millis(self.poll_interval_ms.max(10)),
                lease: Duration::from_secs(self.lease_secs.max(1)),
                max_attempts: self.max_attempts.max(1),
                workers: match self.executor_workers {
                    0 => ExecutorConfig::default().workers,
                    n => n,
                },
            },
            retention: RetentionConfig {
                keep: Duration::from_secs(self.retention_days * 24 * 3600),
                interval: Duration::from_secs(self.prune_interval_secs.max(1)),
                idempotency_ttl: Duration::from_secs(self.idempotency_ttl_secs.max(1)),
                ..RetentionConfig::default()
            },
            tokens: TokenSettings {
                access_ttl: Duration::from_secs(self.token_ttl_secs.max(1)),
                refresh_ttl: Duration::from_secs(self.refresh_token_ttl_secs.max(1)),
                ..TokenSettings::default()
            },
            bootstrap: Bootstrap {
                admin_username: self.admin_username,
                admin_password: self.admin_password,
                client_id: self.client_id,
                client_secret: self.client_secret,
            },
            ..Config::new(self.database_url, self.bind_addr)
        }
    }
}

/// Parses the command line and runs what it asks for.
pub fn run() -> ExitCode {
    crate::startup::return_large_allocations();
    crate::db::configure_sqlite();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Serve(args)) => serve(*args),
        None => serve(cli.serve),
        Some(Command::User { db, action }) => {
            let access = Access::of(matches!(action, UserAction::Create { .. }));
            with_db(&db, access, |conn| manage_users(conn, action))
        }
        Some(Command::Client { db, action }) => {
            let access = Access::of(matches!(action, ClientAction::Create { .. }));
            with_db(&db, access, |conn| manage_clients(conn, action))
        }
        Some(Command::Retailer { db, action }) => {
            let access = Access::of(matches!(action, RetailerAction::Create { .. }));
            with_db(&db, access, |conn| manage_retailers(conn, action))
        }
        Some(Command::ApiKey { db, action }) => {
            let access = Access::of(matches!(action, ApiKeyAction::Create { .. }));
            with_db(&db, access, |conn| manage_api_keys(conn, action))
        }
        Some(Command::Load(args)) => return load_feed(*args),
        Some(Command::Webhook {
            db,
            sealing,
            action,
        }) => {
            let access = Access::of(matches!(action, WebhookAction::Create { .. }));
            with_db(&db, access, |conn| {
                manage_webhooks(conn, &sealing, &db.database_url, action)
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Exit status of a load whose records were not all applied (the report says which).
const EXIT_NOT_ALL_APPLIED: u8 = 1;
/// Exit status of a load that could not start or stopped before the end of the file.
const EXIT_LOAD_FAILED: u8 = 2;

fn load_feed(args: LoadArgs) -> ExitCode {
    let summary = load_options(args).and_then(|options| crate::loader::load(&options));
    match summary {
        Ok(summary) => {
            print!("{summary}");
            if summary.stopped.is_some() {
                ExitCode::from(EXIT_LOAD_FAILED)
            } else if summary.all_applied() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_NOT_ALL_APPLIED)
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_LOAD_FAILED)
        }
    }
}

fn load_options(args: LoadArgs) -> anyhow::Result<crate::loader::LoadOptions> {
    let delimiter = match args.delimiter.as_deref() {
        None => None,
        Some("tab" | "\\t" | "\t") => Some(b'\t'),
        Some(d) if d.len() == 1 && d.is_ascii() => Some(d.as_bytes()[0]),
        Some(d) => anyhow::bail!("--delimiter must be one ASCII character or tab, not '{d}'"),
    };
    let maps = crate::loader::parse_maps(&args.maps)?;
    let client_secret = secret(
        "STOCKBATCH_CLIENT_SECRET",
        &format!("secret of client {}: ", args.client_id),
    )?;
    let user = match args.username {
        Some(username) => {
            let password = secret("STOCKBATCH_PASSWORD", &format!("password of {username}: "))?;
            Some((username, password))
        }
        None => None,
    };
    Ok(crate::loader::LoadOptions {
        file: args.file,
        format: args.format,
        url: args.url,
        credentials: crate::loader::Credentials {
            client_id: args.client_id,
            client_secret,
            user,
        },
        retailer: args.retailer,
        job_name: args.job_name,
        concurrency: usize::from(args.concurrency),
        batch_size: usize::from(args.batch_size),
        maps,
        delimiter,
        report: args.report,
        max_retries: args.max_retries,
    })
}

/// A secret from the environment variable `var`, or asked for on the terminal.
fn secret(var: &str, prompt: &str) -> anyhow::Result<String> {
    use std::io::IsTerminal;
    if let Ok(value) = std::env::var(var) {
        if !value.is_empty() {
            return Ok(value);
        }
    }
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("no terminal to ask on: set {var}");
    }
    Ok(rpassword::prompt_password(prompt)?)
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = args.into_config();
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(config)?;
        app.run_until_stopped().await
    })
}

/// What a management command may do to the database it is pointed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// `create` commands: set up a new database (a SQLite file, the tables) if need be.
    MayCreate,
    /// Everything else: only a database stockbatch has set up.
    Existing,
}

impl Access {
    fn of(creates: bool) -> Access {
        if creates {
            Access::MayCreate
        } else {
            Access::Existing
        }
    }
}

fn with_db(
    args: &DbArgs,
    access: Access,
    work: impl FnOnce(&mut DbConnection) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let url = &args.database_url;
    let sqlite_file = (db::Backend::of_url(url) == db::Backend::Sqlite)
        .then(|| db::ConnectionManager::sqlite_path(url));
    if let (Access::Existing, Some(path)) = (access, sqlite_file) {
        if !std::path::Path::new(path).exists() {
            anyhow::bail!(
                "there is no database at {path}: run this where `stockbatch serve` runs, or \
                 name it with --database-url (or DATABASE_URL)"
            );
        }
    }
    let pool = build_pool(url, 1, Duration::from_secs(5))?;
    let mut conn = pool.get()?;
    match access {
        Access::MayCreate => run_migrations(&mut conn)?,
        Access::Existing => {
            db::check_schema(&mut conn).map_err(|e| anyhow::anyhow!("{e} ({})", shown_url(url)))?
        }
    }
    work(&mut conn)
}

/// A database URL without its password, for messages.
fn shown_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

fn manage_users(conn: &mut DbConnection, action: UserAction) -> anyhow::Result<()> {
    match action {
        UserAction::Create {
            username,
            retailer,
            admin: _,
            permissions,
            password,
        } => {
            let permissions = parse_list(&permissions).map_err(anyhow::Error::msg)?;
            let password = match password {
                Some(p) => p,
                None => read_new_password(&username)?,
            };
            accounts::create_user(
                conn,
                &username,
                &password,
                retailer.as_deref(),
                &permissions,
            )?;
            let scope = retailer.map_or("administrator of all retailers".to_owned(), |r| {
                format!("retailer {r}")
            });
            println!(
                "created user {username} ({scope}) with {}",
                format_list(&permissions)
            );
        }
        UserAction::List => {
            println!(
                "{:<24} {:<12} {:<9} permissions",
                "username", "retailer", "status"
            );
            for user in db::accounts::list_users(conn)? {
                let retailer = user.retailer_id.unwrap_or_else(|| "(all)".to_owned());
                let status = if user.disabled == 0 {
                    "enabled"
                } else {
                    "disabled"
                };
                println!(
                    "{:<24} {:<12} {:<9} {}",
                    user.username, retailer, status, user.permissions
                );
            }
        }
        UserAction::SetPassword { username, password } => {
            let password = match password {
                Some(p) => p,
                None => read_new_password(&username)?,
            };
            accounts::set_password(conn, &username, &password)?;
            println!("password of {username} set; its tokens no longer work");
        }
        UserAction::Disable { username } => set_user(conn, &username, true)?,
        UserAction::Enable { username } => set_user(conn, &username, false)?,
    }
    Ok(())
}

fn set_user(conn: &mut DbConnection, username: &str, disabled: bool) -> anyhow::Result<()> {
    if !db::accounts::set_user_disabled(conn, username, disabled)? {
        anyhow::bail!("no user {username}");
    }
    println!(
        "user {username} {}",
        if disabled { "disabled" } else { "enabled" }
    );
    Ok(())
}

fn read_new_password(username: &str) -> anyhow::Result<String> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "no terminal to ask for {username}'s password on: give it with --password or \
             STOCKBATCH_USER_PASSWORD"
        );
    }
    let first = rpassword::prompt_password(format!("password for {username}: "))?;
    let second = rpassword::prompt_password("again: ")?;
    if first != second {
        anyhow::bail!("the passwords differ");
    }
    Ok(first)
}

fn manage_clients(conn: &mut DbConnection, action: ClientAction) -> anyhow::Result<()> {
    match action {
        ClientAction::Create {
            client_id,
            secret,
            retailer,
            permissions,
        } => {
            let given = secret.is_some();
            let permissions = parse_list(&permissions).map_err(anyhow::Error::msg)?;
            let binding = retailer.as_deref().map(|retailer_id| ClientBinding {
                retailer_id,
                permissions: &permissions,
            });
            let secret = accounts::create_client(conn, &client_id, secret.as_deref(), binding)?;
            let scope = retailer.map_or(String::new(), |r| {
                format!(
                    ", acting for retailer {r} with {}",
                    format_list(&permissions)
                )
            });
            if given {
                println!("created client {client_id}{scope}");
            } else {
                println!(
                    "created client {client_id}{scope}; its secret, shown only this once:\n{secret}"
                );
            }
        }
        ClientAction::List => {
            println!(
                "{:<32} {:<9} {:<12} permissions",
                "client_id", "status", "retailer"
            );
            for client in db::accounts::list_clients(conn)? {
                let status = if client.disabled == 0 {
                    "enabled"
                } else {
                    "disabled"
                };
                println!(
                    "{:<32} {status:<9} {:<12} {}",
                    client.client_id,
                    client.retailer_id.as_deref().unwrap_or("-"),
                    client.permissions.as_deref().unwrap_or("-")
                );
            }
        }
        ClientAction::RotateSecret { client_id, secret } => {
            let given = secret.is_some();
            let secret = accounts::rotate_client_secret(conn, &client_id, secret.as_deref())?;
            if given {
                println!("client {client_id} has its new secret; the old one no longer works");
            } else {
                println!(
                    "client {client_id} has a new secret, shown only this once (the old one no longer works):\n{secret}"
                );
            }
        }
        ClientAction::Disable { client_id } => set_client(conn, &client_id, true)?,
        ClientAction::Enable { client_id } => set_client(conn, &client_id, false)?,
    }
    Ok(())
}

fn set_client(conn: &mut DbConnection, client_id: &str, disabled: bool) -> anyhow::Result<()> {
    if !db::accounts::set_client_disabled(conn, client_id, disabled)? {
        anyhow::bail!("no client {client_id}");
    }
    println!(
        "client {client_id} {}",
        if disabled { "disabled" } else { "enabled" }
    );
    Ok(())
}

fn manage_retailers(conn: &mut DbConnection, action: RetailerAction) -> anyhow::Result<()> {
    match action {
        RetailerAction::Create { id, name } => {
            if accounts::create_retailer(conn, &id, name.as_deref())? {
                println!("created retailer {id}");
            } else if let Some(name) = name {
                db::accounts::rename_retailer(conn, &id, &name)?;
                println!("retailer {id} was registered already; it is named {name} now");
            } else {
                println!("retailer {id} was registered already");
            }
        }
        RetailerAction::Rename { id, name } => {
            accounts::check_retailer_name(&name)?;
            if !db::accounts::rename_retailer(conn, &id, &name)? {
                anyhow::bail!("no retailer {id}");
            }
            println!("retailer {id} is named {name} now");
        }
        RetailerAction::Retention { id, days } => {
            let days = match days.as_str() {
                "default" => None,
                n => Some(n.parse::<i32>().ok().filter(|d| *d >= 1).ok_or_else(|| {
                    anyhow::anyhow!("days must be a whole number of at least 1, or default")
                })?),
            };
            if !db::accounts::set_retailer_retention(conn, &id, days)? {
                anyhow::bail!("no retailer {id}");
            }
            match days {
                Some(d) => println!("retailer {id} keeps its COMPLETE batches {d} days"),
                None => println!(
                    "retailer {id} keeps its COMPLETE batches as long as the server's default"
                ),
            }
        }
        RetailerAction::List => {
            println!("{:<16} {:<16} name", "id", "retention");
            for retailer in db::accounts::list_retailers(conn)? {
                let kept = retailer
                    .retention_days
                    .map_or("default".to_owned(), |d| format!("{d} days"));
                println!("{:<16} {kept:<16} {}", retailer.id, retailer.name);
            }
        }
    }
    Ok(())
}

fn manage_api_keys(conn: &mut DbConnection, action: ApiKeyAction) -> anyhow::Result<()> {
    match action {
        ApiKeyAction::Create {
            name,
            retailer,
            permissions,
            default_location,
        } => {
            let permissions = parse_list(&permissions).map_err(anyhow::Error::msg)?;
            let key =
                api_keys::create_api_key(conn, &name, &retailer, &permissions, &default_location)?;
            println!(
                "created API key {name} (retailer {retailer}, default location {default_location}) \
                 with {}; the key, shown only this once:\n{key}",
                format_list(&permissions)
            );
        }
        ApiKeyAction::List => {
            println!(
                "{:<24} {:<12} {:<16} {:<8} permissions",
                "name", "retailer", "default location", "status"
            );
            for key in api_keys::list_api_keys(conn)? {
                let status = if key.revoked == 0 {
                    "active"
                } else {
                    "revoked"
                };
                println!(
                    "{:<24} {:<12} {:<16} {:<8} {}",
                    key.name, key.retailer_id, key.default_location, status, key.permissions
                );
            }
        }
        ApiKeyAction::Revoke { name } => {
            api_keys::revoke_api_key(conn, &name)?;
            println!("API key {name} revoked");
        }
    }
    Ok(())
}

fn manage_webhooks(
    conn: &mut DbConnection,
    sealing: &SealingArgs,
    database_url: &str,
    action: WebhookAction,
) -> anyhow::Result<()> {
    match action {
        WebhookAction::Create {
            url,
            events,
            retailer,
            secret,
        } => {
            let request = serde_json::json!({
                "url": url,
                "events": events.split(',').map(str::trim).collect::<Vec<_>>(),
                "retailerId": retailer,
                "secret": secret,
            });
            let draft = parse_subscription(request.to_string().as_bytes())
                .map_err(|errors| anyhow::anyhow!(errors.join("; ")))?;
            let url = check_destination(&draft.url, sealing.webhook_allow_private)?;
            let key = SealingKey::load(&sealing.source(database_url))?;
            let given = draft.secret.is_some();
            let secret = draft.secret.unwrap_or_else(new_webhook_secret);
            let id = db::write_transaction(conn, |conn| {
                db::notifications::insert_subscription(
                    conn,
                    draft.retailer_id.as_deref(),
                    url.as_str(),
                    &draft.events.join(","),
                    &key.seal(&secret),
                    chrono::Utc::now().naive_utc(),
                )
            })?;
            let scope = draft
                .retailer_id
                .map_or("every retailer".to_owned(), |r| format!("retailer {r}"));
            println!(
                "created webhook {id}: {} of {scope} to {url}",
                draft.events.join(",")
            );
            if !given {
                println!("its signing secret, shown only this once:\n{secret}");
            }
        }
        WebhookAction::List => {
            println!("{:<6} {:<12} {:<40} url", "id", "retailer", "events");
            for s in db::notifications::list_subscriptions(conn, None)? {
                println!(
                    "{:<6} {:<12} {:<40} {}",
                    s.id,
                    s.retailer_id.as_deref().unwrap_or("(all)"),
                    s.events,
                    s.url
                );
            }
        }
        WebhookAction::Delete { id } => {
            if !db::write_transaction(conn, |conn| {
                db::notifications::delete_subscription(conn, id)
            })? {
                anyhow::bail!("no webhook {id}");
            }
            println!("webhook {id} deleted");
        }
        WebhookAction::Deliveries { id, count } => {
            if db::notifications::find_subscription(conn, id)?.is_none() {
                anyhow::bail!("no webhook {id}");
            }
            let (rows, total) =
                db::notifications::list_deliveries(conn, id, 0, count.clamp(1, 5000))?;
            println!("{total} deliveries; the latest:");
            println!(
                "{:<8} {:<18} {:<10} {:>8}  last error",
                "id", "event", "status", "attempts"
            );
            for d in rows {
                println!(
                    "{:<8} {:<18} {:<10} {:>8}  {}",
                    d.id,
                    d.event_name,
                    d.status,
                    d.attempts,
                    d.last_error.unwrap_or_default()
                );
            }
        }
    }
    Ok(())
}
