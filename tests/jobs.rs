//! Jobs: `POST /api/v4.1/job` and `GET /api/v4.1/job/{jobId}` over real HTTP.

mod common;
use common::*;

use chrono::{DateTime, Utc};
use diesel::{Connection, PgConnection, RunQueryDsl, SqliteConnection};
use reqwest::StatusCode;
use serde_json::{json, Value};

const JOB: &str = "/api/v4.1/job";

/// Checks `value` is an RFC 3339 timestamp in UTC (`...Z`) close to now.
fn assert_recent_rfc3339(backend: Backend, value: &Value) -> DateTime<Utc> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{backend:?}: timestamp is not a string: {value}"));
    assert!(text.ends_with('Z'), "{backend:?}: {text} does not end in Z");
    let at = DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{backend:?}: {text} is not RFC 3339: {e}"))
        .with_timezone(&Utc);
    let age = Utc::now().signed_duration_since(at).num_seconds().abs();
    assert!(age < 300, "{backend:?}: {text} is {age} s away from now");
    at
}

/// Moves a job's creation back by two days, straight in the database.
fn age_job_two_days(app: &TestApp, job_id: &str) {
    let id: i64 = job_id.parse().expect("numeric job id");
    let updated = match app.db.backend() {
        Backend::Sqlite => {
            let path = app.db.url().strip_prefix("sqlite://").expect("sqlite url");
            let mut conn = SqliteConnection::establish(path).expect("open SQLite");
            diesel::sql_query(format!(
                "UPDATE jobs SET created_on = datetime(created_on, '-2 days') WHERE id = {id}"
            ))
            .execute(&mut conn)
            .expect("age job")
        }
        Backend::Postgres => {
            let mut conn = PgConnection::establish(app.db.url()).expect("open PostgreSQL");
            diesel::sql_query(format!(
                "UPDATE jobs SET created_on = created_on - interval '2 days' WHERE id = {id}"
            ))
            .execute(&mut conn)
            .expect("age job")
        }
    };
    assert_eq!(updated, 1, "{:?}: job {job_id} not aged", app.db.backend());
}

backend_tests!(create_job_answers_200_with_a_string_id_for_numeric_and_string_retailer_ids);
fn create_job_answers_200_with_a_string_id_for_numeric_and_string_retailer_ids(backend: Backend) {
    let app = TestApp::spawn(backend);
    let mut ids = Vec::new();
    for retailer in [json!(197), json!("197")] {
        let (status, body) = app.post(
            JOB,
            &json!({"name": "Batch Inventory Job", "retailerId": retailer}),
        );
        assert_eq!(status, StatusCode::OK, "{backend:?}: {body}");
        let obj = body.as_object().expect("object");
        assert_eq!(obj.len(), 1, "{backend:?}: only `id` expected: {body}");
        let id = body["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{backend:?}: id is not a string: {body}"))
            .to_owned();
        assert!(
            !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()),
            "{backend:?}: id {id:?}"
        );
        let (status, job) = app.get(&format!("{JOB}/{id}"));
        assert_eq!(status, StatusCode::OK, "{backend:?}: {job}");
        assert_eq!(job["retailerId"], "197", "{backend:?}: {job}");
        ids.push(id);
    }
    assert_ne!(ids[0], ids[1], "{backend:?}: two jobs, one id");
}

