//! The command line: `stockbatch [serve] [flags]`. Every flag can also come from the
//! environment variable named beside it.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, Role};
use crate::executor::{ExecutorConfig, RetentionConfig};
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
    Serve(ServeArgs),
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
    /// Largest request body in bytes.
    #[arg(long, env = "STOCKBATCH_MAX_BODY_BYTES", default_value_t = 16 * 1024 * 1024)]
    max_body_bytes: usize,
    /// HTTP worker threads (0: one per core).
    #[arg(long, env = "STOCKBATCH_HTTP_WORKERS", default_value_t = 0)]
    http_workers: usize,
    /// Milliseconds a request waits for a database connection before answering 503.
    #[arg(long, env = "STOCKBATCH_DB_TIMEOUT_MS", default_value_t = 3000)]
    db_timeout_ms: u64,
    /// Milliseconds an idle executor waits before looking at the queue unprompted.
    #[arg(long, env = "STOCKBATCH_POLL_INTERVAL_MS", default_value_t = 1000)]
    poll_interval_ms: u64,
    /// Seconds a claimed batch stays leased to its executor.
    #[arg(long, env = "STOCKBATCH_LEASE_SECS", default_value_t = 60)]
    lease_secs: u64,
    /// Attempts before a failing batch is completed with 500 results.
    #[arg(long, env = "STOCKBATCH_MAX_ATTEMPTS", default_value_t = 3)]
    max_attempts: i32,
    /// Days COMPLETE batches and their results are kept.
    #[arg(long, env = "STOCKBATCH_RETENTION_DAYS", default_value_t = 7)]
    retention_days: u64,
    /// Seconds between retention runs.
    #[arg(long, env = "STOCKBATCH_PRUNE_INTERVAL_SECS", default_value_t = 3600)]
    prune_interval_secs: u64,
}

impl ServeArgs {
    fn into_config(self) -> Config {
        Config {
            role: self.role,
            pool_size: self.pool_size.max(2),
            db_timeout: Duration::from_millis(self.db_timeout_ms.max(100)),
            max_body_bytes: self.max_body_bytes,
            http_workers: self.http_workers,
            executor: ExecutorConfig {
                poll_interval: Duration::from_millis(self.poll_interval_ms.max(10)),
                lease: Duration::from_secs(self.lease_secs.max(1)),
                max_attempts: self.max_attempts.max(1),
            },
            retention: RetentionConfig {
                keep: Duration::from_secs(self.retention_days * 24 * 3600),
                interval: Duration::from_secs(self.prune_interval_secs.max(1)),
                ..RetentionConfig::default()
            },
            ..Config::new(self.database_url, self.bind_addr)
        }
    }
}

/// Parses the command line and runs what it asks for.
pub fn run() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Serve(args)) => args,
        None => cli.serve,
    };
    let config = args.into_config();
    let result = actix_web::rt::System::new().block_on(async move {
        let app = Application::build(config)?;
        app.run_until_stopped().await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
