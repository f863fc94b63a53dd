//! The dashboard: what `/ui` is served as, and the two routes it reads beside the others —
//! `GET /api/v4.1/jobs` and `GET /api/v4.1/queue` — over real HTTP on both backends. The
//! page itself runs in headless Chromium in `contract/ui/run.sh`.

mod common;
use common::*;

use chrono::{NaiveDateTime, Timelike};
use diesel::{Connection, PgConnection, RunQueryDsl, SqliteConnection};
use reqwest::StatusCode;
use serde_json::{json, Value};
use stockbatch::auth::Permission;
use stockbatch::Role;

const JOBS: &str = "/api/v4.1/jobs";
const QUEUE: &str = "/api/v4.1/queue";

/// Runs one statement on the app's database, in SQLite's spelling or PostgreSQL's.
fn execute_sql(app: &TestApp, sqlite: &str, postgres: &str) -> usize {
    match app.db.backend() {
        Backend::Sqlite => {
            let path = app.db.url().strip_prefix("sqlite://").expect("sqlite url");
            let mut conn = SqliteConnection::establish(path).expect("open SQLite");
            diesel::sql_query(sqlite).execute(&mut conn)
        }
        Backend::Postgres => {
            let mut conn = PgConnection::establish(app.db.url()).expect("open PostgreSQL");
            diesel::sql_query(postgres).execute(&mut conn)
        }
    }
    .expect("statement")
}

fn get_as(client: &reqwest::blocking::Client, app: &TestApp, path: &str) -> (StatusCode, Value) {
    read(client.get(app.url(path)).send().expect("GET"))
}

fn sum(series: &Value, field: &str) -> i64 {
    series
        .as_array()
        .unwrap_or_else(|| panic!("no series: {series}"))
        .iter()
        .map(|m| m[field].as_i64().unwrap())
        .sum()
}

backend_tests!(jobs_list_newest_first_with_batches_and_records_added_up);
fn jobs_list_newest_first_with_batches_and_records_added_up(backend: Backend) {
    let app = TestApp::spawn(backend);
    let first = app.create_job(json!("197"));
    let batch = app.post_batch(
        &first,
        json!([
            record("197", "L1", "S1", 1),
            record("197", "L1", "S2", 2),
            {"retailerId": "197", "locationRef": "L1", "skuRef": "S3", "qty": "x"},
        ]),
    );
    app.wait_complete(&first, &batch, 10);
    let second = app.create_job(json!("198"));

    let (status, page) = app.get(JOBS);
    assert_eq!(status, StatusCode::OK, "{backend:?}: {page}");
    assert_eq!(
        (&page["start"], &page["count"], &page["total"]),
        (&json!(1), &json!(100), &json!(2)),
        "{backend:?}: {page}"
    );
    let results = page["results"].as_array().unwrap();
    assert_eq!(results[0]["jobId"], second.as_str(), "newest first: {page}");
    assert_eq!(results[1]["jobId"], first.as_str(), "{page}");
    let done = &results[1];
    assert_eq!(done["retailerId"], "197");
    assert_eq!(done["name"], "Batch Inventory Job");
    assert_eq!(done["status"], "OPEN");
    assert_eq!(done["closedOn"], Value::Null);
    assert_eq!(
        done["batches"],
        json!({"total": 1, "pending": 0, "running": 0, "complete": 1, "failed": 1, "cancelled": 0}),
        "{backend:?}: {done}"
    );
    assert_eq!(
        done["records"],
        json!({"total": 3, "processed": 3, "applied": 2, "rejected": 1, "unchanged": 0}),
        "{backend:?}: {done}"
    );
    assert_eq!(done["progress"].as_f64(), Some(1.0), "{done}");
    let empty = &results[0];
    assert_eq!(empty["batches"]["total"], 0, "{empty}");
    assert_eq!(empty["progress"].as_f64(), Some(0.0), "{empty}");

    // Paging: the second job of two is the older one.
    let (_, page) = app.get(&format!("{JOBS}?start=2&count=1"));
    assert_eq!(page["total"], 2);
    assert_eq!(page["results"][0]["jobId"], first.as_str(), "{page}");
    // Filters: a retailer, and OPEN or CLOSED (a cancelled job is CLOSED at once).
    let (_, page) = app.get(&format!("{JOBS}?retailerId=198"));
    assert_eq!(page["total"], 1);
    assert_eq!(page["results"][0]["jobId"], second.as_str(), "{page}");
    let (status, _) = app.post(&format!("/api/v4.1/job/{second}/cancel"), &json!({}));
    assert_eq!(status, StatusCode::OK);
    let (_, open) = app.get(&format!("{JOBS}?status=OPEN"));
    let (_, closed) = app.get(&format!("{JOBS}?status=CLOSED"));
    assert_eq!(
        (&open["total"], &open["results"][0]["jobId"]),
        (&json!(1), &json!(first)),
        "{open}"
    );
    assert_eq!(
        (&closed["total"], &closed["results"][0]["jobId"]),
        (&json!(1), &json!(second)),
        "{closed}"
    );
    assert_eq!(closed["results"][0]["status"], "CLOSED");
    assert!(closed["results"][0]["closedOn"].is_string(), "{closed}");
    for bad in ["?status=open", "?count=0", "?retailer=197", "?start=x"] {
        let (status, body) = app.get(&format!("{JOBS}{bad}"));
        assert_errors(status, &body, StatusCode::BAD_REQUEST);
    }
}

