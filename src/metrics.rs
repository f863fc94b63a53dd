//! Prometheus metrics: counters and histograms kept by this process as it works, and
//! gauges of the shared queue read from the database at each scrape (`api::metrics`).

use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The route template (`/api/v4.1/job/{jobId}`), or `unmatched`.
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BatchLabels {
    pub retailer: String,
    /// `fluent` or `stateset`.
    pub api: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RetailerLabels {
    pub retailer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub event: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    /// `webhook` or `email`.
    pub channel: &'static str,
    /// `sent`, `retried` or `failed`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    /// `api`, `executor` or `dispatcher`.
    pub pool: &'static str,
    /// `in_use` or `idle`.
    pub state: &'static str,
}

type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

pub struct Metrics {
    pub registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_seconds: Family<RouteLabels, Histogram, fn() -> Histogram>,
    pub batches_completed: Family<BatchLabels, Counter>,
    pub records_applied: Family<BatchLabels, Counter>,
    pub records_rejected: Family<BatchLabels, Counter>,
    pub records_unchanged: Family<BatchLabels, Counter>,
    /// Fluent's names: records that went through Batch Pre-Processing, and those it left.
    pub bpp_processed: Family<RetailerLabels, Counter>,
    pub bpp_unchanged: Family<RetailerLabels, Counter>,
    pub apply_seconds: Histogram,
    pub completion_seconds: Histogram,
    /// `claim`, `lease_renewal`, `lease_lost`, `retry`, `requeue`, `final_failure`.
    pub executor_events: Family<EventLabels, Counter>,
    pub login_failures: Counter,
    pub login_lockouts: Counter,
    pub deliveries: Family<DeliveryLabels, Counter>,
    pub queue_batches: Family<StatusLabels, Gauge>,
    pub queue_records: Gauge,
    pub oldest_pending_seconds: FloatGauge,
    pub delivery_queue_seconds: FloatGauge,
    pub pending_deliveries: Gauge,
    pub executors_alive: Gauge,
    pub pool_connections: Family<PoolLabels, Gauge>,
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// Counts one HTTP request and its latency under its route template; methods outside the
/// usual ones, and paths no route matches, are counted together.
pub fn http_request(
    route: Option<String>,
    method: &actix_web::http::Method,
    status: actix_web::http::StatusCode,
    took: std::time::Duration,
) {
    use actix_web::http::Method;
    let method = match *method {
        Method::GET | Method::HEAD | Method::POST | Method::PUT | Method::DELETE => method.as_str(),
        _ => "OTHER",
    };
    let route = route.unwrap_or_else(|| "unmatched".to_owned());
    let m = metrics();
    m.http_requests
        .get_or_create(&HttpLabels {
            route: route.clone(),
            method: method.to_owned(),
            status: status.as_u16(),
        })
        .inc();
    m.http_seconds
        .get_or_create(&RouteLabels { route })
        .observe(took.as_secs_f64());
}

/// Counts one executor event.
pub fn executor_event(event: &'static str) {
    metrics()
        .executor_events
        .get_or_create(&EventLabels { event })
        .inc();
}

/// Counts one webhook or email attempt's outcome.
pub fn notification_attempt(channel: &'static str, outcome: &'static str) {
    metrics()
        .deliveries
        .get_or_create(&DeliveryLabels { channel, outcome })
        .inc();
}

fn histogram(start: f64, buckets: u16) -> Histogram {
    Histogram::new(exponential_buckets(start, 2.0, buckets))
}

/// HTTP latencies: 1 ms to 8 s.
fn http_histogram() -> Histogram {
    histogram(0.001, 14)
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::default();
        let m = Metrics {
            http_requests: Family::default(),
            http_seconds: Family::new_with_constructor(http_histogram as fn() -> Histogram),
            batches_completed: Family::default(),
            records_applied: Family::default(),
            records_rejected: Family::default(),
            records_unchanged: Family::default(),
            bpp_processed: Family::default(),
            bpp_unchanged: Family::default(),
            apply_seconds: histogram(0.005, 14),
            completion_seconds: histogram(0.01, 16),
            executor_events: Family::default(),
            login_failures: Counter::default(),
            login_lockouts: Counter::default(),
            deliveries: Family::default(),
            queue_batches: Family::default(),
            queue_records: Gauge::default(),
            oldest_pending_seconds: FloatGauge::default(),
            delivery_queue_seconds: FloatGauge::default(),
            pending_deliveries: Gauge::default(),
            executors_alive: Gauge::default(),
            pool_connections: Family::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "stockbatch_http_requests",
            "HTTP requests by route template, method and status",
            m.http_requests.clone(),
        );
        r.register(
            "stockbatch_http_request_duration_seconds",
            "HTTP request latency by route template",
            m.http_seconds.clone(),
        );
        r.register(
            "stockbatch_batches_completed",
            "Batches this process completed, by retailer and API",
            m.batches_completed.clone(),
        );
        r.register(
            "stockbatch_records_applied",
            "Records (items) applied, unchanged ones included",
            m.records_applied.clone(),
        );
        r.register(
            "stockbatch_records_rejected",
            "Records (items) not applied: refused, skipped or cancelled",
            m.records_rejected.clone(),
        );
        r.register(
            "stockbatch_records_unchanged",
            "Records applied that changed nothing",
            m.records_unchanged.clone(),
        );
        r.register(
            "bpp_records_processed",
            "Records that went through Batch Pre-Processing",
            m.bpp_processed.clone(),
        );
        r.register(
            "bpp_records_unchanged",
            "Records Batch Pre-Processing found unchanged and did not write",
            m.bpp_unchanged.clone(),
        );
        r.register(
            "stockbatch_batch_apply_duration_seconds",
            "Time an executor took to apply a batch",
            m.apply_seconds.clone(),
        );
        r.register(
            "stockbatch_batch_latency_seconds",
            "Time from a batch's POST to its COMPLETE",
            m.completion_seconds.clone(),
        );
        r.register(
            "stockbatch_executor_events",
            "Executor claims, lease renewals and losses, retries, requeues and final failures",
            m.executor_events.clone(),
        );
        r.register(
            "stockbatch_login_failures",
            "Failed logins at /oauth/token (bad credentials)",
            m.login_failures.clone(),
        );
        r.register(
            "stockbatch_login_lockouts",
            "Usernames locked after repeated failures",
            m.login_lockouts.clone(),
        );
        r.register(
            "stockbatch_notification_attempts",
            "Webhook and email attempts by outcome",
            m.deliveries.clone(),
        );
        r.register(
            "stockbatch_queue_batches",
            "Unfinished batches by status (every node's)",
            m.queue_batches.clone(),
        );
        r.register(
            "stockbatch_queue_records",
            "Records in unfinished batches",
            m.queue_records.clone(),
        );
        r.register(
            "stockbatch_queue_oldest_pending_seconds",
            "Age of the oldest PENDING batch, 0 with none",
            m.oldest_pending_seconds.clone(),
        );
        r.register(
            "stockbatch_webhook_queue_oldest_seconds",
            "Age of the oldest undelivered webhook event, 0 with none",
            m.delivery_queue_seconds.clone(),
        );
        r.register(
            "stockbatch_webhook_deliveries_pending",
            "Webhook deliveries waiting to be sent or retried",
            m.pending_deliveries.clone(),
        );
        r.register(
            "stockbatch_executors_alive",
            "Executor workers that said they were alive in the last 15 seconds",
            m.executors_alive.clone(),
        );
        r.register(
            "stockbatch_db_connections",
            "This process's database connections by pool and state",
            m.pool_connections.clone(),
        );
        Metrics { registry, ..m }
    }
}
