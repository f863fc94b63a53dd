//! The loader's HTTP client of the service's own API: log in, create the job, post
//! batches, watch them and read their failures. Every request is retried when the
//! service asks for patience (429 and 503, after their `Retry-After`), on 5xx answers and
//! on network errors, a bounded number of times with backoff; posts carry an
//! Idempotency-Key, so a retry never creates anything twice. A 401 logs in again, once.

use std::io::BufRead;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::Duration;

use anyhow::Context;
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::api::http_io::CLIENT_IDLE_TIMEOUT;

/// How the loader logs in: as a user of the client (password grant), or as the client
/// itself when it is bound to a retailer (client_credentials grant).
#[derive(Clone)]
pub struct Credentials {
    pub client_id: String,
    pub client_secret: String,
    /// Username and password.
    pub user: Option<(String, String)>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"***")
            .field("username", &self.user.as_ref().map(|(u, _)| u))
            .finish()
    }
}

/// Longest a `Retry-After` is waited for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);
/// Backoff without a `Retry-After`: doubling from this, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Logins one request may need: each after its token expired while it waited.
const MAX_LOGINS_PER_REQUEST: u32 = 5;

/// A batch as its view shows it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchState {
    pub status: String,
    #[serde(default)]
    pub applied_entities: Option<i64>,
    #[serde(default)]
    pub unchanged_entities: Option<i64>,
    #[serde(default)]
    pub stalled: bool,
}

impl BatchState {
    pub fn complete(&self) -> bool {
        self.status == "COMPLETE"
    }
}

/// A record of a batch that was not applied, as the results export gives it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedRecord {
    /// 1-based position in the batch.
    pub index: usize,
    pub response_code: i32,
    pub message: String,
    pub record: Box<RawValue>,
}

/// Whether a result code means the record was applied ("Inventory unchanged" included).
pub fn applied(code: i32) -> bool {
    matches!(code, 200 | 201)
}

struct Token {
    /// Bumped at each login, so concurrent 401s log in once.
    generation: u64,
    value: String,
}

pub struct Api {
    http: Client,
    base: String,
    credentials: Credentials,
    token: RwLock<Token>,
    max_retries: u32,
    /// Answers that asked to wait (429, 503).
    waits: AtomicU64,
    /// Other retries (5xx, network errors).
    retries: AtomicU64,
    /// Logins after the first.
    relogins: AtomicU64,
}

/// How often the load had to wait, retry or log in again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retries {
    pub waits: u64,
    pub retries: u64,
    pub relogins: u64,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
}

#[derive(Deserialize)]
struct IdAnswer {
    id: String,
}

/// A request the service answered with an error, finally.
#[derive(Debug)]
pub struct Refused {
    pub what: String,
    pub status: StatusCode,
    pub message: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: the service answered {}: {}",
            self.what, self.status, self.message
        )
    }
}

impl std::error::Error for Refused {}

/// Why a request gave up: its final answer, or the last network error.
enum Failure {
    Status(StatusCode, String),
    Network(reqwest::Error),
}

