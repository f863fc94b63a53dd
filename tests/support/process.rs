//! The service as a separate process, for tests that kill, stop or cut it off.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::BigInt;

/// A running `stockbatch` process.
pub struct Service {
    pub child: Child,
    pub port: Option<u16>,
    pub name: String,
}

impl Service {
    /// Starts `stockbatch serve --role ROLE` on `database_url` with extra environment.
    /// Waits until it listens (API roles) or its executor started (executor role).
    pub fn start(name: &str, database_url: &str, role: &str, env: &[(&str, &str)]) -> Service {
        let command = Command::new(Self::binary());
        Self::start_with(command, "127.0.0.1:0", name, database_url, role, env)
    }

    /// The `stockbatch` binary the tests run.
    pub fn binary() -> &'static std::path::Path {
        std::path::Path::new(env!("CARGO_BIN_EXE_stockbatch"))
    }

    /// As [`Service::start`], running `command` (the binary, perhaps wrapped, e.g. in a
    /// network namespace) and listening on `bind`.
    pub fn start_with(
        mut command: Command,
        bind: &str,
        name: &str,
        database_url: &str,
        role: &str,
        env: &[(&str, &str)],
    ) -> Service {
        command
            .args([
                "serve",
                "--role",
                role,
                "--bind",
                bind,
                "--database-url",
                database_url,
            ])
            .env("RUST_LOG", "info")
            .env("STOCKBATCH_POLL_INTERVAL_MS", "200")
            .env("STOCKBATCH_ADMIN_USERNAME", crate::common::ADMIN)
            .env("STOCKBATCH_ADMIN_PASSWORD", crate::common::ADMIN_PASSWORD)
            .env("STOCKBATCH_CLIENT_ID", crate::common::CLIENT_ID)
            .env("STOCKBATCH_CLIENT_SECRET", crate::common::CLIENT_SECRET)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("start stockbatch");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let label = name.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var("STOCKBATCH_TEST_VERBOSE").is_ok() {
                    eprintln!("[{label}] {line}");
                }
                if let Some(addr) = line.split("listening on http://").nth(1) {
                    let port = addr.trim().rsplit(':').next().and_then(|p| p.parse().ok());
                    let _ = tx.send(port);
                } else if line.contains("executor executor-") && line.ends_with("started") {
                    let _ = tx.send(None);
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let port = loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(Some(port)) if role != "executor" => break Some(port),
                Ok(None) if role == "executor" => break None,
                Ok(_) => continue,
                Err(_) => panic!("{name} did not start (exit: {:?})", child.try_wait()),
            }
        };
        Service {
            child,
            port,
            name: name.to_owned(),
        }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port.expect("an API process"))
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill9(&mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reap");
    }

    /// SIGTERM, then waits up to `timeout` for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {timeout:?} of SIGTERM",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[derive(QueryableByName)]
struct Number {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Runs a query returning one BIGINT column `n` straight against the test database.
pub fn numbers(database_url: &str, sql: &str) -> Vec<i64> {
    load::<Number>(database_url, sql)
        .into_iter()
        .map(|r| r.n)
        .collect()
}

/// Loads the rows of `sql` straight from the test database, whichever backend it is.
fn load<T>(database_url: &str, sql: &str) -> Vec<T>
where
    T: QueryableByName<diesel::sqlite::Sqlite> + QueryableByName<diesel::pg::Pg> + 'static,
{
    if let Some(path) = database_url.strip_prefix("sqlite://") {
        let mut conn = SqliteConnection::establish(path).expect("open SQLite");
        diesel::sql_query(sql).load(&mut conn).expect(sql)
    } else {
        let mut conn = PgConnection::establish(database_url).expect("open PostgreSQL");
        diesel::sql_query(sql).load(&mut conn).expect(sql)
    }
}

/// A TCP proxy in front of the database that a test can cut and restore.
pub struct Proxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    pub fn start(target: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let streams: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (accept_up, accept_streams, target) = (up.clone(), streams.clone(), target.to_owned());
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                if !accept_up.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                let mut registry = accept_streams.lock().unwrap();
                registry.push(client.try_clone().unwrap());
                registry.push(server.try_clone().unwrap());
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                pipe(server, client);
            }
        });
        Proxy { port, up, streams }
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for stream in self.streams.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Both);
    });
}

#[derive(QueryableByName)]
struct Text {
    #[diesel(sql_type = diesel::sql_types::Text)]
    t: String,
}

/// Runs a query returning one TEXT column `t` straight against the test database.
pub fn texts(database_url: &str, sql: &str) -> Vec<String> {
    load::<Text>(database_url, sql)
        .into_iter()
        .map(|r| r.t)
        .collect()
}

/// Runs a statement straight against the test database.
pub fn execute(database_url: &str, sql: &str) {
    use diesel::connection::SimpleConnection;
    if let Some(path) = database_url.strip_prefix("sqlite://") {
        SqliteConnection::establish(path)
            .expect("open SQLite")
            .batch_execute(sql)
            .expect(sql);
    } else {
        PgConnection::establish(database_url)
            .expect("open PostgreSQL")
            .batch_execute(sql)
            .expect(sql);
    }
}
