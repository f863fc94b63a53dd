//! The service under test as a separate process, on a fresh database; and what /proc
//! says about processes.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};

use crate::args::Db;
use crate::workload::RETAILER;

/// A name no other run uses: process id, a counter and the clock.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{prefix}_{}_{}_{nanos:08x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// An empty database of its own: a SQLite file in a temp dir, or a PostgreSQL database
/// created on the given server. Removed (dropped) when this is dropped.
pub enum FreshDb {
    Sqlite {
        dir: PathBuf,
        url: String,
    },
    Postgres {
        admin_url: String,
        name: String,
        url: String,
    },
}

impl FreshDb {
    pub fn create(db: Db, postgres_url: &str) -> anyhow::Result<FreshDb> {
        match db {
            Db::Sqlite => {
                let dir = std::env::temp_dir().join(unique("stockbatch_bench"));
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
                let url = format!("sqlite://{}", dir.join("stockbatch.db").display());
                Ok(FreshDb::Sqlite { dir, url })
            }
            Db::Postgres => {
                let name = unique("stockbatch_bench");
                PgConnection::establish(postgres_url)
                    .with_context(|| format!("cannot connect to {postgres_url}"))?
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .with_context(|| format!("cannot create database {name}"))?;
                Ok(FreshDb::Postgres {
                    url: with_database(postgres_url, &name),
                    admin_url: postgres_url.to_owned(),
                    name,
                })
            }
        }
    }

    pub fn url(&self) -> &str {
        match self {
            FreshDb::Sqlite { url, .. } | FreshDb::Postgres { url, .. } => url,
        }
    }
}

impl Drop for FreshDb {
    fn drop(&mut self) {
        match self {
            FreshDb::Sqlite { dir, .. } => {
                let _ = std::fs::remove_dir_all(dir);
            }
            FreshDb::Postgres {
                admin_url, name, ..
            } => {
                let dropped = PgConnection::establish(admin_url)
                    .map_err(|e| e.to_string())
                    .and_then(|mut c| {
                        c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .map_err(|e| e.to_string())
                    });
                if let Err(e) = dropped {
                    eprintln!("warning: could not drop database {name}: {e}");
                }
            }
        }
    }
}

/// `postgres://user@host:port/db?x` with its database swapped for `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let host_end = base.find("://").map_or(0, |i| i + 3);
    let host = match base[host_end..].find('/') {
        Some(i) => &base[..host_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{host}/{name}?{q}"),
        None => format!("{host}/{name}"),
    }
}

/// The administrator and OAuth client the service creates on an empty database.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    pub client_id: String,
    pub client_secret: String,
}

impl Credentials {
    pub fn generate() -> Credentials {
        Credentials {
            username: "bench-admin".into(),
            password: unique("pw"),
            client_id: "stockbatch-bench".into(),
            client_secret: unique("secret"),
        }
    }
}

/// The `stockbatch` binary beside this one. Under `cargo run` (which sets `CARGO`) it is
/// built first with the same profile, so it always matches the source.
pub fn service_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot locate this executable")?;
    let dir = exe.parent().context("the executable has no directory")?;
    if let Ok(cargo) = std::env::var("CARGO") {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        let mut build = Command::new(cargo);
        build.args(["build", "--bin", "stockbatch", "--manifest-path"]);
        build.arg(&manifest);
        if dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let status = build.status().context("cannot run cargo build")?;
        anyhow::ensure!(status.success(), "building stockbatch failed: {status}");
    }
    let service = dir.join("stockbatch");
    anyhow::ensure!(
        service.exists(),
        "{} not found: `cargo build --release` builds it beside the benchmark",
        service.display()
    );
    Ok(service)
}