backend_tests!(get_job_shows_its_fields_meta_and_batches);
fn get_job_shows_its_fields_meta_and_batches(backend: Backend) {
    let app = TestApp::spawn(backend);
    let meta = json!({"preprocessing": "skip", "nested": {"a": [1, 2]}, "n": 3});
    let (status, created) = app.post(
        JOB,
        &json!({"name": "Nightly feed", "retailerId": "197", "meta": meta}),
    );
    assert_eq!(status, StatusCode::OK, "{backend:?}: {created}");
    let id = created["id"].as_str().expect("id").to_owned();

    let (status, job) = app.get(&format!("{JOB}/{id}"));
    assert_eq!(status, StatusCode::OK, "{backend:?}: {job}");
    assert_eq!(job["jobId"], id.as_str(), "{backend:?}: {job}");
    assert_eq!(job["name"], "Nightly feed", "{backend:?}: {job}");
    assert_eq!(job["retailerId"], "197", "{backend:?}: {job}");
    assert_eq!(job["status"], "OPEN", "{backend:?}: {job}");
    assert_eq!(job["meta"], meta, "{backend:?}: {job}");
    assert_recent_rfc3339(backend, &job["createdOn"]);
    assert_eq!(job["batch"], json!([]), "{backend:?}: {job}");

    // Without meta, meta is absent or null.
    let plain = app.create_job(json!("197"));
    let (_, plain_job) = app.get(&format!("{JOB}/{plain}"));
    assert!(plain_job["meta"].is_null(), "{backend:?}: {plain_job}");

    let first = app.post_batch(&id, json!([record("197", "L1", "S1", 1)]));
    let second = app.post_batch(&id, json!([record("197", "L1", "S2", 2)]));
    let (status, job) = app.get(&format!("{JOB}/{id}"));
    assert_eq!(status, StatusCode::OK, "{backend:?}: {job}");
    let batches = job["batch"].as_array().expect("batch list");
    assert_eq!(batches.len(), 2, "{backend:?}: {job}");
    for (entry, batch_id) in batches.iter().zip([&first, &second]) {
        assert_eq!(entry["batchId"], batch_id.as_str(), "{backend:?}: {job}");
        assert_eq!(entry["entityType"], "INVENTORY", "{backend:?}: {job}");
        let status = entry["status"].as_str().expect("status");
        assert!(
            ["PENDING", "RUNNING", "COMPLETE"].contains(&status),
            "{backend:?}: {job}"
        );
        assert_recent_rfc3339(backend, &entry["createdOn"]);
    }
    // The other job has no batches.
    let (_, plain_job) = app.get(&format!("{JOB}/{plain}"));
    assert_eq!(plain_job["batch"], json!([]), "{backend:?}: {plain_job}");

    app.wait_complete(&id, &first, 10);
    app.wait_complete(&id, &second, 10);
    let (_, job) = app.get(&format!("{JOB}/{id}"));
    for entry in job["batch"].as_array().expect("batch list") {
        assert_eq!(entry["status"], "COMPLETE", "{backend:?}: {job}");
    }
    assert_eq!(job["status"], "OPEN", "{backend:?}: {job}");
}