impl Api {
    /// Logs in at `base` (e.g. `http://127.0.0.1:8080`).
    pub fn connect(base: &str, credentials: Credentials, max_retries: u32) -> anyhow::Result<Api> {
        let http = Client::builder()
            .timeout(Duration::from_secs(300))
            .pool_idle_timeout(CLIENT_IDLE_TIMEOUT)
            .user_agent(concat!("stockbatch-load/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot set up the HTTP client")?;
        let api = Api {
            http,
            base: base.trim_end_matches('/').to_owned(),
            credentials,
            token: RwLock::new(Token {
                generation: 0,
                value: String::new(),
            }),
            max_retries,
            waits: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            relogins: AtomicU64::new(0),
        };
        // A wrong URL should not take minutes to tell: the first login retries little.
        let first = Api {
            max_retries: max_retries.min(3),
            ..api
        };
        first.login(0)?;
        Ok(Api {
            max_retries,
            ..first
        })
    }

    pub fn retries(&self) -> Retries {
        Retries {
            waits: self.waits.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            relogins: self.relogins.load(Ordering::Relaxed),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Logs in unless someone did since `seen` (the token generation a 401 came with).
    fn login(&self, seen: u64) -> anyhow::Result<()> {
        let mut token = self.token.write().unwrap_or_else(|e| e.into_inner());
        if token.generation != seen {
            return Ok(());
        }
        let c = &self.credentials;
        let mut form = vec![
            ("client_id", c.client_id.as_str()),
            ("client_secret", c.client_secret.as_str()),
            ("scope", "api"),
        ];
        match &c.user {
            Some((username, password)) => form.extend([
                ("grant_type", "password"),
                ("username", username.as_str()),
                ("password", password.as_str()),
            ]),
            None => form.push(("grant_type", "client_credentials")),
        }
        let body = serde_urlencoded::to_string(&form).expect("a form encodes");
        let response = self
            .retrying(|| {
                self.http
                    .post(self.url("/oauth/token"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body.clone())
            })
            .map_err(|(f, _)| self.explain(f, "logging in"))?;
        let answer: TokenAnswer = response.json().context("logging in: no access_token")?;
        if token.generation > 0 {
            self.relogins.fetch_add(1, Ordering::Relaxed);
        }
        token.generation += 1;
        token.value = answer.access_token;
        Ok(())
    }

    /// Sends the request `build` makes, with the current token, retrying as the module
    /// says. A 401 logs in again (a token may expire while a request waits out a 429);
    /// one that answers a token just obtained is final.
    fn send(&self, what: &str, build: impl Fn() -> RequestBuilder) -> anyhow::Result<Response> {
        let mut fresh = false;
        let mut logins = 0;
        loop {
            let (generation, value) = {
                let t = self.token.read().unwrap_or_else(|e| e.into_inner());
                (t.generation, t.value.clone())
            };
            match self.retrying(|| build().bearer_auth(&value)) {
                Err((Failure::Status(StatusCode::UNAUTHORIZED, _), attempts))
                    if !(fresh && attempts == 0) && logins < MAX_LOGINS_PER_REQUEST =>
                {
                    self.login(generation)?;
                    fresh = true;
                    logins += 1;
                }
                Err((f, _)) => return Err(self.explain(f, what)),
                Ok(response) => return Ok(response),
            }
        }
    }

    /// Sends until a final answer: a success, or an error not worth retrying (4xx but
    /// 408 and 429), or the retries are spent; an error comes with the retries made.
    fn retrying(&self, build: impl Fn() -> RequestBuilder) -> Result<Response, (Failure, u32)> {
        let mut attempt = 0u32;
        loop {
            let (failure, wait) = match build().send() {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) => {
                    let status = response.status();
                    let retry_after = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
                    let retryable = status.is_server_error()
                        || status == StatusCode::TOO_MANY_REQUESTS
                        || status == StatusCode::REQUEST_TIMEOUT;
                    let body = response.text().unwrap_or_default();
                    let failure = Failure::Status(status, body);
                    if !retryable {
                        return Err((failure, attempt));
                    }
                    (failure, retry_after)
                }
                Err(e) => (Failure::Network(e), None),
            };
            if attempt >= self.max_retries {
                return Err((failure, attempt));
            }
            match &failure {
                Failure::Status(
                    StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE,
                    _,
                ) => self.waits.fetch_add(1, Ordering::Relaxed),
                _ => self.retries.fetch_add(1, Ordering::Relaxed),
            };
            let backoff = (FIRST_BACKOFF * 2u32.saturating_pow(attempt.min(16))).min(MAX_BACKOFF);
            std::thread::sleep(wait.unwrap_or(backoff));
            attempt += 1;
        }
    }

    fn explain(&self, failure: Failure, what: &str) -> anyhow::Error {
        match failure {
            Failure::Network(e) => {
                anyhow::Error::new(e).context(format!("{what}: {} did not answer", self.base))
            }
            Failure::Status(status, body) => anyhow::Error::new(Refused {
                what: what.to_owned(),
                status,
                message: messages(&body),
            }),
        }
    }

    /// Creates the job (or gets back the one an earlier run with `key` created).
    pub fn create_job(&self, name: &str, retailer: &str, key: &str) -> anyhow::Result<String> {
        let body = serde_json::json!({"name": name, "retailerId": retailer}).to_string();
        let response = self.send("creating the job", || {
            self.http
                .post(self.url("/api/v4.1/job"))
                .header("content-type", "application/json")
                .header("Idempotency-Key", key)
                .body(body.clone())
        })?;
        Ok(response.json::<IdAnswer>().context("creating the job")?.id)
    }

    /// Posts a batch body (or gets back the batch an earlier post with `key` created).
    pub fn post_batch(&self, job_id: &str, body: &[u8], key: &str) -> anyhow::Result<String> {
        let response = self.send("posting a batch", || {
            self.http
                .post(self.url(&format!("/api/v4.1/job/{job_id}/batch")))
                .header("content-type", "application/json")
                .header("Idempotency-Key", key)
                .body(body.to_vec())
        })?;
        Ok(response.json::<IdAnswer>().context("posting a batch")?.id)
    }

    pub fn batch_state(&self, job_id: &str, batch_id: &str) -> anyhow::Result<BatchState> {
        let what = format!("reading batch {batch_id}");
        let response = self.send(&what, || {
            self.http
                .get(self.url(&format!("/api/v4.1/job/{job_id}/batch/{batch_id}?count=1")))
        })?;
        response.json().context(what)
    }

    /// The records of a COMPLETE batch that were not applied.
    pub fn failures(&self, job_id: &str, batch_id: &str) -> anyhow::Result<Vec<FailedRecord>> {
        let what = format!("reading the failures of batch {batch_id}");
        // A read cut short is read again whole: the report gets each failure once.
        let mut attempt = 0;
        loop {
            let response = self.send(&what, || {
                self.http.get(self.url(&format!(
                    "/api/v4.1/job/{job_id}/batch/{batch_id}/results?failed=true&format=ndjson"
                )))
            })?;
            let mut failures = Vec::new();
            let read = std::io::BufReader::new(response)
                .lines()
                .try_for_each(|line| {
                    let line = line?;
                    if !line.trim().is_empty() {
                        let record: FailedRecord = serde_json::from_str(&line)?;
                        if !applied(record.response_code) {
                            failures.push(record);
                        }
                    }
                    anyhow::Ok(())
                });
            match read {
                Ok(()) => return Ok(failures),
                Err(e) if attempt >= self.max_retries => return Err(e.context(what)),
                Err(_) => {
                    attempt += 1;
                    std::thread::sleep(FIRST_BACKOFF);
                }
            }
        }
    }
}

/// The messages of an error body (Fluent's `errors`, OAuth's `error_description`), or
/// its text.
fn messages(body: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    if let Some(errors) = value["errors"].as_array() {
        let joined: Vec<&str> = errors
            .iter()
            .filter_map(|e| e["message"].as_str())
            .collect();
        if !joined.is_empty() {
            return joined.join("; ");
        }
    }
    if let Some(description) = value["error_description"].as_str() {
        return description.to_owned();
    }
    let text = body.trim();
    match text.char_indices().nth(300) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None if text.is_empty() => "(no body)".to_owned(),
        None => text.to_owned(),
    }
}