/// A StateSet API key of the benchmark's retailer, made with `stockbatch api-key create`
/// on the service's database.
pub fn create_api_key(exe: &Path, db_url: &str) -> anyhow::Result<String> {
    let output = Command::new(exe)
        .args(["api-key", "create", "bench", "--retailer", RETAILER])
        .arg("--database-url")
        .arg(db_url)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {} api-key create", exe.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let key = stdout.lines().last().unwrap_or_default().trim();
    anyhow::ensure!(
        output.status.success() && key.starts_with("sbk_"),
        "stockbatch api-key create: {}: {stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(key.to_owned())
}

/// What the service logged that the benchmark reads: the executor's time per batch.
#[derive(Default)]
struct LogState {
    batch_ms: HashMap<i64, u64>,
    tail: VecDeque<String>,
}

/// A running `stockbatch serve` process.
pub struct Service {
    child: Child,
    pub base: String,
    log: Arc<Mutex<LogState>>,
    reader: Option<JoinHandle<()>>,
}

impl Service {
    /// Starts the service on `db_url`, on a free port, and waits until it listens.
    pub fn start(
        exe: &Path,
        db_url: &str,
        creds: &Credentials,
        log_file: Option<&Path>,
    ) -> anyhow::Result<Service> {
        let mut child = Command::new(exe)
            .args(["serve", "--bind", "127.0.0.1:0", "--role", "all"])
            .arg("--database-url")
            .arg(db_url)
            .env("RUST_LOG", "info")
            .env("STOCKBATCH_ADMIN_USERNAME", &creds.username)
            .env("STOCKBATCH_ADMIN_PASSWORD", &creds.password)
            .env("STOCKBATCH_CLIENT_ID", &creds.client_id)
            .env("STOCKBATCH_CLIENT_SECRET", &creds.client_secret)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", exe.display()))?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let mut file = log_file
            .map(|p| File::create(p).with_context(|| format!("cannot create {}", p.display())))
            .transpose()?;
        let log = Arc::new(Mutex::new(LogState::default()));
        let (port_tx, port_rx) = mpsc::channel();
        let reader = {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Some(f) = file.as_mut() {
                        let _ = writeln!(f, "{line}");
                    }
                    if let Some(port) = line.split("listening on http://127.0.0.1:").nth(1) {
                        let _ = port_tx.send(port.trim().parse::<u16>().ok());
                    }
                    let mut log = log.lock().unwrap();
                    if let Some((id, ms)) = parse_batch_line(&line) {
                        log.batch_ms.insert(id, ms);
                    }
                    log.tail.push_back(line);
                    if log.tail.len() > 20 {
                        log.tail.pop_front();
                    }
                }
            })
        };
        let mut service = Service {
            child,
            base: String::new(),
            log,
            reader: Some(reader),
        };
        match port_rx.recv_timeout(Duration::from_secs(120)) {
            Ok(Some(port)) => service.base = format!("http://127.0.0.1:{port}"),
            _ => bail!(
                "the service did not report its port; its last log lines:\n{}",
                service.log_tail()
            ),
        }
        Ok(service)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_tail(&self) -> String {
        let log = self.log.lock().unwrap();
        log.tail.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// The executor's own time for a batch, from its `batch N COMPLETE: ... M ms` line.
    pub fn batch_ms(&self, id: i64) -> Option<u64> {
        self.log.lock().unwrap().batch_ms.get(&id).copied()
    }

    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        status_kib(self.pid(), "VmRSS")
    }

    pub fn peak_rss_kib(&self) -> anyhow::Result<u64> {
        status_kib(self.pid(), "VmHWM")
    }

    /// SIGTERM, then waits for the graceful exit (killing it after 30 s).
    pub fn stop(mut self) -> anyhow::Result<ExitStatus> {
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        unsafe { libc::kill(self.pid() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait()? {
                if let Some(reader) = self.reader.take() {
                    let _ = reader.join();
                }
                return Ok(status);
            }
            if Instant::now() > deadline {
                self.child.kill()?;
                bail!("the service did not stop within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `batch 42 COMPLETE: fluent 5000 records, 4998 applied, 2 rejected, 0 skipped, 35 ms
/// (attempt 1, 1 transactions)`.
fn parse_batch_line(line: &str) -> Option<(i64, u64)> {
    let (head, rest) = line.split_once(" COMPLETE: ")?;
    let id = head.rsplit_once("batch ")?.1.parse().ok()?;
    let ms = rest.split(", ").find_map(|part| part.split_once(" ms"))?.0;
    Some((id, ms.parse().ok()?))
}

/// A `kB` field of /proc/PID/status.
pub fn status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

/// User plus system CPU seconds a process has used.
pub fn cpu_secs(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks / hz)
}

/// CPU seconds of every running process called `postgres` (the local server's backends).
pub fn postgres_cpu_secs() -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "postgres")
        })
        .filter_map(|pid| cpu_secs(&pid))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_executor_line() {
        let line = "[2026-01-01T00:00:00Z INFO  stockbatch::executor::worker] batch 42 COMPLETE: \
                    stateset 1000 records, 998 applied, 2 rejected, 0 skipped, 35 ms (attempt 1, \
                    1 transactions)";
        assert_eq!(parse_batch_line(line), Some((42, 35)));
        assert_eq!(parse_batch_line("GET /api/v4.1/job/1/batch/2 200"), None);
    }

    #[test]
    fn swaps_the_database_name() {
        assert_eq!(
            with_database("postgres://u@h:5432/test?sslmode=disable", "x"),
            "postgres://u@h:5432/x?sslmode=disable"
        );
    }
}
