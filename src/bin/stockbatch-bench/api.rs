//! The service's HTTP API as a retailer integration uses it.

use std::time::Duration;

use anyhow::{bail, Context};
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;
use serde::Deserialize;
use stockbatch::api::http_io::CLIENT_IDLE_TIMEOUT;

use crate::service::Credentials;

/// How often a request refused with 503 (database busy) is tried again.
const MAX_ATTEMPTS: u32 = 10;

#[derive(Clone)]
pub struct Api {
    base: String,
    http: Client,
    token: Option<String>,
}

#[derive(Deserialize)]
struct Id {
    id: String,
}

#[derive(Deserialize)]
struct Token {
    access_token: String,
}

#[derive(Deserialize, Debug)]
pub struct BatchPage {
    pub status: String,
    pub total: i64,
    pub results: Vec<RecordResult>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct RecordResult {
    pub entity_id: Option<String>,
    pub entity_ref: Option<String>,
    pub response_code: i32,
    pub message: String,
}

/// A StateSet batch as `POST /api/v1/inventory/batch` (200) and `GET .../{batch_id}` show it.
#[derive(Deserialize, Debug)]
pub struct StateSetBatch {
    pub batch_id: String,
    pub status: String,
    pub summary: Summary,
    pub results: Vec<ItemResult>,
}

#[derive(Deserialize, Debug)]
pub struct Summary {
    pub total_items: i64,
    pub processed: i64,
    pub failed: i64,
    pub skipped: i64,
}

#[derive(Deserialize, Debug)]
pub struct ItemResult {
    pub sku: Option<String>,
    pub status: String,
    pub message: String,
    pub data: Option<Adjusted>,
}

/// An applied adjustment's result data.
#[derive(Deserialize, Debug)]
pub struct Adjusted {
    pub location: String,
    pub previous_quantity: i64,
    pub new_quantity: i64,
    pub adjustment: i64,
}

/// A request that succeeded, and how many 503s it met first.
pub struct Accepted<T> {
    pub value: T,
    pub retries: u32,
}

impl Api {
    /// A client of the service at `base`, with a bearer token when the service issues them
    /// (a 404 from `/oauth/token` means it has no authentication: go on without one).
    pub fn connect(base: &str, creds: &Credentials) -> anyhow::Result<Api> {
        let http = Client::builder()
            .timeout(Duration::from_secs(300))
            .pool_idle_timeout(CLIENT_IDLE_TIMEOUT)
            .build()?;
        let response = http
            .post(format!("{base}/oauth/token"))
            .form(&[
                ("grant_type", "password"),
                ("username", &creds.username),
                ("password", &creds.password),
                ("client_id", &creds.client_id),
                ("client_secret", &creds.client_secret),
                ("scope", "api"),
            ])
            .send()
            .context("POST /oauth/token")?;
        let token = match response.status() {
            StatusCode::NOT_FOUND => None,
            StatusCode::OK => Some(response.json::<Token>()?.access_token),
            status => bail!("POST /oauth/token: {status}: {}", response.text()?),
        };
        Ok(Api {
            base: base.to_owned(),
            http,
            token,
        })
    }

    /// The same client with another bearer token (a StateSet API key).
    pub fn with_token(&self, token: &str) -> Api {
        Api {
            token: Some(token.to_owned()),
            ..self.clone()
        }
    }

    pub fn authenticated(&self) -> bool {
        self.token.is_some()
    }

    fn send(
        &self,
        what: &str,
        build: impl Fn() -> RequestBuilder,
    ) -> anyhow::Result<Accepted<Response>> {
        for retries in 0.. {
            let mut request = build();
            if let Some(token) = &self.token {
                request = request.header(AUTHORIZATION, format!("Bearer {token}"));
            }
            let response = request.send().with_context(|| what.to_owned())?;
            let status = response.status();
            if status == StatusCode::SERVICE_UNAVAILABLE && retries + 1 < MAX_ATTEMPTS {
                let wait = response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok()?.parse().ok())
                    .unwrap_or(1);
                std::thread::sleep(Duration::from_secs(wait));
                continue;
            }
            if !status.is_success() {
                bail!("{what}: {status}: {}", response.text().unwrap_or_default());
            }
            return Ok(Accepted {
                value: response,
                retries,
            });
        }
        unreachable!("the loop returns")
    }

    pub fn create_job(&self, name: &str, retailer_id: &str) -> anyhow::Result<String> {
        let body = serde_json::json!({"name": name, "retailerId": retailer_id}).to_string();
        let response = self.send("POST /api/v4.1/job", || {
            self.http
                .post(format!("{}/api/v4.1/job", self.base))
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone())
        })?;
        Ok(response.value.json::<Id>()?.id)
    }

    /// Posts a batch body (JSON) and returns the batch id.
    pub fn post_batch(&self, job_id: &str, body: &[u8]) -> anyhow::Result<Accepted<String>> {
        let response = self.send("POST batch", || {
            self.http
                .post(format!("{}/api/v4.1/job/{job_id}/batch", self.base))
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_vec())
        })?;
        Ok(Accepted {
            value: response.value.json::<Id>()?.id,
            retries: response.retries,
        })
    }

    /// Posts a StateSet batch (JSON); the answer's status (200 with final results, or 202
    /// while the batch is processing) and the batch.
    pub fn post_stateset(&self, body: &[u8]) -> anyhow::Result<(StatusCode, StateSetBatch)> {
        let response = self.send("POST /api/v1/inventory/batch", || {
            self.http
                .post(format!("{}/api/v1/inventory/batch", self.base))
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_vec())
        })?;
        let status = response.value.status();
        Ok((status, response.value.json()?))
    }

    pub fn stateset_batch(&self, batch_id: &str) -> anyhow::Result<StateSetBatch> {
        let url = format!("{}/api/v1/inventory/batch/{batch_id}", self.base);
        Ok(self
            .send("GET /api/v1/inventory/batch", || self.http.get(&url))?
            .value
            .json()?)
    }

    /// `GET path` as JSON.
    pub fn get_json(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}{path}", self.base);
        Ok(self
            .send(&format!("GET {path}"), || self.http.get(&url))?
            .value
            .json()?)
    }

    pub fn page(
        &self,
        job_id: &str,
        batch_id: &str,
        start: usize,
        count: usize,
    ) -> anyhow::Result<BatchPage> {
        let url = format!(
            "{}/api/v4.1/job/{job_id}/batch/{batch_id}?start={start}&count={count}",
            self.base
        );
        let response = self.send("GET batch", || self.http.get(&url))?;
        Ok(response.value.json()?)
    }
}
