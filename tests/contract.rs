//! The OpenAPI contract: `openapi.yaml` documents exactly the routes the service mounts
//! (`stockbatch::api::ROUTES`), and real responses of every operation — each status the
//! tests can provoke — have a documented status, content type, required headers and a
//! body that validates against the documented schema.
//!
//! When this fails after a change to the API, update `openapi.yaml` (see the README's
//! "The OpenAPI contract").

mod common;
use common::*;

use std::collections::{BTreeMap, BTreeSet};

use diesel::{Connection, PgConnection, RunQueryDsl, SqliteConnection};
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::StatusCode;
use serde_json::{json, Map, Value};
use stockbatch::api::ROUTES;
use stockbatch::auth::Permission;

const OPENAPI_YAML: &str = include_str!("../openapi.yaml");
const METHODS: [&str; 7] = ["get", "put", "post", "delete", "patch", "head", "options"];

fn document() -> Value {
    serde_yaml::from_str(OPENAPI_YAML).expect("openapi.yaml parses")
}

/// `(path, METHOD)` of every operation the document describes.
fn documented_operations(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(|m| (path.clone(), m.to_ascii_uppercase()))
        })
        .collect()
}

/// `(path, METHOD)` of every route the service mounts.
fn served_operations() -> BTreeSet<(String, String)> {
    ROUTES
        .iter()
        .flat_map(|(path, allow)| {
            allow
                .split(',')
                .map(|m| ((*path).to_owned(), m.trim().to_owned()))
        })
        .collect()
}

#[test]
fn the_document_lists_exactly_the_routes_served() {
    let doc = document();
    let documented = documented_operations(&doc);
    let served = served_operations();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "served but not in openapi.yaml: {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "in openapi.yaml but not served: {unserved:?}"
    );
    // Every path says which methods it serves, as its `Allow` header does.
    for (path, allow) in ROUTES {
        let description = doc["paths"][*path]["description"].as_str().unwrap_or("");
        assert!(
            description.contains(&format!("`Allow: {allow}`")),
            "{path}: its description should name `Allow: {allow}`"
        );
    }
    let mut ids = BTreeSet::new();
    for (path, method) in &documented {
        let operation = &doc["paths"][path][method.to_ascii_lowercase()];
        let id = operation["operationId"].as_str().unwrap_or_default();
        assert!(!id.is_empty(), "{method} {path} has no operationId");
        assert!(ids.insert(id.to_owned()), "operationId {id} is used twice");
        let secured = path.starts_with("/api/");
        assert_eq!(
            operation.get("security").is_some(),
            secured,
            "{method} {path}: only /api routes need a token"
        );
        if secured {
            for status in ["401", "403"] {
                assert!(
                    operation["responses"].get(status).is_some(),
                    "{method} {path} does not document {status}"
                );
            }
        }
    }
}

