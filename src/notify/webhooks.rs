//! Sending one webhook delivery: a signed JSON POST with a short timeout and no redirects.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use reqwest::blocking::Client;
use reqwest::header::{CONTENT_TYPE, USER_AGENT};
use reqwest::redirect::Policy;

use super::destination::{check_url, GuardedResolver};
use super::sealing::Sealer;
use super::signing::{
    sign, DELIVERY_HEADER, EVENT_ID_HEADER, EVENT_NAME_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER,
};
use crate::db::models::ClaimedDelivery;

/// Why an attempt did not end a delivery: the receiver's status, if it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotDelivered {
    pub status: Option<i32>,
    pub error: String,
    /// Trying again cannot help (the destination is refused).
    pub permanent: bool,
}

pub struct WebhookSender {
    client: Client,
    key: Arc<Sealer>,
    allow_private: bool,
}

impl WebhookSender {
    /// Call outside any async runtime (the blocking client runs its own).
    pub fn new(key: Arc<Sealer>, timeout: Duration, allow_private: bool) -> anyhow::Result<Self> {
        let client = Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(Policy::none())
            .dns_resolver(Arc::new(GuardedResolver { allow_private }))
            .pool_max_idle_per_host(2)
            .build()?;
        Ok(WebhookSender {
            client,
            key,
            allow_private,
        })
    }

    /// POSTs the delivery's event; the receiver's status when it answered 2xx.
    pub fn send(&self, delivery: &ClaimedDelivery) -> Result<i32, NotDelivered> {
        let permanent = |error: String| NotDelivered {
            status: None,
            error,
            permanent: true,
        };
        let url = check_url(&delivery.url, self.allow_private).map_err(|e| permanent(e.0))?;
        // Retried: another node, or this one fixed, may hold the right key.
        let secret = self
            .key
            .open(&delivery.secret_sealed)
            .map_err(|e| NotDelivered {
                status: None,
                error: format!("{e:#}"),
                permanent: false,
            })?;
        let timestamp = Utc::now().timestamp();
        let body = delivery.payload.as_bytes();
        let sent = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .header(
                USER_AGENT,
                concat!("stockbatch/", env!("CARGO_PKG_VERSION")),
            )
            .header(EVENT_ID_HEADER, &delivery.event_id)
            .header(EVENT_NAME_HEADER, &delivery.event_name)
            .header(DELIVERY_HEADER, delivery.id.to_string())
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, sign(&secret, timestamp, body))
            .body(delivery.payload.clone())
            .send();
        match sent {
            // The body is not read: a receiver cannot make the dispatcher hold its answer.
            Ok(response) if response.status().is_success() => Ok(response.status().as_u16().into()),
            Ok(response) => Err(NotDelivered {
                status: Some(response.status().as_u16().into()),
                error: format!("the receiver answered {}", response.status()),
                permanent: false,
            }),
            Err(e) => Err(NotDelivered {
                status: None,
                error: describe(&e),
                permanent: false,
            }),
        }
    }
}

fn describe(e: &reqwest::Error) -> String {
    use std::error::Error;
    let mut message = if e.is_timeout() {
        "no answer within the timeout".to_owned()
    } else if e.is_connect() {
        "cannot connect".to_owned()
    } else {
        "the request failed".to_owned()
    };
    let mut source = e.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
