//! Test harness: the real service on port 0 over a fresh database — a temp SQLite file,
//! and, when `STOCKBATCH_TEST_POSTGRES_URL` is set, a fresh PostgreSQL database too.
#![allow(dead_code)]

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::{json, Value};
use stockbatch::auth::accounts::{self, Bootstrap};
use stockbatch::auth::Permission;
use stockbatch::db::{build_pool, DbConnection};
use stockbatch::executor::{Executor, ExecutorConfig};
use stockbatch::{Application, Config};

pub const POSTGRES_URL_VAR: &str = "STOCKBATCH_TEST_POSTGRES_URL";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Makes `fn $name(backend: Backend)`, written just below, into two tests: `$name::sqlite`
/// and `$name::postgres`. The PostgreSQL one shows as ignored, not passed, unless the build
/// saw `STOCKBATCH_TEST_POSTGRES_URL` (build.rs sets `cfg(postgres_tests)`). The function stays
/// a plain item so rustfmt and clippy see it; attributes before a name go on both its tests.
///
/// ```text
/// backend_tests!(health_answers_up);
/// /// What it checks.
/// fn health_answers_up(backend: Backend) { ... }
/// ```
#[allow(unused_macros)] // Not every test file has tests on both backends.
macro_rules! backend_tests {
    ($($(#[$attr:meta])* $name:ident),+ $(,)?) => {$(
        mod $name {
            #[test]
            $(#[$attr])*
            fn sqlite() {
                super::$name($crate::common::Backend::Sqlite);
            }

            #[test]
            $(#[$attr])*
            #[cfg_attr(
                not(postgres_tests),
                ignore = "PostgreSQL: set STOCKBATCH_TEST_POSTGRES_URL (at build time too)"
            )]
            fn postgres() {
                super::$name($crate::common::Backend::Postgres);
            }
        }
    )+};
}
#[allow(unused_imports)]
pub(crate) use backend_tests;

/// A database of its own for one test, removed when dropped.
pub enum TestDb {
    Sqlite {
        dir: tempfile::TempDir,
        url: String,
    },
    Postgres {
        admin_url: String,
        name: String,
        url: String,
    },
}

impl TestDb {
    pub fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("stockbatch.db").display());
                TestDb::Sqlite { dir, url }
            }
            Backend::Postgres => {
                let admin_url = std::env::var(POSTGRES_URL_VAR).unwrap_or_else(|_| {
                    panic!("{POSTGRES_URL_VAR} is not set; the build saw it, so set it to run too")
                });
                let name = format!("stockbatch_test_{}_{:x}", std::process::id(), rand_suffix());
                let mut admin = PgConnection::establish(&admin_url).unwrap_or_else(|e| {
                    panic!("{POSTGRES_URL_VAR} is set but PostgreSQL is unreachable: {e}")
                });
                admin
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .expect("create test database");
                let url = with_database(&admin_url, &name);
                TestDb::Postgres {
                    admin_url,
                    name,
                    url,
                }
            }
        }
    }

    pub fn url(&self) -> &str {
        match self {
            TestDb::Sqlite { url, .. } | TestDb::Postgres { url, .. } => url,
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            TestDb::Sqlite { .. } => Backend::Sqlite,
            TestDb::Postgres { .. } => Backend::Postgres,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres {
            admin_url, name, ..
        } = self
        {
            if let Ok(mut admin) = PgConnection::establish(admin_url) {
                let _ =
                    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        }
    }
}

/// `postgres://user@host:port/db?x` with its database swapped for `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_part = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{host_part}/{name}?{q}"),
        None => format!("{host_part}/{name}"),
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.finish()
}

/// A running service and an HTTP client for it.
pub struct TestApp {
    pub base: String,
    /// Logged in as the administrator created at first start.
    pub client: Client,
    pub token: String,
    pub db: TestDb,
    handle: Option<ServerHandle>,
    thread: Option<JoinHandle<()>>,
}