backend_tests!(a_retailer_sees_only_its_own_jobs_and_queue);
fn a_retailer_sees_only_its_own_jobs_and_queue(backend: Backend) {
    let app = TestApp::spawn(backend);
    let viewer = [Permission::JobView, Permission::BatchView];
    app.create_user("alice", Some("197"), &viewer);
    app.create_user("bob", Some("198"), &viewer);
    app.create_user("nobody", Some("197"), &[]);
    let ours = app.create_job(json!("197"));
    let theirs = app.create_job(json!("198"));
    let batch = app.post_batch(&theirs, json!([record("198", "L", "S", 4)]));
    app.wait_complete(&theirs, &batch, 1);
    let alice = app.client_as("alice");

    let (status, page) = get_as(&alice, &app, JOBS);
    assert_eq!(status, StatusCode::OK, "{backend:?}: {page}");
    assert_eq!(page["total"], 1, "{backend:?}: {page}");
    assert_eq!(page["results"][0]["jobId"], ours.as_str(), "{page}");
    let (_, page) = get_as(&alice, &app, &format!("{JOBS}?retailerId=198"));
    assert_eq!((&page["total"], &page["results"]), (&json!(0), &json!([])));
    let (_, page) = get_as(&alice, &app, &format!("{JOBS}?retailerId=197"));
    assert_eq!(page["total"], 1);

    // Retailer 198's batch is in the administrator's queue and bob's, not in alice's.
    let (_, all) = app.get(QUEUE);
    assert_eq!(sum(&all["series"], "recordsApplied"), 1, "{all}");
    let (_, own) = get_as(&app.client_as("bob"), &app, QUEUE);
    assert_eq!(own["retailerId"], "198");
    assert_eq!(sum(&own["series"], "recordsApplied"), 1, "{own}");
    for path in [QUEUE.to_owned(), format!("{QUEUE}?retailerId=198")] {
        let (status, queue) = get_as(&alice, &app, &path);
        assert_eq!(status, StatusCode::OK);
        assert_eq!(sum(&queue["series"], "acceptedBatches"), 0, "{queue}");
        assert_eq!(sum(&queue["series"], "recordsApplied"), 0, "{queue}");
    }

    // 403 without the permission, 401 without a valid token, as on every API route.
    let nobody = app.client_as("nobody");
    let anonymous = app.anonymous();
    let stranger = client_with_token("not-a-token");
    for path in [JOBS, QUEUE] {
        let (status, body) = get_as(&nobody, &app, path);
        assert_errors(status, &body, StatusCode::FORBIDDEN);
        for client in [&anonymous, &stranger] {
            let (status, body) = get_as(client, &app, path);
            assert_errors(status, &body, StatusCode::UNAUTHORIZED);
        }
    }
    app.create_user("jobs-only", Some("197"), &[Permission::JobView]);
    let jobs_only = app.client_as("jobs-only");
    assert_eq!(get_as(&jobs_only, &app, JOBS).0, StatusCode::OK);
    assert_eq!(get_as(&jobs_only, &app, QUEUE).0, StatusCode::FORBIDDEN);
}