#[test]
fn openapi_json_is_the_yaml_document() {
    let app = TestApp::spawn(Backend::Sqlite);
    let served: Value = app
        .anonymous()
        .get(app.url("/openapi.json"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(served, document());
    let yaml = app
        .anonymous()
        .get(app.url("/openapi.yaml"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(yaml, OPENAPI_YAML);
}

/// Checks responses against the document and remembers which operations and statuses
/// were seen.
struct Contract {
    doc: Value,
    /// `components`, converted to JSON Schema, for `$ref`s to resolve against.
    components: Value,
    operations: BTreeMap<String, Value>,
    seen: BTreeSet<(String, u16)>,
}

impl Contract {
    fn new() -> Contract {
        let doc = document();
        let mut operations = BTreeMap::new();
        for item in doc["paths"].as_object().unwrap().values() {
            for method in METHODS {
                if let Some(op) = item.get(method) {
                    let id = op["operationId"].as_str().unwrap().to_owned();
                    operations.insert(id, op.clone());
                }
            }
        }
        Contract {
            components: json_schema(&doc["components"]),
            doc,
            operations,
            seen: BTreeSet::new(),
        }
    }

    /// Follows a `#/components/...` reference within the document.
    fn resolve<'a>(&'a self, value: &'a Value) -> &'a Value {
        match value.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let pointer = reference.strip_prefix('#').expect("local $ref");
                self.resolve(self.doc.pointer(pointer).expect("$ref resolves"))
            }
            None => value,
        }
    }

    /// Sends `request` and checks the response as an answer of `operation_id`; returns
    /// the status and the body (JSON when it is JSON, otherwise a string).
    fn call(&mut self, operation_id: &str, request: RequestBuilder) -> (StatusCode, Value) {
        let response = request.send().expect("request");
        self.check(operation_id, response)
    }

    fn check(&mut self, operation_id: &str, response: Response) -> (StatusCode, Value) {
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().expect("body");
        let operation = self
            .operations
            .get(operation_id)
            .unwrap_or_else(|| panic!("no operation {operation_id}"))
            .clone();
        let context = format!("{operation_id} answered {status}");
        let documented = operation["responses"]
            .get(status.as_str())
            .unwrap_or_else(|| panic!("{context}, which it does not document"));
        let documented = self.resolve(documented).clone();

        for (name, header) in documented["headers"].as_object().into_iter().flatten() {
            let header = self.resolve(header);
            let value = headers.get(name.as_str()).and_then(|v| v.to_str().ok());
            if header["required"] == true {
                assert!(value.is_some(), "{context} without the {name} header");
            }
            if let Some(value) = value {
                let schema = json_schema(&header["schema"]);
                let value = match schema["type"].as_str() {
                    Some("integer") => value
                        .parse::<i64>()
                        .map(Value::from)
                        .unwrap_or_else(|_| panic!("{context}: {name} {value} not an integer")),
                    _ => Value::from(value),
                };
                self.validate(&context, &schema, &value);
            }
        }

        let body = match documented["content"].as_object() {
            None => {
                assert!(bytes.is_empty(), "{context} with an undocumented body");
                Value::Null
            }
            Some(content) => {
                let content_type = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_else(|| panic!("{context} without a Content-Type"));
                let media_type = content_type.split(';').next().unwrap().trim();
                let schema = &content.get(media_type).unwrap_or_else(|| {
                    panic!("{context} as {media_type}, which it does not document")
                })["schema"];
                let text = String::from_utf8(bytes.to_vec()).expect("UTF-8 body");
                let body: Value = match media_type {
                    "application/json" => serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("{context}: not JSON ({e}): {text}")),
                    "application/yaml" => serde_yaml::from_str(&text)
                        .unwrap_or_else(|e| panic!("{context}: not YAML ({e})")),
                    _ => Value::String(text),
                };
                self.validate(&context, &json_schema(schema), &body);
                body
            }
        };
        self.seen.insert((operation_id.to_owned(), status.as_u16()));
        (status, body)
    }

    fn validate(&self, context: &str, schema: &Value, instance: &Value) {
        let mut root = match schema {
            Value::Object(map) => map.clone(),
            _ => panic!("{context}: schema is not an object"),
        };
        root.insert(
            "$schema".into(),
            "https://json-schema.org/draft/2020-12/schema".into(),
        );
        root.insert("components".into(), self.components.clone());
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(&Value::Object(root))
            .unwrap_or_else(|e| panic!("{context}: the documented schema is invalid: {e}"));
        let problems: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            problems.is_empty(),
            "{context} with a body the document does not allow: {problems:#?}\n{instance:#}"
        );
    }
}

/// An OpenAPI 3.0 schema as JSON Schema: `nullable: true` becomes "or null";
/// examples are dropped.
fn json_schema(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, value) in map {
                if !matches!(key.as_str(), "nullable" | "example" | "examples") {
                    out.insert(key.clone(), json_schema(value));
                }
            }
            if map.get("nullable") == Some(&Value::Bool(true)) {
                json!({"anyOf": [Value::Object(out), {"type": "null"}]})
            } else {
                Value::Object(out)
            }
        }
        Value::Array(items) => Value::Array(items.iter().map(json_schema).collect()),
        other => other.clone(),
    }
}

/// Moves a job's creation back by two days, so that it is CLOSED.
fn close_job(app: &TestApp, job_id: &str) {
    let id: i64 = job_id.parse().expect("numeric job id");
    let sql = match app.db.backend() {
        Backend::Sqlite => {
            format!("UPDATE jobs SET created_on = datetime(created_on, '-2 days') WHERE id = {id}")
        }
        Backend::Postgres => {
            format!("UPDATE jobs SET created_on = created_on - interval '2 days' WHERE id = {id}")
        }
    };
    let updated = match app.db.backend() {
        Backend::Sqlite => {
            let path = app.db.url().strip_prefix("sqlite://").expect("sqlite url");
            diesel::sql_query(sql).execute(&mut SqliteConnection::establish(path).unwrap())
        }
        Backend::Postgres => {
            diesel::sql_query(sql).execute(&mut PgConnection::establish(app.db.url()).unwrap())
        }
    };
    assert_eq!(updated.expect("age job"), 1);
}

