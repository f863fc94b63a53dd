//! The command line of the benchmark.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Db {
    Sqlite,
    Postgres,
}

impl Db {
    pub fn name(self) -> &'static str {
        match self {
            Db::Sqlite => "SQLite",
            Db::Postgres => "PostgreSQL",
        }
    }
}

/// Benchmarks stockbatch as a separate process against the same writes done straight
/// from Rust ("the limit"). `cargo build --release` builds both binaries; under
/// `cargo run` the benchmark (re)builds the service itself.
#[derive(Parser, Debug, Clone)]
#[command(name = "stockbatch-bench")]
pub struct Args {
    /// Backend the service and the limit run on.
    #[arg(long, value_enum)]
    pub db: Db,
    /// Batches posted per pass.
    #[arg(long, default_value_t = 200)]
    pub batches: usize,
    /// Concurrent client threads, one job each.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Records per batch (1..=5000).
    #[arg(long, default_value_t = 5000)]
    pub records: usize,
    /// A PostgreSQL server the benchmark may create (and drop) databases on.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    pub postgres_url: String,
    /// Also write the report as Markdown to this file.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Save the service's log (stderr) to this file.
    #[arg(long)]
    pub service_log: Option<PathBuf>,
    /// Idle-latency probes and page reads per pass (medians are reported).
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// Items per StateSet adjustment batch (1..=1000).
    #[arg(long, default_value_t = 1000)]
    pub adjust_items: usize,
    /// Rows of the CSV file `stockbatch load` loads in the loader pass (0: no loader pass).
    #[arg(long, default_value_t = 1_000_000)]
    pub loader_rows: usize,
    /// The loader's `--concurrency` (batches in flight).
    #[arg(long, default_value_t = 4)]
    pub loader_concurrency: usize,
    /// CI mode: 4 batches of 200 records from 2 clients, StateSet batches of 100 items,
    /// a loader pass of 6000 rows, every check still made.
    #[arg(long)]
    pub smoke: bool,
}

impl Args {
    /// The arguments in force, after `--smoke` and sanity checks.
    pub fn parse_checked() -> anyhow::Result<Args> {
        let mut args = Args::parse();
        if args.smoke {
            args.batches = 4;
            args.records = 200;
            args.clients = 2;
            args.repeats = 2;
            args.adjust_items = 100;
            args.loader_rows = 6000;
        }
        anyhow::ensure!(
            (1..=5000).contains(&args.records),
            "--records must be 1..=5000"
        );
        anyhow::ensure!(args.batches >= 1, "--batches must be at least 1");
        anyhow::ensure!(
            (1..=args.batches).contains(&args.clients),
            "--clients must be 1..=--batches"
        );
        anyhow::ensure!(args.repeats >= 1, "--repeats must be at least 1");
        anyhow::ensure!(
            (1..=1000).contains(&args.adjust_items),
            "--adjust-items must be 1..=1000"
        );
        anyhow::ensure!(
            (1..=64).contains(&args.loader_concurrency),
            "--loader-concurrency must be 1..=64"
        );
        Ok(args)
    }

    pub fn total_records(&self) -> usize {
        self.batches * self.records
    }
}