backend_tests!(the_queue_series_counts_what_was_applied_minute_by_minute);
fn the_queue_series_counts_what_was_applied_minute_by_minute(backend: Backend) {
    let app = TestApp::spawn(backend);
    let job = app.create_job(json!("197"));
    let one = app.post_batch(
        &job,
        json!([
            record("197", "L1", "A", 1),
            record("197", "L1", "B", 2),
            {"retailerId": "197", "locationRef": "L1", "qty": 3},
        ]),
    );
    let two = app.post_batch(
        &job,
        json!((0..5)
            .map(|i| record("197", "L2", &format!("C{i}"), i))
            .collect::<Vec<_>>()),
    );
    app.wait_complete(&job, &one, 1);
    app.wait_complete(&job, &two, 1);
    // The same records again change nothing: applied, and counted as unchanged.
    let three = app.post_batch(&job, json!([record("197", "L1", "A", 1)]));
    app.wait_complete(&job, &three, 1);

    let (status, queue) = app.get(QUEUE);
    assert_eq!(status, StatusCode::OK, "{backend:?}: {queue}");
    let series = &queue["series"];
    assert_eq!(series.as_array().unwrap().len(), 60, "{queue}");
    assert_eq!(queue["intervalSeconds"], 60);
    assert_eq!(sum(series, "acceptedBatches"), 3, "{backend:?}: {queue}");
    assert_eq!(sum(series, "completedBatches"), 3, "{backend:?}: {queue}");
    assert_eq!(sum(series, "recordsApplied"), 8, "{backend:?}: {queue}");
    assert_eq!(sum(series, "recordsRejected"), 1, "{backend:?}: {queue}");
    assert_eq!(series[59]["queuedBatches"], 0, "nothing waits now: {queue}");
    assert_eq!(
        (
            &queue["pendingBatches"],
            &queue["runningBatches"],
            &queue["oldestPendingOn"],
            &queue["oldestPendingSeconds"]
        ),
        (&json!(0), &json!(0), &Value::Null, &json!(0.0)),
        "{queue}"
    );
    assert!(queue["executorsAlive"].as_i64().unwrap() >= 1, "{queue}");
    // Minutes are consecutive and end with now's.
    let minutes: Vec<NaiveDateTime> = series
        .as_array()
        .unwrap()
        .iter()
        .map(|m| parse(&m["minute"]))
        .collect();
    assert!(minutes
        .windows(2)
        .all(|w| (w[1] - w[0]).num_seconds() == 60));
    let at = parse(&queue["at"]);
    assert_eq!(
        minutes[59],
        at.with_second(0).unwrap().with_nanosecond(0).unwrap()
    );
    // An administrator narrows it to one retailer.
    let (_, other) = app.get(&format!("{QUEUE}?retailerId=198"));
    assert_eq!(
        (
            &other["retailerId"],
            sum(&other["series"], "acceptedBatches")
        ),
        (&json!("198"), 0)
    );
    for bad in ["?retailer=197", "?retailerId=1&retailerId=2"] {
        let (status, body) = app.get(&format!("{QUEUE}{bad}"));
        assert_errors(status, &body, StatusCode::BAD_REQUEST);
    }
}

backend_tests!(a_waiting_batch_shows_in_the_queue_and_in_its_history);
fn a_waiting_batch_shows_in_the_queue_and_in_its_history(backend: Backend) {
    // No executor: the batch waits.
    let app = TestApp::spawn_with(TestDb::new(backend), |config| config.role = Role::Api);
    let job = app.create_job(json!("197"));
    let batch = app.post_batch(
        &job,
        json!([record("197", "L", "A", 1), record("197", "L", "B", 2)]),
    );
    // Accepted ten minutes ago, as far as the table knows.
    let updated = execute_sql(
        &app,
        &format!(
            "UPDATE batches SET created_on = datetime(created_on, '-10 minutes') WHERE id = {batch}"
        ),
        &format!(
            "UPDATE batches SET created_on = created_on - interval '10 minutes' WHERE id = {batch}"
        ),
    );
    assert_eq!(updated, 1);
    let (_, view) = app.get(&format!("/api/v4.1/job/{job}/batch/{batch}"));
    let created = parse(&view["createdOn"]);

    let (_, queue) = app.get(QUEUE);
    assert_eq!(
        (&queue["pendingBatches"], &queue["pendingRecords"]),
        (&json!(1), &json!(2)),
        "{backend:?}: {queue}"
    );
    assert_eq!(parse(&queue["oldestPendingOn"]), created, "{queue}");
    let waited = queue["oldestPendingSeconds"].as_f64().unwrap();
    assert!((600.0..660.0).contains(&waited), "{backend:?}: {waited}");
    assert_eq!(queue["executorsAlive"], 0, "{queue}");
    let created_minute = created.with_second(0).unwrap().with_nanosecond(0).unwrap();
    for m in queue["series"].as_array().unwrap() {
        let (batches, records) = (&m["queuedBatches"], &m["queuedRecords"]);
        if parse(&m["minute"]) < created_minute {
            assert_eq!((batches, records), (&json!(0), &json!(0)), "before: {m}");
        } else {
            assert_eq!((batches, records), (&json!(1), &json!(2)), "after: {m}");
        }
        let accepted = m["acceptedBatches"].as_i64().unwrap();
        assert_eq!(
            accepted,
            i64::from(parse(&m["minute"]) == created_minute),
            "{m}"
        );
    }
    // Listed in its job as pending.
    let (_, page) = app.get(JOBS);
    let listed = &page["results"][0];
    assert_eq!(
        (
            &listed["batches"]["pending"],
            &listed["records"]["processed"],
            &listed["progress"]
        ),
        (&json!(1), &json!(0), &json!(0.0)),
        "{listed}"
    );
}

