//! Request bodies read within limits: at most `max` bytes (after decompression), within a
//! deadline, and only while the process-wide budget of body bytes in flight allows. A
//! burst of large uploads is refused with 503 instead of growing memory, and a body that
//! trickles in is cut off with 408.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Decompress, Payload};
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::web::{Bytes, BytesMut, Data};
use actix_web::{FromRequest, HttpRequest};
use futures_util::StreamExt;

use super::error::ApiError;
use super::support::AppState;

#[derive(Debug, Clone)]
pub struct BodyLimits {
    /// Largest body, decompressed.
    pub max_bytes: usize,
    /// Body bytes all requests together may hold while they are read and handled.
    pub in_flight_bytes: usize,
    /// How long a body may take to arrive.
    pub timeout: Duration,
}

impl Default for BodyLimits {
    fn default() -> Self {
        BodyLimits {
            max_bytes: 16 * 1024 * 1024,
            in_flight_bytes: 64 * 1024 * 1024,
            timeout: Duration::from_secs(60),
        }
    }
}

/// A smaller largest body for one resource (e.g. `/oauth/token`), as its app data.
#[derive(Debug, Clone, Copy)]
pub struct MaxBody(pub usize);

/// The bytes in flight, shared by every worker.
#[derive(Clone)]
pub struct BodyBudget {
    limits: BodyLimits,
    in_use: Arc<AtomicUsize>,
}

impl BodyBudget {
    pub fn new(limits: BodyLimits) -> Self {
        BodyBudget {
            limits,
            in_use: Arc::default(),
        }
    }

    fn hold(&self, bytes: usize) -> Option<Held> {
        let limit = self.limits.in_flight_bytes;
        self.in_use
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                (used + bytes <= limit).then_some(used + bytes)
            })
            .ok()?;
        Some(Held {
            bytes,
            in_use: self.in_use.clone(),
        })
    }
}

/// Bytes of the budget, given back when dropped.
struct Held {
    bytes: usize,
    in_use: Arc<AtomicUsize>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.in_use.fetch_sub(self.bytes, Ordering::SeqCst);
    }
}

/// A request body, holding its share of the budget until dropped: keep it alive for as
/// long as its bytes (or what is parsed from them) are in memory.
pub struct Body {
    bytes: Bytes,
    _held: Held,
}

impl std::ops::Deref for Body {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl FromRequest for Body {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Body, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let budget = req
            .app_data::<Data<AppState>>()
            .map(|state| state.bodies.clone());
        let max = req.app_data::<MaxBody>().map(|m| m.0);
        let declared = declared_length(req);
        let encoded = req
            .headers()
            .get(header::CONTENT_ENCODING)
            .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
        let stream = Decompress::from_headers(payload.take(), req.headers());
        Box::pin(async move {
            let budget =
                budget.ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no app state")))?;
            let max = max.unwrap_or(budget.limits.max_bytes);
            let declared = declared?;
            if declared.is_some_and(|n| n > max && !encoded) {
                return Err(too_large(max));
            }
            // A compressed or chunked body may grow to the largest allowed.
            let expected = declared.filter(|_| !encoded).unwrap_or(max);
            let held = budget.hold(expected).ok_or_else(|| {
                ApiError::Busy("too many request bodies are being received; retry shortly".into())
            })?;
            let read = read_all(stream, expected, max, encoded);
            let bytes = tokio::time::timeout(budget.limits.timeout, read)
                .await
                .map_err(|_| {
                    ApiError::RequestTimeout(format!(
                        "the request body did not arrive within {} seconds",
                        budget.limits.timeout.as_secs()
                    ))
                })??;
            Ok(Body { bytes, _held: held })
        })
    }
}

fn declared_length(req: &HttpRequest) -> Result<Option<usize>, ApiError> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| ApiError::bad_request("Content-Length must be a number of bytes"))
        })
        .transpose()
}

async fn read_all(
    mut stream: Decompress<Payload>,
    expected: usize,
    max: usize,
    encoded: bool,
) -> Result<Bytes, ApiError> {
    let mut buf = BytesMut::with_capacity(if encoded { 8192 } else { expected });
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| payload_error(e, encoded))?;
        if buf.len() + chunk.len() > max {
            return Err(too_large(max));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

fn too_large(max: usize) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "the request body is larger than this service accepts ({max} bytes)"
    ))
}

fn payload_error(e: PayloadError, encoded: bool) -> ApiError {
    match e {
        PayloadError::Overflow => {
            ApiError::PayloadTooLarge("the request body is larger than this service accepts".into())
        }
        _ if encoded => ApiError::bad_request(
            "the request body could not be decompressed: it does not match its Content-Encoding",
        ),
        PayloadError::Incomplete(_) => {
            ApiError::bad_request("the request body ended before it was complete")
        }
        _ => ApiError::bad_request("the request body could not be read"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_holds_bytes_until_they_are_dropped() {
        let budget = BodyBudget::new(BodyLimits {
            in_flight_bytes: 100,
            ..BodyLimits::default()
        });
        let a = budget.hold(60).unwrap();
        assert!(budget.hold(50).is_none(), "60 + 50 is over 100");
        let b = budget.hold(40).unwrap();
        drop(a);
        assert!(budget.hold(60).is_some());
        drop(b);
        assert_eq!(budget.in_use.load(Ordering::SeqCst), 0);
    }
}
