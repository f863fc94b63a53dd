//! Batch control through real HTTP: cancel (queued, running, done; whole jobs), results
//! exported as CSV and NDJSON, failures resubmitted, progress and stalled flags,
//! back-pressure, and retention one can see.

mod common;
#[path = "support/process.rs"]
mod process;

use std::time::{Duration, Instant};

use common::*;
use process::{numbers, Service};
use reqwest::StatusCode;
use serde_json::{json, Value};
use stockbatch::executor::Step;

const RETAILER: &str = "197";

/// A service whose batches stay PENDING until the test runs them.
fn queue_only(backend: Backend, adjust: impl FnOnce(&mut stockbatch::Config)) -> TestApp {
    TestApp::spawn_with(TestDb::new(backend), |c| {
        c.role = stockbatch::Role::Api;
        c.api.stateset_wait = Duration::ZERO;
        adjust(c);
    })
}

/// Runs the oldest runnable batch, as an executor would.
fn run_one(app: &TestApp) -> Step {
    app.executor().run_once().unwrap()
}

fn batch(app: &TestApp, job: &str, batch: &str) -> Value {
    let (status, body) = app.get(&format!("/api/v4.1/job/{job}/batch/{batch}?count=5000"));
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

backend_tests!(a_queued_batch_cancelled_is_not_applied_and_a_complete_one_cannot_be);
fn a_queued_batch_cancelled_is_not_applied_and_a_complete_one_cannot_be(backend: Backend) {
    let app = queue_only(backend, |_| {});
    let job = app.create_job(json!(RETAILER));
    let first = app.post_batch(
        &job,
        json!([record(RETAILER, "L", "A", 1), record(RETAILER, "L", "B", 2)]),
    );
    let second = app.post_batch(&job, json!([record(RETAILER, "L", "A", 5)]));
    let (status, cancelled) = app.post(
        &format!("/api/v4.1/job/{job}/batch/{first}/cancel"),
        &json!({}),
    );
    assert_eq!(status, StatusCode::OK, "{backend:?}: {cancelled}");
    assert_eq!(
        (&cancelled["status"], &cancelled["cancelled"]),
        (&json!("COMPLETE"), &json!(true))
    );
    let view = batch(&app, &job, &first);
    let results = view["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert!(
        results.iter().all(|r| r["responseCode"] == 409
            && r["message"]
                .as_str()
                .unwrap()
                .contains("cancelled before it was applied")),
        "{view}"
    );
    assert_eq!(view["rejectedEntities"], 2);
    // The queue goes on: the next batch runs, and nothing of the cancelled one was applied.
    assert!(matches!(run_one(&app), Step::Processed(_)));
    assert_eq!(run_one(&app), Step::QueueEmpty);
    assert_eq!(
        batch(&app, &job, &second)["results"][0]["message"],
        "Inventory created"
    );
    assert_eq!(
        numbers(app.db.url(), "SELECT qty AS n FROM inventory_positions"),
        vec![5]
    );
    let (status, body) = app.post(
        &format!("/api/v4.1/job/{job}/batch/{second}/cancel"),
        &json!({}),
    );
    error_messages(backend, status, &body, StatusCode::CONFLICT);
    let (status, body) = app.post(&format!("/api/v4.1/job/{job}/batch/999/cancel"), &json!({}));
    error_messages(backend, status, &body, StatusCode::NOT_FOUND);
}

#[test]
fn a_running_batch_stops_at_its_next_safe_point_and_keeps_what_it_applied() {
    // SQLite applies a batch in steps when an API write waits for the lock: the cancel is
    // such a write, so the executor commits its step and the rest is cancelled.
    let db = TestDb::new(Backend::Sqlite);
    let service = Service::start(
        "running",
        db.url(),
        "all",
        &[("STOCKBATCH_FAULT_APPLY_DELAY_MS", "400")],
    );
    let base = service.base();
    let api = client_with_token(&login(&base, ADMIN, ADMIN_PASSWORD));
    let (_, job) = read(
        api.post(format!("{base}/api/v4.1/job"))
            .json(&json!({"name": "c", "retailerId": RETAILER}))
            .send()
            .unwrap(),
    );
    let job = job["id"].as_str().unwrap().to_owned();
    let records: Vec<Value> = (0..3000)
        .map(|i| record(RETAILER, "L", &format!("S{i}"), i))
        .collect();
    let (_, id) = read(
        api.post(format!("{base}/api/v4.1/job/{job}/batch"))
            .json(&json!({"action": "UPSERT", "entityType": "INVENTORY", "entities": records}))
            .send()
            .unwrap(),
    );
    let id = id["id"].as_str().unwrap().to_owned();
    let url = format!("{base}/api/v4.1/job/{job}/batch/{id}");
    // Each of its six steps of 512 records waits 400 ms first: cancel in the second one.
    let deadline = Instant::now() + Duration::from_secs(20);
    while read(api.get(&url).send().unwrap()).1["status"] != "RUNNING" {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(600));
    let (status, answer) = read(api.post(format!("{url}/cancel")).send().unwrap());
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["cancelRequested"], true);
    let done = loop {
        let (_, b) = read(api.get(format!("{url}?count=5000")).send().unwrap());
        if b["status"] == "COMPLETE" {
            break b;
        }
        assert!(Instant::now() < deadline, "never completed");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(done["cancelled"], true);
    let codes: Vec<i64> = done["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["responseCode"].as_i64().unwrap())
        .collect();
    let applied = codes.iter().filter(|c| **c == 200).count();
    assert!(
        applied > 0 && applied < 3000,
        "some applied, some not: {applied}"
    );
    assert!(
        codes[..applied].iter().all(|c| *c == 200) && codes[applied..].iter().all(|c| *c == 409),
        "applied in order, the rest not"
    );
    assert_eq!(
        numbers(db.url(), "SELECT COUNT(*) AS n FROM inventory_positions"),
        vec![applied as i64],
        "nothing half-applied"
    );
    assert_eq!(
        numbers(db.url(), "SELECT COUNT(*) AS n FROM inventory_movements"),
        vec![applied as i64]
    );
}

backend_tests!(cancelling_a_job_cancels_its_unfinished_batches_and_closes_it);
fn cancelling_a_job_cancels_its_unfinished_batches_and_closes_it(backend: Backend) {
    let app = queue_only(backend, |_| {});
    let job = app.create_job(json!(RETAILER));
    for i in 0..3 {
        app.post_batch(&job, json!([record(RETAILER, "L", &format!("S{i}"), i)]));
    }
    let (status, answer) = app.post(&format!("/api/v4.1/job/{job}/cancel"), &json!({}));
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer,
        json!({"id": job, "status": "CLOSED", "cancelledBatches": 3, "cancellingBatches": 0})
    );
    let (_, view) = app.get(&format!("/api/v4.1/job/{job}"));
    assert_eq!(view["status"], "CLOSED", "{backend:?}");
    assert!(view["batch"]
        .as_array()
        .unwrap()
        .iter()
        .all(|b| b["cancelled"] == true));
    let (status, body) = app.post(&format!("/api/v4.1/job/{job}/batch"), &json!({"action": "UPSERT", "entityType": "INVENTORY", "entities": [record(RETAILER, "L", "X", 1)]}));
    error_messages(backend, status, &body, StatusCode::CONFLICT);
    assert_eq!(run_one(&app), Step::QueueEmpty);
}

backend_tests!(a_stateset_batch_can_be_cancelled_while_queued);
fn a_stateset_batch_can_be_cancelled_while_queued(backend: Backend) {
    let app = queue_only(backend, |_| {});
    let shop = app.api_key_client(RETAILER, "W1");
    let (status, view) = read(shop.post(app.url("/api/v1/inventory/batch"))
        .json(&json!({"operation": "adjust", "items": [{"sku": "A", "data": {"adjustment_type": "relative", "quantity": 3}}]}))
        .send().unwrap());
    assert_eq!(status, StatusCode::ACCEPTED, "{view}");
    let cancel = format!(
        "/api/v1/inventory/batch/{}/cancel",
        view["batch_id"].as_str().unwrap()
    );
    let (status, view) = read(shop.post(app.url(&cancel)).send().unwrap());
    assert_eq!(status, StatusCode::OK, "{backend:?}: {view}");
    assert_eq!(
        (&view["status"], &view["cancelled"]),
        (&json!("failed"), &json!(true))
    );
    assert_eq!(view["results"][0]["status"], "skipped");
    assert_eq!(view["summary"]["skipped"], 1);
    let (status, _) = read(shop.post(app.url(&cancel)).send().unwrap());
    assert_eq!(status, StatusCode::CONFLICT);
}

backend_tests!(results_export_as_csv_and_ndjson_with_their_records_and_filter_by_code);
fn results_export_as_csv_and_ndjson_with_their_records_and_filter_by_code(backend: Backend) {
    let app = TestApp::spawn(backend);
    let job = app.create_job(json!(RETAILER));
    let mut records: Vec<Value> = (0..2500)
        .map(|i| record(RETAILER, "L", &format!("S{i}"), i))
        .collect();
    records[7] = json!({"retailerId": RETAILER, "locationRef": "L", "skuRef": "BAD", "qty": -1, "lot": "L7"});
    records[2400] = json!({"retailerId": RETAILER, "locationRef": "L", "qty": 1});
    let id = app.post_batch(&job, json!(records));
    app.wait_complete(&job, &id, 10);
    let path = format!("/api/v4.1/job/{job}/batch/{id}/results");
    let fetch = |query: &str, accept: Option<&str>| {
        let mut request = app.client.get(app.url(&format!("{path}{query}")));
        if let Some(a) = accept {
            request = request.header("accept", a);
        }
        let response = request.send().unwrap();
        let status = response.status();
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        (status, content_type, response.text().unwrap())
    };
    let (status, content_type, ndjson) = fetch("", None);
    assert_eq!(
        (status, content_type.as_str()),
        (StatusCode::OK, "application/x-ndjson")
    );
    let lines: Vec<Value> = ndjson
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2500, "{backend:?}: every result, across pages");
    assert_eq!(lines[0]["index"], 1);
    assert_eq!(lines[2499]["index"], 2500);
    assert_eq!(lines[7]["record"]["lot"], "L7");

    let (_, content_type, csv) = fetch("?failed=true", Some("text/csv"));
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        &header[..6],
        [
            "index",
            "responseCode",
            "message",
            "entityId",
            "entityRef",
            "retailerId"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2, "{backend:?}: {csv}");
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    assert_eq!(
        (&rows[0][column("index")], &rows[0][column("responseCode")]),
        ("8", "400")
    );
    assert_eq!(
        (&rows[0][column("skuRef")], &rows[0][column("qty")]),
        ("BAD", "-1")
    );
    assert_eq!(&rows[0][column("otherFields")], r#"{"lot":"L7"}"#);
    assert_eq!(&rows[1][column("index")], "2401");

    let (_, _, only_400) = fetch("?format=ndjson&responseCode=400", None);
    assert_eq!(only_400.lines().count(), 2);
    let (status, _, _) = fetch("?format=xml", None);
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

backend_tests!(failed_records_are_resubmitted_as_a_new_batch_once);
fn failed_records_are_resubmitted_as_a_new_batch_once(backend: Backend) {
    let app = TestApp::spawn(backend);
    let job = app.create_job(json!(RETAILER));
    let id = app.post_batch(&job, json!([record(RETAILER, "L", "A", 1),
        {"retailerId": RETAILER, "locationRef": "L", "skuRef": "B", "qty": -2}, record(RETAILER, "L", "C", 3)]));
    app.wait_complete(&job, &id, 10);
    let resubmit = format!("/api/v4.1/job/{job}/batch/{id}/resubmit");
    let send = |body: Option<&Value>, key: &str| {
        let mut request = app
            .client
            .post(app.url(&resubmit))
            .header("Idempotency-Key", key);
        if let Some(body) = body {
            request = request.json(body);
        }
        read(request.send().unwrap())
    };
    let (status, again) = send(None, "r-1");
    assert_eq!(status, StatusCode::OK, "{backend:?}: {again}");
    assert_eq!(
        send(None, "r-1").1,
        again,
        "the same key answers the same batch"
    );
    let new = again["id"].as_str().unwrap();
    let done = app.wait_complete(&job, new, 10);
    assert_eq!(done["total"], 1, "{done}");
    assert_eq!(done["results"][0]["entityRef"], "B:L");
    assert_eq!(done["resubmittedFrom"], id.as_str());
    // Corrected records instead.
    let fixed = json!({"entities": [record(RETAILER, "L", "B", 2)]});
    let (_, corrected) = send(Some(&fixed), "r-2");
    let done = app.wait_complete(&job, corrected["id"].as_str().unwrap(), 10);
    assert_eq!(done["results"][0]["message"], "Inventory created");
    // Nothing to resubmit once every record was applied.
    let (status, body) = read(
        app.client
            .post(app.url(&format!(
                "/api/v4.1/job/{job}/batch/{}/resubmit",
                corrected["id"].as_str().unwrap()
            )))
            .send()
            .unwrap(),
    );
    error_messages(backend, status, &body, StatusCode::CONFLICT);
}

backend_tests!(progress_and_a_queue_nobody_runs_show_on_the_batch);
fn progress_and_a_queue_nobody_runs_show_on_the_batch(backend: Backend) {
    let app = queue_only(backend, |c| {
        c.api.stalled_after = Duration::from_millis(300)
    });
    let job = app.create_job(json!(RETAILER));
    let id = app.post_batch(&job, json!([record(RETAILER, "L", "A", 1)]));
    let fresh = batch(&app, &job, &id);
    assert_eq!(
        (
            &fresh["processedEntities"],
            &fresh["totalEntities"],
            &fresh["stalled"]
        ),
        (&json!(0), &json!(1), &json!(false))
    );
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        batch(&app, &job, &id)["stalled"],
        true,
        "{backend:?}: no executor alive"
    );
    let (_, view) = app.get(&format!("/api/v4.1/job/{job}"));
    assert_eq!(view["batch"][0]["stalled"], true);
    run_one(&app);
    let done = batch(&app, &job, &id);
    assert_eq!(
        (
            &done["processedEntities"],
            &done["attempts"],
            &done["stalled"]
        ),
        (&json!(1), &json!(1), &json!(false))
    );
    assert!(done["startedOn"].is_string() && done["completedOn"].is_string());
    // expiresOn: created + the retention (7 days by default, or the retailer's own).
    let created =
        chrono::DateTime::parse_from_rfc3339(done["createdOn"].as_str().unwrap()).unwrap();
    let expires =
        chrono::DateTime::parse_from_rfc3339(done["expiresOn"].as_str().unwrap()).unwrap();
    assert_eq!(expires - created, chrono::TimeDelta::days(7));
    app.with_db(|conn| {
        stockbatch::auth::accounts::create_retailer(conn, RETAILER, None).unwrap();
        assert!(stockbatch::db::accounts::set_retailer_retention(conn, RETAILER, Some(2)).unwrap());
    });
    let expires =
        chrono::DateTime::parse_from_rfc3339(batch(&app, &job, &id)["expiresOn"].as_str().unwrap())
            .unwrap();
    assert_eq!(expires - created, chrono::TimeDelta::days(2), "{backend:?}");
}

backend_tests!(a_full_queue_says_slow_down_and_stores_nothing);
fn a_full_queue_says_slow_down_and_stores_nothing(backend: Backend) {
    let app = queue_only(backend, |c| c.api.queue_limits.batches_per_retailer = 2);
    let job = app.create_job(json!(RETAILER));
    let body = json!({"action": "UPSERT", "entityType": "INVENTORY", "entities": [record(RETAILER, "L", "A", 1)]});
    let post = |key: &str| {
        let response = app
            .client
            .post(app.url(&format!("/api/v4.1/job/{job}/batch")))
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
            .unwrap();
        let retry = response.headers().get("retry-after").cloned();
        let (status, answer) = read(response);
        (status, answer, retry)
    };
    let first = post("k1");
    post("k2");
    let (status, answer, retry) = post("k3");
    error_messages(backend, status, &answer, StatusCode::TOO_MANY_REQUESTS);
    assert!(retry.is_some(), "429 says when to retry");
    assert_eq!(
        numbers(app.db.url(), "SELECT COUNT(*) AS n FROM batches"),
        vec![2],
        "{backend:?}"
    );
    // A retry of an accepted batch is answered, not refused.
    assert_eq!(post("k1").1, first.1);
    let shop = app.api_key_client(RETAILER, "W1");
    let (status, answer) = read(shop.post(app.url("/api/v1/inventory/batch"))
        .json(&json!({"operation": "adjust", "items": [{"sku": "A", "data": {"adjustment_type": "relative", "quantity": 1}}]}))
        .send().unwrap());
    error_messages(backend, status, &answer, StatusCode::TOO_MANY_REQUESTS);
    run_one(&app);
    assert_eq!(post("k4").0, StatusCode::OK, "room again");
}