/// Builds one operation's request for a given client.
type MakeRequest<'a> = Box<dyn Fn(&Client) -> RequestBuilder + 'a>;

fn form(fields: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(fields).unwrap()
}

/// Every operation, with every status a test can provoke, on every backend.
#[test]
fn every_operation_answers_as_documented() {
    for backend in backends() {
        let app = TestApp::spawn_with(TestDb::new(backend), |config| {
            config.bodies.max_bytes = 64 * 1024;
        });
        let mut c = Contract::new();
        let admin = app.client.clone();
        let anonymous = app.anonymous();
        let url = |path: &str| app.url(path);
        let token = "/oauth/token";
        let password_grant = [
            ("grant_type", "password"),
            ("username", ADMIN),
            ("password", ADMIN_PASSWORD),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("scope", "api"),
        ];

        // getToken: form body, query string, refresh, and each kind of refusal.
        let form_post = |fields: &[(&str, &str)]| {
            Client::new()
                .post(url(token))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form(fields))
        };
        let (_, tokens) = c.call("getToken", form_post(&password_grant));
        assert_eq!(tokens["Retailer_id"], Value::Null);
        c.call(
            "getToken",
            Client::new().post(format!("{}?{}", url(token), form(&password_grant))),
        );
        let refresh = tokens["refresh_token"].as_str().unwrap();
        let (status, _) = c.call(
            "getToken",
            form_post(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
            ]),
        );
        assert_eq!(status, StatusCode::OK);
        for refused in [
            vec![("grant_type", "password"), ("username", "nobody")],
            vec![("grant_type", "client_credentials")],
            vec![("grant_type", "password"), ("scope", "other")],
            vec![("grant_type", "password"), ("username", "nul\u{0}user")],
        ] {
            let mut fields = password_grant.to_vec();
            for (key, value) in refused {
                fields.retain(|(k, _)| *k != key);
                fields.push((key, value));
            }
            let (status, _) = c.call("getToken", form_post(&fields));
            assert_eq!(status, StatusCode::BAD_REQUEST);
        }
        let (status, body) = c.call(
            "getToken",
            Client::new()
                .post(url(token))
                .json(&json!({"grant_type": "password"})),
        );
        assert_eq!(
            (status, &body["error"]),
            (StatusCode::BAD_REQUEST, &json!("invalid_request"))
        );

        // A retailer's user without permissions, and one with them.
        app.create_user("contract-none", Some("197"), &[]);
        app.create_user(
            "contract-197",
            Some("197"),
            &[Permission::JobCreate, Permission::JobView],
        );
        let (_, tokens) = c.call(
            "getToken",
            form_post(&[
                ("grant_type", "password"),
                ("username", "contract-197"),
                ("password", USER_PASSWORD),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
            ]),
        );
        assert_eq!(tokens["Retailer_id"], json!(197));
        let powerless = app.client_as("contract-none");
        let retailer_user = app.client_as("contract-197");
        // No header, an unknown token, an empty one.
        let bad_tokens = [
            anonymous.clone(),
            client_with_token("not-a-token"),
            client_with_token(""),
        ];

        // createJob
        let job_body = json!({"name": "Batch Inventory Job", "retailerId": "197"});
        let (_, created) = c.call(
            "createJob",
            admin.post(url("/api/v4.1/job")).json(&job_body),
        );
        let job = created["id"].as_str().unwrap().to_owned();
        c.call(
            "createJob",
            admin
                .post(url("/api/v4.1/job"))
                .body(r#"{"name": "no content type", "retailerId": 197}"#),
        );
        for bad in [
            json!({"meta": [1]}),
            json!([]),
            json!({"name": " ", "retailerId": "a\u{0}"}),
        ] {
            let (status, _) = c.call("createJob", admin.post(url("/api/v4.1/job")).json(&bad));
            assert_eq!(status, StatusCode::BAD_REQUEST);
        }
        c.call(
            "createJob",
            admin
                .post(url("/api/v4.1/job"))
                .body("{")
                .header("content-type", "application/json"),
        );
        let (status, _) = c.call(
            "createJob",
            admin
                .post(url("/api/v4.1/job"))
                .header("content-type", "text/plain")
                .body(job_body.to_string()),
        );
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let (status, _) = c.call(
            "createJob",
            admin
                .post(url("/api/v4.1/job"))
                .json(&json!({"name": "x".repeat(70_000), "retailerId": "197"})),
        );
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        let (status, _) = c.call(
            "createJob",
            retailer_user
                .post(url("/api/v4.1/job"))
                .json(&json!({"name": "n", "retailerId": "198"})),
        );
        assert_eq!(status, StatusCode::FORBIDDEN);

        // createBatch: the Fluent docs' example, records with problems, and refusals.
        let batch_path = format!("/api/v4.1/job/{job}/batch");
        let docs_example = json!({"action": "UPSERT", "entityType": "INVENTORY", "entities": [
            {"locationRef": "158", "qty": 10, "correctedQty": 11, "reservedQty": 12,
             "skuRef": "29SPM0020X96-1-8", "retailerId": 197}]});
        let (_, accepted) = c.call(
            "createBatch",
            admin.post(url(&batch_path)).json(&docs_example),
        );
        let batch = accepted["id"].as_str().unwrap().to_owned();
        let mixed = json!({"action": "UPSERT", "entityType": "INVENTORY", "entities": [
            {"retailerId": "197", "skuRef": "S-1", "locationRef": "158", "qty": "7", "ref": "R-1",
             "attributes": {"condition": "NEW"}, "status": "ACTIVE", "inventoryId": "1"},
            {"retailerId": 197, "locationRef": "158", "qty": -1},
            {"retailerId": 198, "skuRef": "S-9", "locationRef": "158", "qty": 3},
            {"retailerId": 197, "skuRef": "S\u{0}", "locationRef": "158", "qty": 1.5},
            [1]]});
        let (_, accepted) = c.call("createBatch", admin.post(url(&batch_path)).json(&mixed));
        let mixed_batch = accepted["id"].as_str().unwrap().to_owned();
        for bad in [
            json!({"action": "DELETE"}),
            json!({"action": "UPSERT", "entityType": "INVENTORY", "entities": []}),
        ] {
            let (status, _) = c.call("createBatch", admin.post(url(&batch_path)).json(&bad));
            assert_eq!(status, StatusCode::BAD_REQUEST);
        }
        for missing in ["/api/v4.1/job/99999/batch", "/api/v4.1/job/abc/batch"] {
            let (status, _) = c.call("createBatch", admin.post(url(missing)).json(&docs_example));
            assert_eq!(status, StatusCode::NOT_FOUND);
        }
        let (status, _) = c.call(
            "createBatch",
            admin
                .post(url(&batch_path))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("a=b"),
        );
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let (status, _) = c.call(
            "createBatch",
            admin
                .post(url(&batch_path))
                .header("content-type", "application/json")
                .body(
                    json!({"action": "UPSERT", "entityType": "INVENTORY",
                       "entities": [{"skuRef": "x".repeat(70_000)}]})
                    .to_string(),
                ),
        );
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        let (_, old) = c.call(
            "createJob",
            admin.post(url("/api/v4.1/job")).json(&job_body),
        );
        let old = old["id"].as_str().unwrap().to_owned();
        close_job(&app, &old);
        let (status, _) = c.call(
            "createBatch",
            admin
                .post(url(&format!("/api/v4.1/job/{old}/batch")))
                .json(&docs_example),
        );
        assert_eq!(status, StatusCode::CONFLICT);

        // getBatch: polled until COMPLETE, then paged; refusals.
        let mixed_path = format!("/api/v4.1/job/{job}/batch/{mixed_batch}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let (_, body) = c.call("getBatch", admin.get(url(&mixed_path)));
            if body["status"] == "COMPLETE" {
                let codes: Vec<_> = body["results"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["responseCode"].as_i64().unwrap())
                    .collect();
                assert_eq!(codes, [200, 400, 401, 400, 400], "{body}");
                break;
            }
            assert!(std::time::Instant::now() < deadline, "not COMPLETE: {body}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        app.wait_complete(&job, &batch, 1);
        c.call(
            "getBatch",
            admin.get(url(&format!("{mixed_path}?start=2&count=2&other=1"))),
        );
        for bad in ["?start=0&count=0", "?start=abc", "?count=1&count=2"] {
            let (status, _) = c.call("getBatch", admin.get(url(&format!("{mixed_path}{bad}"))));
            assert_eq!(status, StatusCode::BAD_REQUEST);
        }
        for missing in [
            format!("/api/v4.1/job/{job}/batch/99999"),
            format!("/api/v4.1/job/{old}/batch/{batch}"),
            format!("/api/v4.1/job/x/batch/{batch}"),
        ] {
            let (status, _) = c.call("getBatch", admin.get(url(&missing)));
            assert_eq!(status, StatusCode::NOT_FOUND);
        }

        // getJob
        let job_path = format!("/api/v4.1/job/{job}");
        let (_, body) = c.call("getJob", admin.get(url(&job_path)));
        assert_eq!(body["batch"].as_array().unwrap().len(), 2);
        c.call("getJob", admin.get(url(&format!("/api/v4.1/job/{old}"))));
        c.call("getJob", retailer_user.get(url(&job_path)));
        for missing in [
            "/api/v4.1/job/99999",
            "/api/v4.1/job/01",
            "/api/v4.1/job/-1",
        ] {
            let (status, _) = c.call("getJob", admin.get(url(missing)));
            assert_eq!(status, StatusCode::NOT_FOUND);
        }

        // listInventory
        for query in [
            "",
            "?retailerId=197&skuRef=S-1&locationRef=158&start=1&count=10",
            "?retailerId=nobody",
            "?skuRef=%00",
            "?start=5000",
        ] {
            let (status, _) = c.call(
                "listInventory",
                admin.get(url(&format!("/api/v4.1/inventory{query}"))),
            );
            assert_eq!(status, StatusCode::OK, "{query}");
        }
        for bad in [
            "?count=0&start=-1",
            "?sku=X",
            "?retailerId=1&retailerId=2",
            "?count=x",
        ] {
            let (status, _) = c.call(
                "listInventory",
                admin.get(url(&format!("/api/v4.1/inventory{bad}"))),
            );
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        }

        // Every API operation: 401 without a valid token, 403 without the permission.
        let api_calls: Vec<(&str, MakeRequest)> = vec![
            (
                "createJob",
                Box::new(|client: &Client| client.post(url("/api/v4.1/job")).json(&job_body)),
            ),
            (
                "getJob",
                Box::new(|client: &Client| client.get(url(&job_path))),
            ),
            (
                "createBatch",
                Box::new(|client: &Client| client.post(url(&batch_path)).json(&docs_example)),
            ),
            (
                "getBatch",
                Box::new(|client: &Client| client.get(url(&mixed_path))),
            ),
            (
                "listInventory",
                Box::new(|client: &Client| client.get(url("/api/v4.1/inventory"))),
            ),
        ];
        for (operation, request) in &api_calls {
            for client in &bad_tokens {
                let (status, _) = c.call(operation, request(client));
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{operation}");
            }
            let malformed = request(&anonymous).header("authorization", "Basic abc");
            let (status, _) = c.call(operation, malformed);
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{operation}");
            let (status, _) = c.call(operation, request(&powerless));
            assert_eq!(status, StatusCode::FORBIDDEN, "{operation}");
        }

        // The public operations.
        let (_, health) = c.call("getHealth", anonymous.get(url("/health")));
        assert_eq!(health, json!({"status": "UP"}));
        c.call("headHealth", anonymous.head(url("/health")));
        c.call("getOpenApi", anonymous.get(url("/openapi.yaml")));
        c.call("getOpenApiJson", anonymous.get(url("/openapi.json")));
        let (_, page) = c.call("getDocs", anonymous.get(url("/docs")));
        let page = page.as_str().unwrap();
        assert!(page.contains("redoc.standalone.js") && page.contains("openapi.json"));
        assert!(
            !page.contains("https://"),
            "the page loads nothing from elsewhere"
        );
        let (_, script) = c.call(
            "getDocsScript",
            anonymous.get(url("/docs/redoc.standalone.js")),
        );
        assert!(script.as_str().unwrap().len() > 100_000);

        // Every operation was seen answering, and with a success.
        for (operation_id, _) in c.operations.clone() {
            assert!(
                c.seen
                    .iter()
                    .any(|(id, status)| *id == operation_id && *status < 300),
                "{backend:?}: {operation_id} was never exercised with a success"
            );
        }
    }
}

/// Every served path answers the methods it serves (not 404 or 405), and any other method
/// with 405 and an `Allow` header naming exactly the served ones.
#[test]
fn every_path_serves_its_methods_and_refuses_others_with_405() {
    let app = TestApp::spawn(Backend::Sqlite);
    let job = app.create_job(json!("197"));
    let batch = app.post_batch(&job, json!([record("197", "L", "S", 1)]));
    let concrete =
        |path: &str| app.url(&path.replace("{jobId}", &job).replace("{batchId}", &batch));
    let client = &app.client;
    for (path, allow) in ROUTES {
        let served: Vec<&str> = allow.split(',').map(str::trim).collect();
        for method in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
            let request = client.request(method.parse().unwrap(), concrete(path));
            let request = match (*path, method) {
                ("/oauth/token", "POST") => request
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(form(&[
                        ("grant_type", "password"),
                        ("username", ADMIN),
                        ("password", ADMIN_PASSWORD),
                        ("client_id", CLIENT_ID),
                        ("client_secret", CLIENT_SECRET),
                    ])),
                ("/api/v4.1/job", "POST") => {
                    request.json(&json!({"name": "n", "retailerId": "197"}))
                }
                (_, "POST") => request.json(&json!({"action": "UPSERT", "entityType": "INVENTORY",
                            "entities": [record("197", "L", "S", 2)]})),
                _ => request,
            };
            let response = request.send().expect("request");
            let status = response.status();
            if served.contains(&method) {
                assert_eq!(status, StatusCode::OK, "{method} {path}");
            } else {
                assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
                assert_eq!(
                    response.headers().get("allow").map(|v| v.to_str().unwrap()),
                    Some(*allow),
                    "{method} {path}"
                );
            }
        }
    }
}

