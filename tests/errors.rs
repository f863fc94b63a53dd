//! Every error a client can meet carries `{"errors":[{"code","message"}]}`; request-level
//! batch problems are all listed and store nothing. Also the public routes.

mod common;
use common::*;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const JOB: &str = "/api/v4.1/job";

fn send(app: &TestApp, method: Method, path: &str, body: Option<&Value>) -> (StatusCode, Value) {
    let mut request = app.client.request(method, app.url(path));
    if let Some(body) = body {
        request = request.json(body);
    }
    read(request.send().expect("request"))
}

fn valid_batch() -> Value {
    json!({"action": "UPSERT", "entityType": "INVENTORY",
           "entities": [record("197", "L1", "S1", 1)]})
}

backend_tests!(malformed_json_is_400);
fn malformed_json_is_400(backend: Backend) {
    let app = TestApp::spawn(backend);
    let job = app.create_job(json!("197"));
    let batch_path = format!("{JOB}/{job}/batch");
    for path in [JOB, batch_path.as_str()] {
        for bad in ["{", "{\"name\": }", "", "nul", "{\"name\":\"x\",}"] {
            let (status, body) = app.post_raw(path, Some("application/json"), bad);
            error_messages(backend, status, &body, StatusCode::BAD_REQUEST);
        }
    }
    let (_, job_body) = app.get(&format!("{JOB}/{job}"));
    assert_eq!(job_body["batch"], json!([]), "{backend:?}: {job_body}");
}

