//! The feed loader pass: a CSV of `--loader-rows` rows written to a temp dir, loaded by
//! the real `stockbatch load` binary as a child process into a service of its own on a
//! fresh database (so the other passes' ledger checks stay exact); then loaded again,
//! which the Idempotency-Keys turn into replays only. Measures records/s and the loader's
//! peak RSS (its `VmHWM`, sampled while it runs); checks every record applied and no batch posted twice.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::api::Api;
use crate::args::Args;
use crate::service::{unique, Credentials, FreshDb, Service};
use crate::workload::{Checks, LOCATIONS, RETAILER};

/// One run of `stockbatch load`.
#[derive(Debug, Clone)]
pub struct LoaderRun {
    pub elapsed: Duration,
    pub records_per_sec: f64,
    /// The child's peak resident set, KiB.
    pub peak_rss_kib: u64,
    /// User plus system CPU seconds of the child.
    pub cpu_secs: f64,
}

pub struct LoaderStats {
    pub rows: usize,
    pub file_bytes: u64,
    pub concurrency: usize,
    /// The load, then the same command again (every batch replayed).
    pub first: LoaderRun,
    pub rerun: LoaderRun,
    /// The command line, with the temp paths shortened.
    pub command: String,
}

pub fn run(args: &Args, exe: &Path, checks: &Checks) -> anyhow::Result<LoaderStats> {
    let rows = args.loader_rows;
    let dir = std::env::temp_dir().join(unique("stockbatch_bench_loader"));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let result = run_in(args, exe, checks, &dir, rows);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_in(
    args: &Args,
    exe: &Path,
    checks: &Checks,
    dir: &Path,
    rows: usize,
) -> anyhow::Result<LoaderStats> {
    let csv = dir.join("feed.csv");
    let file_bytes = write_feed(&csv, rows)?;
    eprintln!(
        "loader: {rows} CSV rows ({:.1} MiB) through `stockbatch load`, {} batches in flight",
        file_bytes as f64 / 1024.0 / 1024.0,
        args.loader_concurrency
    );
    let db = FreshDb::create(args.db, &args.postgres_url)?;
    let creds = Credentials::generate();
    let service = Service::start(exe, db.url(), &creds, None)?;
    let api = Api::connect(&service.base, &creds)?;
    let concurrency = args.loader_concurrency.to_string();
    let load_args = [
        "--url",
        &service.base,
        "--client-id",
        &creds.client_id,
        "--username",
        &creds.username,
        "--retailer",
        RETAILER,
        "--concurrency",
        &concurrency,
    ];
    let runs = (|| {
        let (first, job_id) = load_once(exe, &csv, &load_args, &creds, dir, "first")?;
        let expected_batches = rows.div_ceil(stockbatch::loader::MAX_BATCH_RECORDS);
        let results = api.get_json(&format!("/api/v4.1/job/{job_id}/results"))?;
        checks.ensure(
            results["totalBatches"] == expected_batches && results["records"]["applied"] == rows,
            || format!("loader: job {job_id} after the load: {results}"),
        );
        let (rerun, again) = load_once(exe, &csv, &load_args, &creds, dir, "rerun")?;
        checks.ensure(again == job_id, || {
            format!("loader: the re-run loaded into job {again}, not {job_id}")
        });
        let results = api.get_json(&format!("/api/v4.1/job/{job_id}/results"))?;
        checks.ensure(results["totalBatches"] == expected_batches, || {
            format!("loader: the re-run posted batches again: {results}")
        });
        anyhow::Ok((first, rerun))
    })();
    let log_tail = service.log_tail();
    let stopped = service.stop();
    let (first, rerun) =
        runs.with_context(|| format!("the service's last log lines:\n{log_tail}"))?;
    stopped?;
    drop(db);
    Ok(LoaderStats {
        rows,
        file_bytes,
        concurrency: args.loader_concurrency,
        first,
        rerun,
        command: format!(
            "STOCKBATCH_CLIENT_SECRET=... STOCKBATCH_PASSWORD=... stockbatch load feed.csv \
             --url {} --client-id {} --username {} --retailer {RETAILER} --concurrency {}",
            "http://127.0.0.1:PORT", creds.client_id, creds.username, args.loader_concurrency
        ),
    })
}

/// `skuRef,locationRef,qty`: position `n` is SKU `n / LOCATIONS` at location
/// `n % LOCATIONS`, as the other passes lay theirs out.
fn write_feed(path: &Path, rows: usize) -> anyhow::Result<u64> {
    let mut out = BufWriter::new(
        File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
    );
    writeln!(out, "skuRef,locationRef,qty")?;
    for n in 0..rows {
        writeln!(
            out,
            "FEED-{:07},LOC-{:02},{}",
            n / LOCATIONS,
            n % LOCATIONS,
            n % 1000
        )?;
    }
    out.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

/// Runs the loader to its end; the run and the job it named.
fn load_once(
    exe: &Path,
    csv: &Path,
    args: &[&str],
    creds: &Credentials,
    dir: &Path,
    name: &str,
) -> anyhow::Result<(LoaderRun, String)> {
    let stdout_path: PathBuf = dir.join(format!("{name}.stdout"));
    let stderr_path: PathBuf = dir.join(format!("{name}.stderr"));
    let started = Instant::now();
    let child = Command::new(exe)
        .arg("load")
        .arg(csv)
        .args(args)
        .env("STOCKBATCH_CLIENT_SECRET", &creds.client_secret)
        .env("STOCKBATCH_PASSWORD", &creds.password)
        .stdin(Stdio::null())
        .stdout(File::create(&stdout_path)?)
        .stderr(File::create(&stderr_path)?)
        .spawn()
        .with_context(|| format!("cannot start {} load", exe.display()))?;
    let (status, usage, peak_rss_kib) = wait_with_usage(child.id())?;
    let elapsed = started.elapsed();
    let stdout = std::fs::read_to_string(&stdout_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    if status != 0 {
        bail!("stockbatch load ({name}) exited with {status}:\n{stdout}{stderr}");
    }
    let job_id = stderr
        .split(" into job ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .with_context(|| format!("stockbatch load named no job:\n{stderr}"))?
        .to_owned();
    let rows = stdout
        .split(" records read")
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .map(|n| n.replace(',', ""))
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or(0.0);
    Ok((
        LoaderRun {
            elapsed,
            records_per_sec: rows / elapsed.as_secs_f64(),
            peak_rss_kib,
            cpu_secs: seconds(usage.ru_utime) + seconds(usage.ru_stime),
        },
        job_id,
    ))
}

fn seconds(t: libc::timeval) -> f64 {
    t.tv_sec as f64 + t.tv_usec as f64 / 1e6
}

/// Waits for child `pid`: its exit code (or 128 + signal), its resource usage, and its
/// peak RSS in KiB. The peak is the loader's own `VmHWM`, sampled while it runs: the
/// rusage `ru_maxrss` of a child also counts the memory of the benchmark it was forked from.
fn wait_with_usage(pid: u32) -> anyhow::Result<(i32, libc::rusage, u64)> {
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value of that plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut peak_kib = 0;
    loop {
        peak_kib = peak_kib.max(vm_hwm_kib(pid).unwrap_or(0));
        // SAFETY: wait4 writes only to the two pointers given, which outlive the call; the
        // pid is our own child, not yet waited for.
        let waited =
            unsafe { libc::wait4(pid as libc::pid_t, &mut status, libc::WNOHANG, &mut usage) };
        if waited < 0 {
            return Err(std::io::Error::last_os_error()).context("wait4 on stockbatch load");
        }
        if waited > 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    Ok((code, usage, peak_kib))
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