/// The checker itself: it refuses bodies the document does not allow, so the test above
/// cannot pass vacuously.
#[test]
fn the_checker_refuses_what_the_document_does_not_allow() {
    let c = Contract::new();
    let schema = |name: &str| json!({"$ref": format!("#/components/schemas/{name}")});
    let refuses = |name: &str, instance: Value| {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            c.validate(name, &schema(name), &instance)
        }));
        assert!(outcome.is_err(), "{name} allowed {instance}");
    };
    c.validate("IdResponse", &schema("IdResponse"), &json!({"id": "1"}));
    refuses("IdResponse", json!({"id": 1}));
    refuses("IdResponse", json!({}));
    refuses("ErrorBody", json!({"errors": []}));
    let token = json!({"access_token": "a", "token_type": "bearer", "expires_in": 1,
                       "scope": "api", "refresh_token": "r", "Retailer_id": null});
    c.validate("TokenResponse", &schema("TokenResponse"), &token);
    let mut wrong = token.clone();
    wrong["Retailer_id"] = json!(true);
    refuses("TokenResponse", wrong);
    let job = json!({"jobId": "1", "name": "n", "retailerId": "1", "status": "OPEN",
                     "meta": null, "createdOn": "2026-11-22T17:01:12.174Z", "batch": []});
    c.validate("Job", &schema("Job"), &job);
    let mut wrong = job.clone();
    wrong["createdOn"] = json!("yesterday");
    refuses("Job", wrong);
    let mut wrong = job;
    wrong["status"] = json!("DONE");
    refuses("Job", wrong);
}

