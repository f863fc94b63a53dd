//! `/metrics`: who may read it, and that it counts what the service did.

mod common;

use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use serde_json::json;
use stockbatch::auth::Permission;

const TOKEN: &str = "scrape-me-0123456789";

/// The value of the sample `name{labels}` (labels as written, in order), if present.
fn sample(body: &str, name_and_labels: &str) -> Option<f64> {
    body.lines()
        .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn scrape(client: &reqwest::blocking::Client, url: &str) -> (StatusCode, String) {
    let response = client.get(url).send().unwrap();
    let status = response.status();
    if status == StatusCode::OK {
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"));
    }
    (status, response.text().unwrap())
}

backend_tests!(metrics_take_the_scrape_token_or_an_administrator_and_count_the_work);
fn metrics_take_the_scrape_token_or_an_administrator_and_count_the_work(backend: Backend) {
    let app = TestApp::spawn_with(TestDb::new(backend), |c| {
        c.metrics.token = Some(TOKEN.to_owned());
    });
    let url = app.url("/metrics");
    let (status, body) = scrape(&app.anonymous(), &url);
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _) = scrape(&client_with_token("wrong-token"), &url);
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    app.create_user("shop", Some("7"), &Permission::ALL);
    let (status, body) = scrape(&app.client_as("shop"), &url);
    assert_eq!(status, StatusCode::FORBIDDEN, "a retailer's user: {body}");

    let job = app.create_job(json!("7"));
    let first = app.post_batch(
        &job,
        json!([record("7", "L", "A", 1), record("7", "L", "B", 2)]),
    );
    app.wait_complete(&job, &first, 2);
    // The same again: Batch Pre-Processing finds both unchanged.
    let again = app.post_batch(
        &job,
        json!([record("7", "L", "A", 1), record("7", "L", "B", 2)]),
    );
    app.wait_complete(&job, &again, 2);

    let (status, body) = scrape(&client_with_token(TOKEN), &url);
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.ends_with("# EOF\n"), "OpenMetrics text");
    let labels = r#"{retailer="7",api="fluent"}"#;
    assert!(
        sample(
            &body,
            &format!("stockbatch_batches_completed_total{labels}")
        ) >= Some(2.0),
        "{body}"
    );
    assert!(sample(&body, &format!("stockbatch_records_applied_total{labels}")) >= Some(4.0));
    assert!(
        sample(&body, r#"bpp_records_processed_total{retailer="7"}"#) >= Some(4.0),
        "{body}"
    );
    assert!(
        sample(&body, r#"bpp_records_unchanged_total{retailer="7"}"#) >= Some(2.0),
        "{body}"
    );
    assert!(sample(&body, r#"stockbatch_executor_events_total{event="claim"}"#) >= Some(2.0));
    assert!(sample(&body, "stockbatch_batch_apply_duration_seconds_count") >= Some(2.0));
    assert!(sample(&body, "stockbatch_batch_latency_seconds_count") >= Some(2.0));
    assert_eq!(
        sample(&body, r#"stockbatch_queue_batches{status="PENDING"}"#),
        Some(0.0)
    );
    assert_eq!(
        sample(&body, "stockbatch_queue_oldest_pending_seconds"),
        Some(0.0)
    );
    assert!(
        sample(&body, "stockbatch_executors_alive") >= Some(1.0),
        "{body}"
    );
    assert!(
        sample(
            &body,
            r#"stockbatch_http_requests_total{route="/api/v4.1/job/{jobId}/batch",method="POST",status="200"}"#
        ) >= Some(2.0),
        "requests are counted by route template: {body}"
    );
    assert!(
        sample(
            &body,
            r#"stockbatch_http_requests_total{route="/metrics",method="GET",status="401"}"#
        ) >= Some(2.0)
    );
    assert!(sample(
        &body,
        r#"stockbatch_db_connections{pool="api",state="idle"}"#
    )
    .is_some());
    assert!(sample(
        &body,
        r#"stockbatch_db_connections{pool="executor",state="in_use"}"#
    )
    .is_some());

    // An administrator's own token works too.
    let (status, _) = scrape(&app.client, &url);
    assert_eq!(status, StatusCode::OK);
}

#[test]
fn a_waiting_queue_shows_its_depth_and_age_and_failed_logins_count() {
    let app = TestApp::spawn_with(TestDb::new(Backend::Sqlite), |c| {
        c.role = stockbatch::Role::Api;
        c.metrics.token = Some(TOKEN.to_owned());
    });
    let job = app.create_job(json!("7"));
    app.post_batch(&job, json!([record("7", "L", "A", 1)]));
    app.post_batch(
        &job,
        json!([record("7", "L", "B", 1), record("7", "L", "C", 1)]),
    );
    std::thread::sleep(Duration::from_millis(1100));
    let (status, _) = token_request(
        &app.base,
        &[
            ("grant_type", "password"),
            ("username", ADMIN),
            ("password", "wrong"),
        ],
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, body) = scrape(&client_with_token(TOKEN), &app.url("/metrics"));
    assert_eq!(
        sample(&body, r#"stockbatch_queue_batches{status="PENDING"}"#),
        Some(2.0),
        "{body}"
    );
    assert_eq!(sample(&body, "stockbatch_queue_records"), Some(3.0));
    assert!(
        sample(&body, "stockbatch_queue_oldest_pending_seconds") >= Some(1.0),
        "{body}"
    );
    assert_eq!(
        sample(&body, "stockbatch_executors_alive"),
        Some(0.0),
        "no executor runs"
    );
    assert!(
        sample(&body, "stockbatch_login_failures_total") >= Some(1.0),
        "{body}"
    );
}

#[test]
fn metrics_are_open_on_their_own_listener() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = TestApp::spawn_with(TestDb::new(Backend::Sqlite), |c| {
        c.metrics.bind = Some(format!("127.0.0.1:{port}"));
    });
    let (status, body) = scrape(
        &app.anonymous(),
        &format!("http://127.0.0.1:{port}/metrics"),
    );
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("stockbatch_queue_batches"), "{body}");
    let (status, _) = scrape(
        &app.anonymous(),
        &format!("http://127.0.0.1:{port}/api/v4.1/job/1"),
    );
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing else there");
    let (status, _) = scrape(&app.anonymous(), &app.url("/metrics"));
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "still protected on the API's listener"
    );
}
