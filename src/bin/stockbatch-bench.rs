//! stockbatch-bench: stockbatch as retailer integrations see it, against the limit.
//!
//! ```sh
//! cargo run --release --bin stockbatch-bench -- --db sqlite --batches 200 --clients 4
//! cargo run --release --bin stockbatch-bench -- --db postgres --markdown bench.md
//! cargo run --release --bin stockbatch-bench -- --db sqlite --smoke   # CI: small, all checks
//! ```
//!
//! One run: starts the `stockbatch` binary beside this one (`cargo build --release` builds
//! both; under `cargo run` it is rebuilt first) on a fresh database; posts the batches from
//! concurrent clients twice (pass 1 creates the positions, pass 2 updates them), waits for
//! every batch, reads back and checks every result; measures throughput, latencies and the
//! service's memory; then posts StateSet relative adjustments (`POST /api/v1/inventory/batch`)
//! from the same number of clients and one at a time to the idle service, checking every
//! result against a model of the quantities, and checks the service's ledger; then does the
//! same writes as the Fluent passes straight from Rust ("the limit") by several methods;
//! loads a CSV of `--loader-rows` rows with the `stockbatch load` binary into a service of
//! its own, and again to see it resume; and prints every figure. Exits non-zero if any
//! check failed.

#[path = "stockbatch-bench/api.rs"]
mod api;
#[path = "stockbatch-bench/args.rs"]
mod args;
#[path = "stockbatch-bench/limit.rs"]
mod limit;
#[path = "stockbatch-bench/loader.rs"]
mod loader;
#[path = "stockbatch-bench/pass.rs"]
mod pass;
#[path = "stockbatch-bench/report.rs"]
mod report;
#[path = "stockbatch-bench/service.rs"]
mod service;
#[path = "stockbatch-bench/stateset.rs"]
mod stateset;
#[path = "stockbatch-bench/workload.rs"]
mod workload;

use std::process::ExitCode;

use anyhow::Context;

use crate::api::Api;
use crate::args::Args;
use crate::pass::Context as PassContext;
use crate::service::{Credentials, FreshDb, Service};
use crate::workload::{Checks, EntityIds};

fn main() -> ExitCode {
    // As the service does, so the limit runs SQLite with the same settings.
    stockbatch::db::configure_sqlite();
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("stockbatch-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the benchmark; `Ok(false)` when a check failed.
fn run() -> anyhow::Result<bool> {
    let args = Args::parse_checked()?;
    let exe = service::service_binary()?;
    let load_at_start = report::load_average();
    let checks = Checks::default();

    let db = FreshDb::create(args.db, &args.postgres_url)?;
    let creds = Credentials::generate();
    let service = Service::start(&exe, db.url(), &creds, args.service_log.as_deref())?;
    eprintln!(
        "service {} (pid {}) on {}",
        service.base,
        service.pid(),
        args.db.name()
    );
    let api = Api::connect(&service.base, &creds)?;
    if !api.authenticated() {
        eprintln!("/oauth/token answered 404: going on without a token");
    }
    let stateset_api = api.with_token(&service::create_api_key(&exe, db.url())?);
    let ids = EntityIds::new(args.total_records());
    let probe_ids = EntityIds::new(args.repeats * args.records);
    let cx = PassContext {
        api: &api,
        service: &service,
        args: &args,
        checks: &checks,
        ids: &ids,
        probe_ids: &probe_ids,
    };
    let passes = pass::run(&cx, 1).and_then(|p1| {
        let p2 = pass::run(&cx, 2)?;
        let p3 = pass::run(&cx, 3)?;
        Ok((p1, p2, p3, stateset::run(&cx, &stateset_api)?))
    });
    let log_tail = service.log_tail();
    let stopped = service.stop();
    let (pass1, pass2, pass3, adjust) =
        passes.with_context(|| format!("the service's last log lines:\n{log_tail}"))?;
    let status = stopped?;
    checks.ensure(status.success(), || {
        format!("the service exited with {status} on SIGTERM")
    });
    stateset::verify_database(db.url(), &args, &adjust, &checks)?;
    drop(db);

    let loaded = match args.loader_rows {
        0 => None,
        _ => Some(loader::run(&args, &exe, &checks)?),
    };
    let limits = limit::run(&args, &checks)?;
    let report = report::build(
        &args,
        [&pass1, &pass2],
        &pass3,
        &adjust,
        &limits,
        loaded.as_ref(),
        api.authenticated(),
        &load_at_start,
    );
    print!("{}", report.text());
    if let Some(path) = &args.markdown {
        std::fs::write(path, report.markdown())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if checks.count() > 0 {
        eprintln!("FAILED: {} checks failed; the first:", checks.count());
        for failure in checks.first() {
            eprintln!("  {failure}");
        }
        return Ok(false);
    }
    eprintln!("all checks passed");
    Ok(true)
}