backend_tests!(a_non_json_content_type_is_415_and_a_missing_one_is_read_as_json);
fn a_non_json_content_type_is_415_and_a_missing_one_is_read_as_json(backend: Backend) {
    let app = TestApp::spawn(backend);
    let job = app.create_job(json!("197"));
    let job_body = json!({"name": "Batch Inventory Job", "retailerId": "197"}).to_string();
    let batch_path = format!("{JOB}/{job}/batch");
    let batch_body = valid_batch().to_string();

    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/xml",
    ] {
        let (status, body) = app.post_raw(JOB, Some(content_type), job_body.clone());
        error_messages(backend, status, &body, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let (status, body) = app.post_raw(&batch_path, Some(content_type), batch_body.clone());
        error_messages(backend, status, &body, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
    let (_, shown) = app.get(&format!("{JOB}/{job}"));
    assert_eq!(shown["batch"], json!([]), "{backend:?}: {shown}");

    // No Content-Type at all: read as JSON.
    let (status, body) = app.post_raw(JOB, None, job_body.clone());
    assert_eq!(status, StatusCode::OK, "{backend:?}: {body}");
    assert!(body["id"].is_string(), "{backend:?}: {body}");
    let (status, body) = app.post_raw(&batch_path, None, batch_body.clone());
    assert_eq!(status, StatusCode::OK, "{backend:?}: {body}");
    let batch = body["id"].as_str().expect("batch id").to_owned();
    let done = app.wait_complete(&job, &batch, 10);
    assert_eq!(
        done["results"][0]["responseCode"], 200,
        "{backend:?}: {done}"
    );

    // JSON with parameters, and `+json` types, are JSON.
    for content_type in [
        "application/json; charset=utf-8",
        "application/vnd.api+json",
    ] {
        let (status, body) = app.post_raw(JOB, Some(content_type), job_body.clone());
        assert_eq!(
            status,
            StatusCode::OK,
            "{backend:?}: {content_type}: {body}"
        );
    }
}

backend_tests!(unknown_routes_are_404);
fn unknown_routes_are_404(backend: Backend) {
    let app = TestApp::spawn(backend);
    for path in [
        "/nope",
        "/api/v4.1/jobz",
        "/api/v4.1/batches",
        "/api/v4.0/job/1",
        "/api/v4.1/job/1/batches",
        "/api/v4.1/job/1/batch/1/results",
    ] {
        let (status, body) = app.get(path);
        error_messages(backend, status, &body, StatusCode::NOT_FOUND);
    }
    let (status, body) = app.post("/api/v4.1/jobz", &json!({"name": "x", "retailerId": 1}));
    error_messages(backend, status, &body, StatusCode::NOT_FOUND);
}

backend_tests!(wrong_methods_are_405);
fn wrong_methods_are_405(backend: Backend) {
    let app = TestApp::spawn(backend);
    let job = app.create_job(json!("197"));
    let batch = app.post_batch(&job, json!([record("197", "L1", "S1", 1)]));
    let job_path = format!("{JOB}/{job}");
    let batches_path = format!("{JOB}/{job}/batch");
    let batch_path = format!("{JOB}/{job}/batch/{batch}");
    let cases = [
        (Method::DELETE, JOB),
        (Method::GET, JOB),
        (Method::PUT, JOB),
        (Method::DELETE, job_path.as_str()),
        (Method::POST, job_path.as_str()),
        (Method::GET, batches_path.as_str()),
        (Method::PUT, batch_path.as_str()),
        (Method::DELETE, batch_path.as_str()),
        (Method::POST, batch_path.as_str()),
        (Method::POST, "/api/v4.1/inventory"),
        (Method::DELETE, "/api/v4.1/inventory"),
        (Method::POST, "/health"),
        (Method::DELETE, "/openapi.yaml"),
    ];
    for (method, path) in cases {
        let (status, body) = send(&app, method.clone(), path, Some(&valid_batch()));
        assert_eq!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{backend:?}: {method} {path}: {body}"
        );
        error_messages(backend, status, &body, StatusCode::METHOD_NOT_ALLOWED);
    }
    // The PUT and DELETE changed nothing.
    let done = app.wait_complete(&job, &batch, 10);
    assert_eq!(done["total"], 1, "{backend:?}: {done}");
    let (_, shown) = app.get(&job_path);
    assert_eq!(
        shown["batch"].as_array().map(Vec::len),
        Some(1),
        "{backend:?}"
    );
}

backend_tests!(a_body_over_the_limit_is_413);
fn a_body_over_the_limit_is_413(backend: Backend) {
    let app = TestApp::spawn(backend);
    let job = app.create_job(json!("197"));
    let filler = "x".repeat(17 * 1024 * 1024);
    let job_body = format!(r#"{{"name":"{filler}","retailerId":"197"}}"#);
    let (status, body) = app.post_raw(JOB, Some("application/json"), job_body);
    error_messages(backend, status, &body, StatusCode::PAYLOAD_TOO_LARGE);

    let batch_body = format!(
        r#"{{"action":"UPSERT","entityType":"INVENTORY","entities":[{{"skuRef":"{filler}"}}]}}"#
    );
    let (status, body) = app.post_raw(
        &format!("{JOB}/{job}/batch"),
        Some("application/json"),
        batch_body,
    );
    error_messages(backend, status, &body, StatusCode::PAYLOAD_TOO_LARGE);

    // Without a Content-Length (chunked), the limit holds too.
    let chunked = reqwest::blocking::Body::new(std::io::Cursor::new(
        format!(r#"{{"name":"{filler}","retailerId":"197"}}"#).into_bytes(),
    ));
    let (status, body) = app.post_raw(JOB, Some("application/json"), chunked);
    error_messages(backend, status, &body, StatusCode::PAYLOAD_TOO_LARGE);

    let (_, shown) = app.get(&format!("{JOB}/{job}"));
    assert_eq!(shown["batch"], json!([]), "{backend:?}: {shown}");
    // The service still answers.
    let (status, _) = app.get("/health");
    assert_eq!(status, StatusCode::OK, "{backend:?}");
}

backend_tests!(a_batch_for_an_unknown_job_is_404);
fn a_batch_for_an_unknown_job_is_404(backend: Backend) {
    let app = TestApp::spawn(backend);
    let job = app.create_job(json!("197"));
    let unknown = job.parse::<i64>().unwrap() + 1000;
    for path in [
        format!("{JOB}/{unknown}/batch"),
        format!("{JOB}/abc/batch"),
        format!("{JOB}/0/batch"),
    ] {
        let (status, body) = app.post(&path, &valid_batch());
        error_messages(backend, status, &body, StatusCode::NOT_FOUND);
    }
    let (_, listed) = app.get("/api/v4.1/inventory");
    assert_eq!(listed["total"], 0, "{backend:?}: {listed}");
}

backend_tests!(request_level_batch_problems_are_all_listed_and_nothing_is_stored);
fn request_level_batch_problems_are_all_listed_and_nothing_is_stored(backend: Backend) {
    let app = TestApp::spawn(backend);
    let job = app.create_job(json!("197"));
    let path = format!("{JOB}/{job}/batch");
    let one = json!([record("197", "L1", "S1", 1)]);
    let too_many: Vec<Value> = (0..5001)
        .map(|i| record("197", "L1", &format!("S{i}"), 1))
        .collect();
    // (body, the fields the problems must name, one entry each)
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            json!({"entityType": "INVENTORY", "entities": one}),
            vec!["'action'"],
        ),
        (
            json!({"action": "DELETE", "entityType": "INVENTORY", "entities": one}),
            vec!["'action'"],
        ),
        (
            json!({"action": "upsert", "entityType": "INVENTORY", "entities": one}),
            vec!["'action'"],
        ),
        (
            json!({"action": "UPSERT", "entities": one}),
            vec!["'entityType'"],
        ),
        (
            json!({"action": "UPSERT", "entityType": "ORDER", "entities": one}),
            vec!["'entityType'"],
        ),
        (
            json!({"action": "UPSERT", "entityType": "INVENTORY"}),
            vec!["'entities'"],
        ),
        (
            json!({"action": "UPSERT", "entityType": "INVENTORY", "entities": {"a": 1}}),
            vec!["'entities'"],
        ),
        (
            json!({"action": "UPSERT", "entityType": "INVENTORY", "entities": "[]"}),
            vec!["'entities'"],
        ),
        (
            json!({"action": "UPSERT", "entityType": "INVENTORY", "entities": []}),
            vec!["'entities'"],
        ),
        (
            json!({"action": "UPSERT", "entityType": "INVENTORY", "entities": too_many}),
            vec!["'entities'"],
        ),
        (
            json!({"action": "DELETE", "entityType": "ORDER", "entities": {}}),
            vec!["'action'", "'entityType'", "'entities'"],
        ),
        (json!({}), vec!["'action'", "'entityType'", "'entities'"]),
        (json!([valid_batch()]), vec!["object"]),
    ];
    for (body, fields) in &cases {
        let (status, answer) = app.post(&path, body);
        let messages = error_messages(backend, status, &answer, StatusCode::BAD_REQUEST);
        assert_eq!(
            messages.len(),
            fields.len(),
            "{backend:?}: one entry per problem expected: {answer}"
        );
        for (message, field) in messages.iter().zip(fields) {
            assert!(
                message.contains(field),
                "{backend:?}: {message:?} should name {field}"
            );
        }
    }
    let (_, shown) = app.get(&format!("{JOB}/{job}"));
    assert_eq!(
        shown["batch"],
        json!([]),
        "{backend:?}: nothing stored: {shown}"
    );
    let (_, listed) = app.get("/api/v4.1/inventory");
    assert_eq!(listed["total"], 0, "{backend:?}: {listed}");

    // The same job still takes a valid batch.
    let batch = app.post_batch(&job, one.clone());
    app.wait_complete(&job, &batch, 10);
    let (_, shown) = app.get(&format!("{JOB}/{job}"));
    assert_eq!(
        shown["batch"].as_array().map(Vec::len),
        Some(1),
        "{backend:?}"
    );
}

backend_tests!(health_answers_up);
fn health_answers_up(backend: Backend) {
    let app = TestApp::spawn(backend);
    let (status, body) = app.get("/health");
    assert_eq!(status, StatusCode::OK, "{backend:?}: {body}");
    assert_eq!(body, json!({"status": "UP"}), "{backend:?}");
}

backend_tests!(the_openapi_document_is_served);
fn the_openapi_document_is_served(backend: Backend) {
    let app = TestApp::spawn(backend);
    let response = app
        .client
        .get(app.url("/openapi.yaml"))
        .send()
        .expect("GET");
    assert_eq!(response.status(), StatusCode::OK, "{backend:?}");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(content_type.contains("yaml"), "{backend:?}: {content_type}");
}

backend_tests!(the_openapi_document_describes_every_route);
/// The README calls `openapi.yaml` the contract, for client generators: it must describe the
/// API, not be empty.
fn the_openapi_document_describes_every_route(backend: Backend) {
    let app = TestApp::spawn(backend);
    let text = app
        .client
        .get(app.url("/openapi.yaml"))
        .send()
        .expect("GET")
        .text()
        .expect("body");
    assert!(
        text.contains("openapi:"),
        "{backend:?}: no `openapi:` version in the served document ({} bytes)",
        text.len()
    );
    for route in [
        "/api/v4.1/job:",
        "/api/v4.1/job/{jobId}:",
        "/api/v4.1/job/{jobId}/batch:",
        "/api/v4.1/job/{jobId}/batch/{batchId}:",
        "/api/v4.1/inventory:",
        "/health:",
    ] {
        assert!(text.contains(route), "{backend:?}: {route} not documented");
    }
}

backend_tests!(deeply_nested_or_huge_json_gets_clean_answers_and_the_service_stays_up);
fn deeply_nested_or_huge_json_gets_clean_answers_and_the_service_stays_up(backend: Backend) {
    let app = TestApp::spawn(backend);
    let job = app.create_job(json!("197"));
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));

    let body = format!(r#"{{"name":{},"retailerId":"197"}}"#, deep(100_000));
    let (status, response) = app.post_raw(JOB, Some("application/json"), body);
    error_messages(backend, status, &response, StatusCode::BAD_REQUEST);

    let (status, response) = app.post_raw(JOB, Some("application/json"), deep(200_000));
    error_messages(backend, status, &response, StatusCode::BAD_REQUEST);

    // Deep values inside records are record-level problems: the batch is accepted.
    let record = format!(
        r#"{{"retailerId":"197","locationRef":"L","qty":1,"skuRef":{},"attributes":{{"x":{}}}}}"#,
        deep(100_000),
        deep(1_000)
    );
    let body = format!(r#"{{"action":"UPSERT","entityType":"INVENTORY","entities":[{record}]}}"#);
    let (status, created) = app.post_raw(
        &format!("{JOB}/{job}/batch"),
        Some("application/json"),
        body,
    );
    assert_eq!(status, StatusCode::OK, "{backend:?}: {created}");
    let done = app.wait_complete(&job, created["id"].as_str().unwrap(), 10);
    assert_eq!(
        done["results"][0]["responseCode"], 400,
        "{backend:?}: {done}"
    );
    let message = done["results"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("'skuRef' must be a string or an integer"),
        "{message}"
    );
    assert!(
        message.contains("'attributes' is nested too deeply"),
        "{message}"
    );

    let (status, _) = app.get("/health");
    assert_eq!(status, StatusCode::OK, "{backend:?}: still serving");
}