fn parse(value: &Value) -> NaiveDateTime {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a timestamp: {value}"));
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .naive_utc()
}

backend_tests!(the_page_and_its_assets_are_served_with_their_types_and_a_strict_csp);
fn the_page_and_its_assets_are_served_with_their_types_and_a_strict_csp(backend: Backend) {
    let app = TestApp::spawn(backend);
    let anonymous = app.anonymous();
    let page = anonymous.get(app.url("/ui")).send().unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let header = |r: &reqwest::blocking::Response, name: &str| {
        r.headers()
            .get(name)
            .unwrap_or_else(|| panic!("no {name}"))
            .to_str()
            .unwrap()
            .to_owned()
    };
    let csp = header(&page, "content-security-policy");
    assert!(csp.starts_with("default-src 'self';"), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(header(&page, "x-content-type-options"), "nosniff");
    let tag = header(&page, "etag");
    let html = page.text().unwrap();
    // Everything the page loads is one of its own assets, each served with its type.
    let mut loaded = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        for piece in html.split(attribute).skip(1) {
            let target = piece.split('"').next().unwrap();
            if !target.starts_with('#') && target != "/docs" {
                loaded.push(target.to_owned());
            }
        }
    }
    loaded.sort();
    loaded.dedup();
    assert_eq!(
        loaded,
        ["/ui/app.css", "/ui/app.js", "/ui/icon.svg"],
        "{html}"
    );
    let script = anonymous
        .get(app.url("/ui/app.js"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        script.contains("from \"/ui/charts.js\""),
        "app.js imports the charts"
    );
    assert!(
        !html.contains("<script>") && !html.contains("style=") && !script.contains("innerHTML"),
        "no inline script or style, and data never goes in as HTML"
    );
    for (asset, content_type) in [
        ("index.html", "text/html; charset=utf-8"),
        ("app.js", "text/javascript; charset=utf-8"),
        ("charts.js", "text/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
    ] {
        let response = anonymous
            .get(app.url(&format!("/ui/{asset}")))
            .send()
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
        assert_eq!(header(&response, "content-type"), content_type, "{asset}");
        assert_eq!(header(&response, "cache-control"), "no-cache", "{asset}");
        assert!(header(&response, "content-security-policy").starts_with("default-src 'self'"));
        let etag = header(&response, "etag");
        assert!(response.bytes().unwrap().len() > 100, "{asset}");
        // Revalidation: the copy the browser holds is current.
        let again = anonymous
            .get(app.url(&format!("/ui/{asset}")))
            .header("if-none-match", &etag)
            .send()
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{asset}");
        assert_eq!(header(&again, "etag"), etag);
        assert!(again.bytes().unwrap().is_empty());
    }
    let index = anonymous.get(app.url("/ui/index.html")).send().unwrap();
    assert_eq!(header(&index, "etag"), tag, "/ui is index.html");
    let stale = anonymous
        .get(app.url("/ui"))
        .header("if-none-match", "\"stale\"")
        .send()
        .unwrap();
    assert_eq!(stale.status(), StatusCode::OK);
    for missing in ["/ui/nope.js", "/ui/..%2FCargo.toml", "/ui/app.js/x"] {
        let (status, body) = read(anonymous.get(app.url(missing)).send().unwrap());
        assert_errors(status, &body, StatusCode::NOT_FOUND);
    }
    let (status, body) = read(anonymous.post(app.url("/ui")).send().unwrap());
    assert_errors(status, &body, StatusCode::METHOD_NOT_ALLOWED);
}