/// Every example in the document fits its schema, so the reference never shows a body
/// the service could not send or would refuse.
#[test]
fn every_example_matches_its_schema() {
    fn walk(c: &Contract, value: &Value, at: &str, checked: &mut usize) {
        let Some(map) = value.as_object() else {
            if let Some(items) = value.as_array() {
                for (i, item) in items.iter().enumerate() {
                    walk(c, item, &format!("{at}/{i}"), checked);
                }
            }
            return;
        };
        let is_schema = [
            "type",
            "oneOf",
            "anyOf",
            "allOf",
            "$ref",
            "enum",
            "properties",
        ]
        .iter()
        .any(|k| map.contains_key(*k));
        if let (true, Some(example)) = (is_schema, map.get("example")) {
            c.validate(at, &json_schema(value), example);
            *checked += 1;
        }
        if let Some(schema) = map.get("schema") {
            if let Some(example) = map.get("example") {
                c.validate(at, &json_schema(schema), example);
                *checked += 1;
            }
            for (name, example) in map
                .get("examples")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                c.validate(
                    &format!("{at}/examples/{name}"),
                    &json_schema(schema),
                    &example["value"],
                );
                *checked += 1;
            }
        }
        for (key, child) in map {
            if !matches!(key.as_str(), "example" | "examples") {
                walk(c, child, &format!("{at}/{key}"), checked);
            }
        }
    }
    let c = Contract::new();
    let mut checked = 0;
    walk(&c, &c.doc, "#", &mut checked);
    assert!(checked > 50, "only {checked} examples found");
}