backend_tests!(create_job_validation_errors);
fn create_job_validation_errors(backend: Backend) {
    let app = TestApp::spawn(backend);

    let (status, body) = app.post(JOB, &json!({"retailerId": "197"}));
    let messages = error_messages(backend, status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(messages, ["'name' is required"], "{backend:?}: {body}");

    let (status, body) = app.post(JOB, &json!({"name": "n".repeat(256), "retailerId": 1}));
    let messages = error_messages(backend, status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(messages.len(), 1, "{backend:?}: {body}");
    assert!(messages[0].contains("'name'"), "{backend:?}: {body}");

    // 255 characters (multi-byte ones count as one) is the longest name.
    let longest = "é".repeat(255);
    let (status, body) = app.post(JOB, &json!({"name": longest, "retailerId": 1}));
    assert_eq!(status, StatusCode::OK, "{backend:?}: {body}");
    let (_, job) = app.get(&format!("{JOB}/{}", body["id"].as_str().expect("id")));
    assert_eq!(job["name"], longest.as_str(), "{backend:?}: {job}");

    let (status, body) = app.post(JOB, &json!({"name": "Batch Inventory Job"}));
    let messages = error_messages(backend, status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(
        messages,
        ["'retailerId' is required"],
        "{backend:?}: {body}"
    );

    // Every problem is listed, one entry each.
    let (status, body) = app.post(JOB, &json!({"meta": [1]}));
    let messages = error_messages(backend, status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(messages.len(), 3, "{backend:?}: {body}");
    for field in ["'name'", "'retailerId'", "'meta'"] {
        assert!(
            messages.iter().any(|m| m.contains(field)),
            "{backend:?}: {field} not named: {body}"
        );
    }

    for not_an_object in ["[1]", "\"job\"", "7", "null"] {
        let (status, body) = app.post_raw(JOB, Some("application/json"), not_an_object);
        let messages = error_messages(backend, status, &body, StatusCode::BAD_REQUEST);
        assert_eq!(messages.len(), 1, "{backend:?}: {not_an_object}: {body}");
    }

    // Nothing above created a job: the next id follows the one valid create.
    let next = app.create_job(json!(197));
    let (status, body) = app.get(&format!("{JOB}/{}", next.parse::<i64>().unwrap() - 1));
    assert_eq!(status, StatusCode::OK, "{backend:?}: {body}");
    assert_eq!(body["name"], longest.as_str(), "{backend:?}: {body}");
}

backend_tests!(unknown_and_malformed_job_ids_are_404);
fn unknown_and_malformed_job_ids_are_404(backend: Backend) {
    let app = TestApp::spawn(backend);
    let job = app.create_job(json!(197));
    let unknown = job.parse::<i64>().unwrap() + 1000;
    for path in [
        format!("{JOB}/{unknown}"),
        format!("{JOB}/abc"),
        format!("{JOB}/0"),
        format!("{JOB}/-1"),
        format!("{JOB}/1.5"),
        format!("{JOB}/99999999999999999999999"),
        format!("{JOB}/0{job}"),
        format!("{JOB}/%2B{job}"),
    ] {
        let (status, body) = app.get(&path);
        error_messages(backend, status, &body, StatusCode::NOT_FOUND);
    }
}

backend_tests!(a_job_from_yesterday_is_closed_and_refuses_batches_with_409);
fn a_job_from_yesterday_is_closed_and_refuses_batches_with_409(backend: Backend) {
    let app = TestApp::spawn(backend);
    let job = app.create_job(json!("197"));
    let batch = app.post_batch(&job, json!([record("197", "L1", "S1", 4)]));
    app.wait_complete(&job, &batch, 10);

    age_job_two_days(&app, &job);
    let (status, body) = app.get(&format!("{JOB}/{job}"));
    assert_eq!(status, StatusCode::OK, "{backend:?}: {body}");
    assert_eq!(body["status"], "CLOSED", "{backend:?}: {body}");
    let created: DateTime<Utc> = DateTime::parse_from_rfc3339(body["createdOn"].as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc);
    let age = Utc::now().signed_duration_since(created).num_hours();
    assert!(
        (47..=49).contains(&age),
        "{backend:?}: createdOn {age} h ago: {body}"
    );

    let (status, refused) = app.post(
        &format!("{JOB}/{job}/batch"),
        &json!({"action": "UPSERT", "entityType": "INVENTORY",
                "entities": [record("197", "L1", "S1", 99)]}),
    );
    error_messages(backend, status, &refused, StatusCode::CONFLICT);

    // Nothing was added: still the one batch, and the position keeps its quantity.
    let (_, after) = app.get(&format!("{JOB}/{job}"));
    let batches = after["batch"].as_array().expect("batch list");
    assert_eq!(batches.len(), 1, "{backend:?}: {after}");
    assert_eq!(
        batches[0]["batchId"],
        batch.as_str(),
        "{backend:?}: {after}"
    );
    let (_, inventory) = app.get("/api/v4.1/inventory?retailerId=197");
    assert_eq!(inventory["total"], 1, "{backend:?}: {inventory}");
    assert_eq!(
        inventory["results"][0]["qty"], 4,
        "{backend:?}: {inventory}"
    );

    // The old batch stays readable, and a new job takes batches again.
    let (status, old) = app.get(&format!("{JOB}/{job}/batch/{batch}"));
    assert_eq!(status, StatusCode::OK, "{backend:?}: {old}");
    assert_eq!(old["status"], "COMPLETE", "{backend:?}: {old}");
    let fresh = app.create_job(json!("197"));
    let (_, fresh_job) = app.get(&format!("{JOB}/{fresh}"));
    assert_eq!(fresh_job["status"], "OPEN", "{backend:?}: {fresh_job}");
    app.post_batch(&fresh, json!([record("197", "L1", "S1", 5)]));
}