impl TestApp {
    pub fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(TestDb::new(backend), |_| {})
    }

    /// Starts the service on `db`, letting `adjust` change its configuration first.
    pub fn spawn_with(db: TestDb, adjust: impl FnOnce(&mut Config)) -> TestApp {
        let mut config = Config::new(db.url(), "127.0.0.1:0");
        config.http_workers = 2;
        config.pool_size = 6;
        config.bootstrap = Bootstrap {
            admin_username: Some(ADMIN.to_owned()),
            admin_password: Some(ADMIN_PASSWORD.to_owned()),
            client_id: Some(CLIENT_ID.to_owned()),
            client_secret: Some(CLIENT_SECRET.to_owned()),
        };
        if db.backend() == Backend::Postgres {
            // Not the default file in the working directory.
            let key = stockbatch::notify::SealingKey::generate();
            config.notify.sealing_key = stockbatch::notify::KeySource::Value(key);
        }
        adjust(&mut config);
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let result = actix_web::rt::System::new().block_on(async move {
                let app = match Application::build(config) {
                    Ok(app) => app,
                    Err(e) => {
                        tx.send(Err(format!("{e:#}"))).unwrap();
                        return Ok(());
                    }
                };
                tx.send(Ok((app.port().unwrap(), app.server_handle().unwrap())))
                    .unwrap();
                app.run_until_stopped().await
            });
            result.expect("service ran");
        });
        let (port, handle) = rx.recv().expect("service started").expect("service built");
        let base = format!("http://127.0.0.1:{port}");
        let token = login(&base, ADMIN, ADMIN_PASSWORD);
        TestApp {
            client: client_with_token(&token),
            base,
            token,
            db,
            handle: Some(handle),
            thread: Some(thread),
        }
    }

    /// An executor of its own on the service's database, for services started without one
    /// (`Role::Api`): the test decides when each batch runs.
    pub fn executor(&self) -> Executor {
        Executor::new(
            build_pool(self.db.url(), 2, Duration::from_secs(5)).expect("pool"),
            ExecutorConfig::default(),
            stockbatch::db::WriteGate::default(),
            stockbatch::executor::Completions::default(),
        )
    }

    /// Creates a user straight in the database, as `stockbatch user create` does.
    pub fn create_user(&self, username: &str, retailer: Option<&str>, permissions: &[Permission]) {
        self.with_db(|conn| {
            accounts::create_user(conn, username, USER_PASSWORD, retailer, permissions)
                .expect("create user");
        });
    }

    /// Runs `work` on a connection of its own to the service's database, as the CLI does.
    pub fn with_db<T>(&self, work: impl FnOnce(&mut DbConnection) -> T) -> T {
        let pool = build_pool(self.db.url(), 1, Duration::from_secs(5)).expect("pool");
        let mut conn = pool.get().expect("connection");
        work(&mut conn)
    }

    /// A client authenticated with a new API key of `retailer` (every permission), whose
    /// StateSet items default to `location`.
    pub fn api_key_client(&self, retailer: &str, location: &str) -> Client {
        let name = format!("key-{retailer}-{location}-{}", rand_suffix());
        let key = self.with_db(|conn| {
            stockbatch::auth::api_keys::create_api_key(
                conn,
                &name,
                retailer,
                &Permission::ALL,
                location,
            )
            .expect("create API key")
        });
        client_with_token(&key)
    }

    /// A client logged in as `username` (whose password is [`USER_PASSWORD`]).
    pub fn client_as(&self, username: &str) -> Client {
        client_with_token(&login(&self.base, username, USER_PASSWORD))
    }

    /// A client that sends no Authorization header.
    pub fn anonymous(&self) -> Client {
        Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self.client.get(self.url(path)).send().expect("GET");
        read(response)
    }

    pub fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(self.url(path))
            .json(body)
            .send()
            .expect("POST");
        read(response)
    }

    /// Sends `body` as-is with the given content type (None: no Content-Type header).
    pub fn post_raw(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<reqwest::blocking::Body>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.post(self.url(path)).body(body);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        read(request.send().expect("POST"))
    }

    pub fn create_job(&self, retailer_id: Value) -> String {
        let (status, body) = self.post(
            "/api/v4.1/job",
            &json!({"name": "Batch Inventory Job", "retailerId": retailer_id}),
        );
        assert_eq!(status, StatusCode::OK, "{body}");
        body["id"].as_str().expect("job id is a string").to_owned()
    }

    pub fn post_batch(&self, job_id: &str, entities: Value) -> String {
        let (status, body) = self.post(
            &format!("/api/v4.1/job/{job_id}/batch"),
            &json!({"action": "UPSERT", "entityType": "INVENTORY", "entities": entities}),
        );
        assert_eq!(status, StatusCode::OK, "{body}");
        body["id"]
            .as_str()
            .expect("batch id is a string")
            .to_owned()
    }

    /// Polls until the batch is COMPLETE; returns the batch with its first `count` results.
    pub fn wait_complete(&self, job_id: &str, batch_id: &str, count: usize) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, body) = self.get(&format!(
                "/api/v4.1/job/{job_id}/batch/{batch_id}?count={count}"
            ));
            assert_eq!(status, StatusCode::OK, "{body}");
            if body["status"] == "COMPLETE" {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "batch {batch_id} not COMPLETE in time: {body}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            drop(handle.stop(false));
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub const ADMIN: &str = "admin";
pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";
pub const CLIENT_ID: &str = "test-client";
pub const CLIENT_SECRET: &str = "test-client-secret";
pub const USER_PASSWORD: &str = "user-password-for-tests";

/// The access token of a password grant, as Fluent clients request it (form body).
pub fn login(base: &str, username: &str, password: &str) -> String {
    let (status, body) = token_request(base, &[("username", username), ("password", password)]);
    assert_eq!(status, StatusCode::OK, "login as {username}: {body}");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

/// `POST /oauth/token` with a password grant's form body plus `extra` fields.
pub fn token_request(base: &str, extra: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut fields = vec![
        ("grant_type", "password"),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
        ("scope", "api"),
    ];
    for (key, value) in extra {
        fields.retain(|(k, _)| k != key);
        fields.push((key, value));
    }
    let body = serde_urlencoded::to_string(&fields).unwrap();
    let response = Client::new()
        .post(format!("{base}/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .expect("POST /oauth/token");
    read(response)
}

pub fn client_with_token(token: &str) -> Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    Client::builder()
        .timeout(Duration::from_secs(30))
        .default_headers(headers)
        .build()
        .unwrap()
}

pub fn read(response: reqwest::blocking::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().expect("body");
    let body =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    (status, body)
}

/// Asserts the Fluent error body: `{"errors":[{"code","message"}]}` with `code` the status.
pub fn assert_errors(status: StatusCode, body: &Value, expected: StatusCode) {
    assert_eq!(status, expected, "{body}");
    let errors = body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors array: {body}"));
    assert!(!errors.is_empty(), "{body}");
    for e in errors {
        assert_eq!(e["code"], expected.as_u16().to_string(), "{body}");
        assert!(
            e["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
    }
}

/// An inventory record for `retailer`.
pub fn record(retailer: &str, location: &str, sku: &str, qty: i64) -> Value {
    json!({"retailerId": retailer, "locationRef": location, "skuRef": sku, "qty": qty})
}

/// [`assert_errors`] naming the backend on a wrong status; returns the messages.
pub fn error_messages(
    backend: Backend,
    status: StatusCode,
    body: &Value,
    expected: StatusCode,
) -> Vec<String> {
    assert_eq!(status, expected, "{backend:?}: {body}");
    assert_errors(status, body, expected);
    body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}
