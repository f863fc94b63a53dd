//! The OpenAPI contract: `openapi.yaml` documents exactly the routes the service mounts
//! (`stockbatch::api::ROUTES`), and real responses of every operation — each status the
//! tests can provoke — have a documented status, content type, required headers and a
//! body that validates against the documented schema and has no field the document does
//! not name (an object schema with `properties` is closed unless it says
//! `additionalProperties`).
//!
//! When this fails after a change to the API, update `openapi.yaml` (see the README's
//! "The OpenAPI contract").

mod common;
use common::*;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection, RunQueryDsl, SqliteConnection};
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::HeaderValue;
use reqwest::StatusCode;
use serde_json::{json, Map, Value};
use stockbatch::api::ROUTES;
use stockbatch::auth::accounts::{create_client, ClientBinding};
use stockbatch::auth::api_keys::create_api_key;
use stockbatch::auth::Permission;
use stockbatch::executor::Step;
use stockbatch::Role;

const OPENAPI_YAML: &str = include_str!("../openapi.yaml");
/// The OAuth client bound to retailer 197 (client_credentials), as Fluent's SDK uses one.
const SDK_CLIENT: &str = "contract-sdk";
const SDK_SECRET: &str = "contract-sdk-secret";
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
        let secured = path.starts_with("/api/") || path == "/metrics";
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
                    _ => Value::String(text.clone()),
                };
                self.validate(&context, &json_schema(schema), &body);
                if media_type == "application/x-ndjson" {
                    // NDJSON: each line is a `ResultLine`; the caller gets them as an array.
                    let line_schema = json!({"$ref": "#/components/schemas/ResultLine"});
                    let lines: Vec<Value> = text
                        .lines()
                        .map(|line| {
                            let line: Value = serde_json::from_str(line).unwrap_or_else(|e| {
                                panic!("{context}: an NDJSON line is not JSON ({e}): {line}")
                            });
                            self.validate(&context, &line_schema, &line);
                            line
                        })
                        .collect();
                    return self.seen_answer(operation_id, status, Value::Array(lines));
                }
                body
            }
        };
        self.seen_answer(operation_id, status, body)
    }

    fn seen_answer(
        &mut self,
        operation_id: &str,
        status: StatusCode,
        body: Value,
    ) -> (StatusCode, Value) {
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
        let mut problems: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        self.undocumented_fields(schema, instance, "", &mut problems);
        assert!(
            problems.is_empty(),
            "{context} with a body the document does not allow: {problems:#?}\n{instance:#}"
        );
    }
}

impl Contract {
    /// Fields of `instance` that `schema` does not name: an object schema with
    /// `properties` (its own or those of its `allOf`, `oneOf` and `anyOf` members) is
    /// closed unless one of them says `additionalProperties`. The document leaves schemas
    /// open (so that generated clients and schemathesis tolerate fields added later), and
    /// this keeps it from silently missing a field the server sends.
    fn undocumented_fields(
        &self,
        schema: &Value,
        instance: &Value,
        at: &str,
        out: &mut Vec<String>,
    ) {
        let mut members = Vec::new();
        self.members(schema, &mut members);
        match instance {
            Value::Object(map) => {
                let declares = members.iter().any(|m| m.get("properties").is_some());
                let open = members.iter().any(|m| {
                    m.get("additionalProperties")
                        .is_some_and(|a| *a != Value::Bool(false))
                });
                for (key, value) in map {
                    let named: Vec<&Value> = members
                        .iter()
                        .filter_map(|m| m.get("properties").and_then(|p| p.get(key)))
                        .collect();
                    if named.is_empty() {
                        if declares && !open {
                            out.push(format!("{at}/{key} is not in the document"));
                        }
                        for m in &members {
                            if let Some(extra @ Value::Object(_)) = m.get("additionalProperties") {
                                self.undocumented_fields(extra, value, &format!("{at}/{key}"), out);
                            }
                        }
                    }
                    for property in named {
                        self.undocumented_fields(property, value, &format!("{at}/{key}"), out);
                    }
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    for m in &members {
                        if let Some(schema) = m.get("items") {
                            self.undocumented_fields(schema, item, &format!("{at}/{i}"), out);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// `schema` and, recursively, its `allOf`, `oneOf` and `anyOf` members, references
    /// resolved.
    fn members<'a>(&'a self, schema: &'a Value, out: &mut Vec<&'a Value>) {
        let schema = self.resolve(schema);
        out.push(schema);
        for combinator in ["allOf", "oneOf", "anyOf"] {
            for member in schema
                .get(combinator)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                self.members(member, out);
            }
        }
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

/// Runs one statement on the app's database (SQLite's spelling, PostgreSQL's); returns the
/// rows changed.
fn execute_sql(app: &TestApp, sqlite: &str, postgres: &str) -> usize {
    let updated = match app.db.backend() {
        Backend::Sqlite => {
            let path = app.db.url().strip_prefix("sqlite://").expect("sqlite url");
            let mut conn = SqliteConnection::establish(path).unwrap();
            // The executor may hold the write lock for a moment: wait for it.
            conn.batch_execute("PRAGMA busy_timeout = 10000")
                .expect("busy timeout");
            diesel::sql_query(sqlite).execute(&mut conn)
        }
        Backend::Postgres => {
            diesel::sql_query(postgres).execute(&mut PgConnection::establish(app.db.url()).unwrap())
        }
    };
    updated.expect("statement")
}

/// Moves a job's creation back by two days, so that it is CLOSED.
fn close_job(app: &TestApp, job_id: &str) {
    let id: i64 = job_id.parse().expect("numeric job id");
    let updated = execute_sql(
        app,
        &format!("UPDATE jobs SET created_on = datetime(created_on, '-2 days') WHERE id = {id}"),
        &format!("UPDATE jobs SET created_on = created_on - interval '2 days' WHERE id = {id}"),
    );
    assert_eq!(updated, 1, "age job");
}

/// Marks a PENDING batch RUNNING, leased to an executor that never comes, as if one had
/// claimed it (on an app with no executor of its own): what a cancel of a running batch
/// meets.
fn mark_running(app: &TestApp, batch_id: &str) {
    let id: i64 = batch_id.parse().expect("numeric batch id");
    let set = "status = 'RUNNING', attempts = 1, started_on = created_on, \
               lease_owner = 'contract-test'";
    let updated = execute_sql(
        app,
        &format!(
            "UPDATE batches SET {set}, lease_expires_at = datetime(created_on, '+1 day') \
             WHERE id = {id} AND status = 'PENDING'"
        ),
        &format!(
            "UPDATE batches SET {set}, lease_expires_at = created_on + interval '1 day' \
             WHERE id = {id} AND status = 'PENDING'"
        ),
    );
    assert_eq!(updated, 1, "batch {batch_id} RUNNING");
}

/// Runs the oldest runnable batch of an app without an executor, as an executor would.
fn run_one(app: &TestApp) -> Step {
    app.executor().run_once().unwrap()
}

/// The `responseCode` of every result (of a batch view, or NDJSON lines).
fn codes(results: &Value) -> Vec<i64> {
    results
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {results}"))
        .iter()
        .map(|r| r["responseCode"].as_i64().unwrap())
        .collect()
}

/// A client authenticated with a new API key of `retailer` (default location
/// `DEFAULT`), as StateSet clients call the service. Made before any batch is queued:
/// on SQLite, creating a key while the executor commits can fail with "database is
/// locked" (its transaction reads before it writes).
fn api_key_client(app: &TestApp, name: &str, retailer: &str, permissions: &[Permission]) -> Client {
    let key = app.with_db(|conn| {
        create_api_key(conn, name, retailer, permissions, "DEFAULT").expect("create API key")
    });
    client_with_token(&key)
}

/// The `status` of every result of a StateSet batch.
fn item_statuses(batch: &Value) -> Vec<&str> {
    batch["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results: {batch}"))
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect()
}

/// Builds one operation's request for a given client.
type MakeRequest<'a> = Box<dyn Fn(&Client) -> RequestBuilder + 'a>;

fn form(fields: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(fields).unwrap()
}

backend_tests!(every_operation_answers_as_documented);
/// Every operation, with every status a test can provoke, on every backend.
fn every_operation_answers_as_documented(backend: Backend) {
    let app = TestApp::spawn_with(TestDb::new(backend), |config| {
        config.bodies.max_bytes = 64 * 1024;
        // StateSet POSTs answer 200 once their batch completes: a long wait keeps a
        // slow machine from turning them into 202s (which are provoked below).
        config.api.stateset_wait = Duration::from_secs(30);
        // Webhooks to a loopback port nobody listens on: deliveries stay pending.
        config.notify.allow_private_destinations = true;
        config.metrics.token = Some(METRICS_TOKEN.to_owned());
    });
    let mut c = Contract::new();
    // The StateSet operations act for one retailer: API keys of 197 and of 198, made
    // while no batch runs (see `api_key_client`).
    let stateset = api_key_client(&app, "contract-197", "197", &Permission::ALL);
    let elsewhere = api_key_client(&app, "contract-198", "198", &Permission::ALL);
    // An OAuth client bound to retailer 197, for the client_credentials grant (made,
    // like the keys, while no batch runs).
    app.with_db(|conn| {
        let binding = ClientBinding {
            retailer_id: "197",
            permissions: &Permission::ALL,
        };
        create_client(conn, SDK_CLIENT, Some(SDK_SECRET), Some(binding)).expect("client")
    });
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
    for (refused, error) in [
        (
            vec![("grant_type", "password"), ("username", "nobody")],
            "invalid_grant",
        ),
        // The bootstrap client is bound to no retailer: it cannot act for itself.
        (
            vec![("grant_type", "client_credentials")],
            "unauthorized_client",
        ),
        (
            vec![("grant_type", "authorization_code")],
            "unsupported_grant_type",
        ),
        (
            vec![("grant_type", "password"), ("scope", "other")],
            "invalid_scope",
        ),
        (
            vec![("grant_type", "password"), ("username", "nul\u{0}user")],
            "invalid_request",
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", SDK_CLIENT),
                ("client_secret", "not-the-secret"),
            ],
            "invalid_client",
        ),
    ] {
        let mut fields = password_grant.to_vec();
        for (key, value) in refused {
            fields.retain(|(k, _)| *k != key);
            fields.push((key, value));
        }
        let (status, body) = c.call("getToken", form_post(&fields));
        assert_eq!(
            (status, &body["error"]),
            (StatusCode::BAD_REQUEST, &json!(error)),
            "{fields:?}"
        );
    }
    // client_credentials: a client bound to retailer 197 acts for it, with no refresh
    // token; its credentials may come as HTTP Basic.
    let (status, sdk_tokens) = c.call(
        "getToken",
        form_post(&[
            ("grant_type", "client_credentials"),
            ("client_id", SDK_CLIENT),
            ("client_secret", SDK_SECRET),
            ("scope", "api"),
        ]),
    );
    assert_eq!(status, StatusCode::OK, "{sdk_tokens}");
    assert_eq!(sdk_tokens["Retailer_id"], json!(197), "{sdk_tokens}");
    assert!(sdk_tokens.get("refresh_token").is_none(), "{sdk_tokens}");
    let (status, basic) = c.call(
        "getToken",
        Client::new()
            .post(url(token))
            .basic_auth(SDK_CLIENT, Some(SDK_SECRET))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[("grant_type", "client_credentials")])),
    );
    assert_eq!(status, StatusCode::OK, "{basic}");
    let sdk = client_with_token(sdk_tokens["access_token"].as_str().unwrap());
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
    // No header, an unknown token, an empty one, an unknown API key.
    let bad_tokens = [
        anonymous.clone(),
        client_with_token("not-a-token"),
        client_with_token(""),
        client_with_token(&format!("sbk_{}", "0".repeat(64))),
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
    // The client's own token acts for its retailer: a job of 197, not of 198.
    let (status, created) = c.call(
        "createJob",
        sdk.post(url("/api/v4.1/job"))
            .json(&json!({"name": "SDK job", "retailerId": 197})),
    );
    assert_eq!(status, StatusCode::OK, "{created}");
    let sdk_job = created["id"].as_str().unwrap().to_owned();
    let (status, _) = c.call(
        "createJob",
        sdk.post(url("/api/v4.1/job"))
            .json(&json!({"name": "n", "retailerId": "198"})),
    );
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A job whose meta turns Batch Pre-Processing off.
    let (_, created) = c.call(
        "createJob",
        sdk.post(url("/api/v4.1/job"))
            .json(&json!({"name": "no pre-processing", "retailerId": "197",
                    "meta": {"preprocessing": "skip"}})),
    );
    let skip_job = created["id"].as_str().unwrap().to_owned();

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
    // As Fluent's SDK posts: batch-level fields, and record fields of its own (kept with
    // the position; one named `id` is kept but not shown).
    let sdk_record = json!({"retailerId": 197, "skuRef": "SDK-1", "locationRef": "158",
        "qty": 4, "uom": "EA", "lot": "L-2026-11", "expiry": "2027-06-30",
        "effectiveFrom": "2026-12-01T00:00:00Z", "id": "not-shown"});
    let sdk_body = json!({"action": "UPSERT", "entityType": "INVENTORY", "source": "SDK",
        "event": "NORMAL", "catalogueRef": "DEFAULT:197",
        "conditions": {"hasRelatedInventoryQuantities": true}, "entities": [sdk_record]});
    let sdk_batch_path = format!("/api/v4.1/job/{sdk_job}/batch");
    let (status, accepted) = c.call(
        "createBatch",
        sdk.post(url(&sdk_batch_path)).json(&sdk_body),
    );
    assert_eq!(status, StatusCode::OK, "{accepted}");
    let sdk_batch = accepted["id"].as_str().unwrap().to_owned();
    let entities = json!([record("197", "158", "X", 1)]);
    for bad in [
        json!({"action": "DELETE"}),
        json!({"action": "UPSERT", "entityType": "INVENTORY", "entities": []}),
        json!({"action": "UPSERT", "entityType": "INVENTORY", "entities": entities,
               "source": 1, "conditions": []}),
        json!({"action": "UPSERT", "entityType": "INVENTORY", "entities": entities,
               "event": "e".repeat(256), "catalogueRef": "a\u{0}"}),
        json!({"action": "UPSERT", "entityType": "INVENTORY", "entities": entities,
               "conditions": {"x": "y".repeat(4100)}}),
    ] {
        let (status, body) = c.call("createBatch", admin.post(url(&batch_path)).json(&bad));
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
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

    // Idempotency-Key on createJob and createBatch: a retry answers the same id and
    // creates nothing; the key with another request is a 422; a bad key is a 400.
    let keyed = |path: &str, key: &str, body: &Value| {
        admin
            .post(url(path))
            .header("Idempotency-Key", key)
            .json(body)
    };
    let (_, first) = c.call(
        "createJob",
        keyed("/api/v4.1/job", "contract-job-1", &job_body),
    );
    let (status, again) = c.call(
        "createJob",
        keyed("/api/v4.1/job", "\"contract-job-1\"", &job_body),
    );
    assert_eq!(
        (status, &again),
        (StatusCode::OK, &first),
        "a quoted key is the key"
    );
    let keyed_job = first["id"].as_str().unwrap().to_owned();
    let keyed_batch_path = format!("/api/v4.1/job/{keyed_job}/batch");
    let (_, first) = c.call(
        "createBatch",
        keyed(&keyed_batch_path, "contract-batch-1", &docs_example),
    );
    let (status, again) = c.call(
        "createBatch",
        keyed(&keyed_batch_path, "contract-batch-1", &docs_example),
    );
    assert_eq!((status, &again), (StatusCode::OK, &first));
    let (_, keyed_job_body) = c.call(
        "getJob",
        admin.get(url(&format!("/api/v4.1/job/{keyed_job}"))),
    );
    assert_eq!(
        keyed_job_body["batch"].as_array().unwrap().len(),
        1,
        "a retry queues no second batch: {keyed_job_body}"
    );
    for (operation, path, key, body) in [
        (
            "createJob",
            "/api/v4.1/job",
            "contract-job-1",
            json!({"name": "other", "retailerId": "197"}),
        ),
        (
            "createBatch",
            keyed_batch_path.as_str(),
            "contract-batch-1",
            mixed.clone(),
        ),
        // The same key on another path is another request.
        (
            "createBatch",
            keyed_batch_path.as_str(),
            "contract-job-1",
            docs_example.clone(),
        ),
    ] {
        let (status, _) = c.call(operation, keyed(path, key, &body));
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{operation} {key}"
        );
    }
    let long_key = "k".repeat(256);
    for (operation, path, body) in [
        ("createJob", "/api/v4.1/job", &job_body),
        ("createBatch", keyed_batch_path.as_str(), &docs_example),
    ] {
        for key in ["\"\"", long_key.as_str()] {
            let (status, _) = c.call(operation, keyed(path, key, body));
            assert_eq!(status, StatusCode::BAD_REQUEST, "{operation} {key}");
        }
        let not_ascii = HeaderValue::from_bytes("café".as_bytes()).unwrap();
        let request = admin
            .post(url(path))
            .header("Idempotency-Key", not_ascii)
            .json(body);
        let (status, _) = c.call(operation, request);
        assert_eq!(status, StatusCode::BAD_REQUEST, "{operation}");
    }

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
    let (_, view) = c.call("getBatch", admin.get(url(&mixed_path)));
    let counts = |view: &Value| {
        [
            "totalEntities",
            "processedEntities",
            "appliedEntities",
            "rejectedEntities",
            "unchangedEntities",
        ]
        .map(|f| view[f].as_i64().unwrap_or_else(|| panic!("{f}: {view}")))
    };
    assert_eq!(counts(&view), [5, 5, 1, 4, 0], "{view}");
    assert_eq!(
        (
            &view["cancelled"],
            &view["cancelRequested"],
            &view["stalled"]
        ),
        (&json!(false), &json!(false), &json!(false)),
        "{view}"
    );
    assert!(
        view["startedOn"].is_string()
            && view["completedOn"].is_string()
            && view["expiresOn"].is_string()
            && view["attempts"] == 1,
        "{view}"
    );
    assert!(
        view.get("source").is_none(),
        "only the fields it was posted with: {view}"
    );
    // The SDK's batch shows the batch-level fields it was posted with. The same record
    // again changes nothing (Batch Pre-Processing), unless the job skips it.
    app.wait_complete(&sdk_job, &sdk_batch, 1);
    let sdk_batch_view = format!("/api/v4.1/job/{sdk_job}/batch/{sdk_batch}");
    let (_, view) = c.call("getBatch", sdk.get(url(&sdk_batch_view)));
    for field in ["source", "event", "catalogueRef", "conditions"] {
        assert_eq!(view[field], sdk_body[field], "{field}: {view}");
    }
    assert_eq!(counts(&view), [1, 1, 1, 0, 0], "{view}");
    let again_body = json!({"action": "UPSERT", "entityType": "INVENTORY",
                            "entities": [sdk_record]});
    let (_, accepted) = c.call(
        "createBatch",
        sdk.post(url(&sdk_batch_path)).json(&again_body),
    );
    let sdk_again = accepted["id"].as_str().unwrap().to_owned();
    app.wait_complete(&sdk_job, &sdk_again, 1);
    let (_, view) = c.call(
        "getBatch",
        sdk.get(url(&format!("/api/v4.1/job/{sdk_job}/batch/{sdk_again}"))),
    );
    assert_eq!(
        view["results"][0]["message"], "Inventory unchanged",
        "{view}"
    );
    assert_eq!(counts(&view), [1, 1, 1, 0, 1], "{view}");
    let (_, accepted) = c.call(
        "createBatch",
        sdk.post(url(&format!("/api/v4.1/job/{skip_job}/batch")))
            .json(&again_body),
    );
    let skipped = accepted["id"].as_str().unwrap().to_owned();
    app.wait_complete(&skip_job, &skipped, 1);
    let (_, view) = c.call(
        "getBatch",
        sdk.get(url(&format!("/api/v4.1/job/{skip_job}/batch/{skipped}"))),
    );
    assert_eq!(view["results"][0]["message"], "Inventory updated", "{view}");
    assert_eq!(counts(&view), [1, 1, 1, 0, 0], "{view}");

    // getJob
    let job_path = format!("/api/v4.1/job/{job}");
    let (_, body) = c.call("getJob", admin.get(url(&job_path)));
    assert_eq!(body["batch"].as_array().unwrap().len(), 2);
    assert_eq!(body["batch"][1]["rejectedEntities"], 4, "{body}");
    let (_, body) = c.call("getJob", sdk.get(url(&format!("/api/v4.1/job/{sdk_job}"))));
    assert_eq!(
        (
            &body["status"],
            &body["batch"][0]["source"],
            &body["batch"][1]["unchangedEntities"]
        ),
        (&json!("OPEN"), &json!("SDK"), &json!(1)),
        "{body}"
    );
    let (_, body) = c.call("getJob", sdk.get(url(&format!("/api/v4.1/job/{skip_job}"))));
    assert_eq!(body["meta"], json!({"preprocessing": "skip"}), "{body}");
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

    // getJobResults: every batch's outcome and the job's totals.
    let (_, outcome) = c.call(
        "getJobResults",
        admin.get(url(&format!("{job_path}/results"))),
    );
    let tally = |outcome: &Value| {
        [
            "totalBatches",
            "successfulBatches",
            "failedBatches",
            "pendingBatches",
            "runningBatches",
        ]
        .map(|f| {
            outcome[f]
                .as_i64()
                .unwrap_or_else(|| panic!("{f}: {outcome}"))
        })
    };
    assert_eq!(tally(&outcome), [2, 1, 1, 0, 0], "{outcome}");
    assert_eq!(
        outcome["records"],
        json!({"total": 6, "applied": 2, "rejected": 4, "unchanged": 0})
    );
    let errors: Vec<&str> = outcome["results"][1]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap())
        .collect();
    assert_eq!(errors, ["400", "401", "400", "400"], "{outcome}");
    let (_, outcome) = c.call(
        "getJobResults",
        sdk.get(url(&format!("/api/v4.1/job/{sdk_job}/results"))),
    );
    assert_eq!(tally(&outcome), [2, 2, 0, 0, 0], "{outcome}");
    assert_eq!(outcome["records"]["unchanged"], 1, "{outcome}");
    for (client, missing) in [
        (&admin, "/api/v4.1/job/99999/results".to_owned()),
        (&admin, "/api/v4.1/job/x/results".to_owned()),
        (&elsewhere, format!("{job_path}/results")),
    ] {
        let (status, _) = c.call("getJobResults", client.get(url(&missing)));
        assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
    }

    // exportBatchResults: NDJSON by default, CSV by ?format or Accept, filtered by code.
    let export = |query: &str| admin.get(url(&format!("{mixed_path}/results{query}")));
    let (_, lines) = c.call("exportBatchResults", export(""));
    assert_eq!(codes(&lines), [200, 400, 401, 400, 400], "{lines}");
    let indexes: Vec<_> = lines
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["index"].as_i64().unwrap())
        .collect();
    assert_eq!(indexes, [1, 2, 3, 4, 5]);
    assert_eq!(lines[2]["record"], mixed["entities"][2], "{lines}");
    assert_eq!(lines[4]["record"], json!([1]), "{lines}");
    for (query, expected) in [
        ("?failed=true", vec![400, 401, 400, 400]),
        ("?failed=false&format=ndjson", vec![200, 400, 401, 400, 400]),
        ("?responseCode=401", vec![401]),
        ("?responseCode=%20401%20,%2B400", vec![400, 401, 400, 400]),
        ("?responseCode=500", vec![]),
    ] {
        let (status, lines) = c.call("exportBatchResults", export(query));
        assert_eq!(
            (status, codes(&lines)),
            (StatusCode::OK, expected),
            "{query}"
        );
    }
    let csv_header = "index,responseCode,message,entityId,entityRef,retailerId,locationRef,\
        skuRef,qty,correctedQty,reservedQty,inventoryId,ref,type,status,attributes,otherFields";
    let (_, csv) = c.call("exportBatchResults", export("?format=csv"));
    let rows: Vec<&str> = csv.as_str().unwrap().lines().collect();
    assert_eq!((rows.len(), rows[0]), (6, csv_header), "{csv}");
    assert!(rows[1].starts_with("1,200,Inventory created,"), "{csv}");
    let (_, csv) = c.call(
        "exportBatchResults",
        export("").header("accept", "text/csv"),
    );
    assert_eq!(csv.as_str().unwrap().lines().count(), 6, "{csv}");
    let (_, csv) = c.call(
        "exportBatchResults",
        export("?format=csv&responseCode=500").header("accept", "application/x-ndjson"),
    );
    assert_eq!(
        csv.as_str().unwrap().trim_end(),
        csv_header,
        "a header and no rows"
    );
    let (_, lines) = c.call(
        "exportBatchResults",
        export("?format=ndjson").header("accept", "text/csv"),
    );
    assert_eq!(
        lines.as_array().unwrap().len(),
        5,
        "?format wins over Accept"
    );
    // The SDK's record: its own fields in `otherFields`.
    let (_, csv) = c.call(
        "exportBatchResults",
        sdk.get(url(&format!("{sdk_batch_view}/results?format=csv"))),
    );
    let row = csv.as_str().unwrap().lines().nth(1).unwrap().to_owned();
    assert!(
        row.starts_with("1,200,Inventory created,") && row.contains(r#"""uom"":""EA"""#),
        "{csv}"
    );
    for bad in [
        "?format=xml",
        "?responseCode=abc",
        "?responseCode=400,",
        "?responseCode=99999999999",
        "?failed=yes",
        "?other=1",
        "?format=csv&format=csv",
    ] {
        let (status, _) = c.call("exportBatchResults", export(bad));
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
    for (client, missing) in [
        (&admin, format!("/api/v4.1/job/{job}/batch/99999/results")),
        (&admin, format!("/api/v4.1/job/{old}/batch/{batch}/results")),
        (&admin, format!("/api/v4.1/job/x/batch/{batch}/results")),
        (&elsewhere, format!("{mixed_path}/results")),
    ] {
        let (status, _) = c.call("exportBatchResults", client.get(url(&missing)));
        assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
    }

    // resubmitBatch: the records that were not applied, or corrected ones, as a new
    // batch of the same job.
    let resubmit = |batch: &str| admin.post(url(&format!("{batch_path}/{batch}/resubmit")));
    let (status, again) = c.call("resubmitBatch", resubmit(&mixed_batch));
    assert_eq!(status, StatusCode::OK, "{again}");
    let resubmitted = again["id"].as_str().unwrap().to_owned();
    let view = app.wait_complete(&job, &resubmitted, 10);
    assert_eq!(codes(&view["results"]), [400, 401, 400, 400], "{view}");
    let (_, view) = c.call(
        "getBatch",
        admin.get(url(&format!("{batch_path}/{resubmitted}"))),
    );
    assert_eq!(view["resubmittedFrom"], json!(mixed_batch), "{view}");
    let corrected = json!({"entities": [
        {"retailerId": "197", "skuRef": "S-2", "locationRef": "158", "qty": 2}]});
    let keyed_resubmit = |key: &str, body: &Value| {
        resubmit(&mixed_batch)
            .header("Idempotency-Key", key)
            .json(body)
    };
    let (status, first) = c.call(
        "resubmitBatch",
        keyed_resubmit("contract-resubmit-1", &corrected),
    );
    assert_eq!(status, StatusCode::OK, "{first}");
    let (status, retried) = c.call(
        "resubmitBatch",
        keyed_resubmit("contract-resubmit-1", &corrected),
    );
    assert_eq!(
        (status, &retried),
        (StatusCode::OK, &first),
        "the same batch"
    );
    let fixed = first["id"].as_str().unwrap().to_owned();
    let view = app.wait_complete(&job, &fixed, 10);
    assert_eq!(
        (codes(&view["results"]), &view["results"][0]["message"]),
        (vec![200], &json!("Inventory created")),
        "{view}"
    );
    let other = json!({"entities": [record("197", "158", "S-3", 3)]});
    let (status, _) = c.call(
        "resubmitBatch",
        keyed_resubmit("contract-resubmit-1", &other),
    );
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = c.call("resubmitBatch", keyed_resubmit("\"\"", &other));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    for body in [
        json!({}),
        json!({"entities": []}),
        json!({"entities": {}}),
        json!({"entities": null}),
        json!([]),
    ] {
        let (status, answer) = c.call("resubmitBatch", resubmit(&mixed_batch).json(&body));
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
    }
    let (status, _) = c.call(
        "resubmitBatch",
        resubmit(&mixed_batch)
            .header("content-type", "application/json")
            .body("{"),
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = c.call(
        "resubmitBatch",
        resubmit(&mixed_batch)
            .header("content-type", "text/plain")
            .body(corrected.to_string()),
    );
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, _) = c.call(
        "resubmitBatch",
        resubmit(&mixed_batch).json(&json!({"entities": [{"skuRef": "x".repeat(70_000)}]})),
    );
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // Nothing to resubmit: every record of the batch was applied.
    let (status, _) = c.call("resubmitBatch", resubmit(&batch));
    assert_eq!(status, StatusCode::CONFLICT);
    for (client, missing) in [
        (&admin, format!("{batch_path}/99999/resubmit")),
        (
            &admin,
            format!("/api/v4.1/job/{old}/batch/{batch}/resubmit"),
        ),
        (&admin, format!("/api/v4.1/job/x/batch/{batch}/resubmit")),
        (&elsewhere, format!("{batch_path}/{mixed_batch}/resubmit")),
    ] {
        let (status, _) = c.call("resubmitBatch", client.post(url(&missing)));
        assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
    }

    // cancelBatch of a COMPLETE batch is too late; unknown batches and jobs are 404.
    // (PENDING and RUNNING batches are cancelled below, on a node without an executor.)
    let (status, _) = c.call(
        "cancelBatch",
        admin.post(url(&format!("{mixed_path}/cancel"))),
    );
    assert_eq!(status, StatusCode::CONFLICT);
    for (client, missing) in [
        (&admin, format!("{batch_path}/99999/cancel")),
        (&admin, format!("/api/v4.1/job/x/batch/{batch}/cancel")),
        (&elsewhere, format!("{mixed_path}/cancel")),
    ] {
        let (status, _) = c.call("cancelBatch", client.post(url(&missing)));
        assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
    }
    for (client, missing) in [
        (&admin, "/api/v4.1/job/99999/cancel".to_owned()),
        (&admin, "/api/v4.1/job/01/cancel".to_owned()),
        (&elsewhere, format!("{job_path}/cancel")),
    ] {
        let (status, _) = c.call("cancelJob", client.post(url(&missing)));
        assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
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
    // The records' own fields, at the top level of the position (`id` is the
    // position's own).
    let (_, page) = c.call(
        "listInventory",
        sdk.get(url("/api/v4.1/inventory?skuRef=SDK-1")),
    );
    let position = &page["results"][0];
    for field in ["uom", "lot", "expiry", "effectiveFrom"] {
        assert_eq!(position[field], sdk_record[field], "{field}: {page}");
    }
    assert!(
        position["id"].as_str().unwrap().parse::<i64>().is_ok(),
        "{page}"
    );

    let stateset_url = url("/api/v1/inventory/batch");
    let run = |body: &Value| stateset.post(&stateset_url).json(body);

    // createStateSetBatch: StateSet's documentation example on imported stock, each
    // operation with its results, and each refusal.
    let import = json!({"operation": "import", "items": [
        {"sku": "WIDGET-001", "data": {"name": "Widget", "price": 29.99, "quantity": 125,
                                       "location_id": "DEFAULT"}},
        {"sku": "GADGET-002", "data": {"name": "Gadget", "quantity": "200"}}]});
    let (status, body) = c.call("createStateSetBatch", run(&import));
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(item_statuses(&body), ["success", "success"], "{body}");
    let seed = json!({"operation": "adjust", "items": [
        {"sku": "WIDGET-001", "data": {"adjustment_type": "absolute", "quantity": 150,
                                       "reason": "Cycle count correction"}},
        {"sku": "GADGET-002", "data": {"adjustment_type": "relative", "quantity": -25,
                                       "reason": "Damaged goods"}}],
        "options": {"continue_on_error": true}});
    let (status, seeded) = c.call("createStateSetBatch", run(&seed));
    assert_eq!(
        (status, &seeded["status"]),
        (StatusCode::OK, &json!("completed")),
        "{seeded}"
    );
    let quantities: Vec<_> = seeded["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let d = &r["data"];
            (
                d["previous_quantity"].as_i64(),
                d["new_quantity"].as_i64(),
                d["adjustment"].as_i64(),
            )
        })
        .collect();
    assert_eq!(
        quantities,
        [
            (Some(125), Some(150), Some(25)),
            (Some(200), Some(175), Some(-25))
        ]
    );
    let seed_batch = seeded["batch_id"].as_str().unwrap().to_owned();
    for (body, status, items) in [
        (
            json!({"operation": "transfer", "items": [
                {"sku": "WIDGET-001", "data": {"from_location": "DEFAULT", "to_location": "W2",
                                               "quantity": 50, "reason": "rebalance", "reference": "TR-1"}},
                {"sku": "GADGET-002", "data": {"from_location": "DEFAULT", "to_location": "W2",
                                               "quantity": 500}}],
                "options": {"continue_on_error": true}}),
            "partial",
            vec!["success", "error"],
        ),
        (
            json!({"operation": "cycle_count", "items": [
                {"sku": "WIDGET-001", "data": {"counted_quantity": 98, "location": "DEFAULT"}},
                {"sku": "GADGET-002", "data": {"quantity": 175, "reference": 7}}]}),
            "completed",
            vec!["success", "success"],
        ),
        (
            json!({"operation": "update", "items": [
                {"sku": "WIDGET-001", "data": {"reorder_point": 120, "price": 31.99}},
                {"sku": "NOPE-404", "data": {"price": 1}},
                {"sku": "GADGET-002", "data": {"price": 35.99}}]}),
            "partial",
            vec!["success", "error", "skipped"],
        ),
        (
            json!({"operation": "import", "items": [
                {"sku": "SPROCKET-003", "data": {"name": "Sprocket", "quantity": 40,
                                                 "location_id": "W1"}}],
                "options": {"validate_only": true, "notification_email": "ops@example.com"}}),
            "completed",
            vec!["success"],
        ),
        (
            json!({"operation": "adjust", "items": [
                {"sku": "WIDGET-001", "data": {"quantity": 1}},
                {"sku": "GADGET-002", "data": {"adjustment_type": "relative", "quantity": 1.5}},
                {"sku": "GADGET-002", "data": {"adjustment_type": "absolute", "quantity": 1,
                                               "location": "A", "location_id": "B"}}],
                "options": {"continue_on_error": true, "validate_only": null}}),
            "failed",
            vec!["error", "error", "error"],
        ),
        (
            json!({"operation": "transfer", "items": [
                {"sku": "GADGET-002", "data": {"from_location": "W9", "to_location": "W2",
                                               "quantity": 1}},
                {"sku": "WIDGET-001", "data": {"from_location": "DEFAULT", "to_location": "W2",
                                               "quantity": 1}}],
                "options": null}),
            "failed",
            vec!["error", "skipped"],
        ),
    ] {
        let (code, answer) = c.call("createStateSetBatch", run(&body));
        assert_eq!(code, StatusCode::OK, "{answer}");
        assert_eq!(answer["status"], status, "{answer}");
        assert_eq!(item_statuses(&answer), items, "{answer}");
        assert_eq!(answer["operation"], body["operation"], "{answer}");
    }
    for bad in [
        json!({"operation": "delete", "items": [{"sku": "", "data": 1}, {"data": {}}],
               "options": {"notification_email": "x", "validate_only": "yes"}}),
        json!({"items": [], "options": 3}),
        json!({"operation": "adjust", "items": [{"sku": 7, "data": {}}, [1]]}),
        json!({"operation": "update", "items":
               vec![json!({"sku": "A", "data": {"x": 1}}); 1001]}),
        json!([]),
    ] {
        let (status, _) = c.call("createStateSetBatch", run(&bad));
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let (status, _) = c.call(
        "createStateSetBatch",
        stateset
            .post(&stateset_url)
            .header("content-type", "application/json")
            .body("{"),
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = c.call("createStateSetBatch", admin.post(&stateset_url).json(&seed));
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.to_string().contains("acts for one retailer"), "{body}");
    let (status, _) = c.call(
        "createStateSetBatch",
        stateset
            .post(&stateset_url)
            .header("content-type", "text/plain")
            .body(seed.to_string()),
    );
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, _) = c.call(
        "createStateSetBatch",
        run(&json!({"operation": "update", "items": [
            {"sku": "WIDGET-001", "data": {"note": "x".repeat(70_000)}}]})),
    );
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    // Idempotency-Key: a retry gets the same batch and applies nothing again; the key
    // with another body is a 422; a bad key is a 400.
    let plus_5 = json!({"operation": "adjust", "items": [
        {"sku": "WIDGET-001", "data": {"adjustment_type": "relative", "quantity": 5,
                                       "reference": "PO-1"}}]});
    let keyed_run = |key: &str, body: &Value| {
        stateset
            .post(&stateset_url)
            .header("Idempotency-Key", key)
            .json(body)
    };
    let (_, first) = c.call(
        "createStateSetBatch",
        keyed_run("contract-stateset-1", &plus_5),
    );
    let (status, again) = c.call(
        "createStateSetBatch",
        keyed_run("\"contract-stateset-1\"", &plus_5),
    );
    assert_eq!((status, &again), (StatusCode::OK, &first), "the same batch");
    let (status, _) = c.call(
        "createStateSetBatch",
        keyed_run("contract-stateset-1", &seed),
    );
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // Keys are the retailer's: another retailer's key of the same name is its own.
    let (status, theirs) = c.call(
        "createStateSetBatch",
        elsewhere
            .post(&stateset_url)
            .header("Idempotency-Key", "contract-stateset-1")
            .json(&json!({"operation": "import", "items": [
                {"sku": "THEIRS-1", "data": {"quantity": 1}}]})),
    );
    assert_eq!(
        (status, &theirs["status"]),
        (StatusCode::OK, &json!("completed"))
    );
    for key in ["\"\"", "k".repeat(256).as_str(), "a\tb"] {
        let (status, _) = c.call("createStateSetBatch", keyed_run(key, &plus_5));
        assert_eq!(status, StatusCode::BAD_REQUEST, "{key:?}");
    }

    // getStateSetBatch: as the POST answered it, by batch_N or N; refusals.
    let (_, body) = c.call(
        "getStateSetBatch",
        stateset.get(url(&format!("/api/v1/inventory/batch/{seed_batch}"))),
    );
    assert_eq!(body, seeded);
    let number = seed_batch.strip_prefix("batch_").unwrap();
    let (_, body) = c.call(
        "getStateSetBatch",
        stateset.get(url(&format!("/api/v1/inventory/batch/{number}"))),
    );
    assert_eq!(body, seeded);
    for (client, missing) in [
        (&stateset, "batch_99999".to_owned()),
        (&stateset, "batch_0".to_owned()),
        (&stateset, "x".to_owned()),
        // A Fluent batch, and another retailer's StateSet batch.
        (&stateset, format!("batch_{batch}")),
        (&elsewhere, seed_batch.clone()),
    ] {
        let (status, _) = c.call(
            "getStateSetBatch",
            client.get(url(&format!("/api/v1/inventory/batch/{missing}"))),
        );
        assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
    }
    let (status, _) = c.call(
        "getStateSetBatch",
        admin.get(url(&format!("/api/v1/inventory/batch/{seed_batch}"))),
    );
    assert_eq!(status, StatusCode::FORBIDDEN);

    // cancelStateSetBatch of a complete batch is too late; unknown batches are 404.
    // (A queued and a running batch are cancelled below, on a node without an executor.)
    let cancel_stateset = |client: &Client, id: &str| {
        client.post(url(&format!("/api/v1/inventory/batch/{id}/cancel")))
    };
    let (status, _) = c.call(
        "cancelStateSetBatch",
        cancel_stateset(&stateset, &seed_batch),
    );
    assert_eq!(status, StatusCode::CONFLICT);
    for (client, missing) in [
        (&stateset, "batch_99999".to_owned()),
        (&stateset, "batch_01".to_owned()),
        (&stateset, "x".to_owned()),
        (&stateset, format!("batch_{batch}")),
        (&elsewhere, seed_batch.clone()),
    ] {
        let (status, _) = c.call("cancelStateSetBatch", cancel_stateset(client, &missing));
        assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
    }
    let (status, _) = c.call("cancelStateSetBatch", cancel_stateset(&admin, &seed_batch));
    assert_eq!(status, StatusCode::FORBIDDEN);

    // getInventoryItem: what the batches above left (the retry applied nothing twice,
    // validate_only nothing at all), a SKU only Fluent wrote; refusals.
    let (_, item) = c.call(
        "getInventoryItem",
        stateset.get(url("/api/v1/inventory/WIDGET-001")),
    );
    let stock: Vec<_> = item["locations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["location"].as_str().unwrap(),
                l["quantity"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(stock, [("DEFAULT", 103), ("W2", 50)], "{item}");
    assert_eq!(item["total_quantity"], 153, "{item}");
    assert_eq!(
        item["properties"],
        json!({"name": "Widget", "price": 31.99, "reorder_point": 120}),
        "{item}"
    );
    let (_, item) = c.call(
        "getInventoryItem",
        stateset.get(url("/api/v1/inventory/S-1")),
    );
    assert_eq!(item["properties"], json!({}), "{item}");
    for (client, missing) in [
        (&stateset, "NOPE"),
        (&stateset, "SPROCKET-003"),
        (&stateset, "%00"),
        (&elsewhere, "WIDGET-001"),
    ] {
        let (status, _) = c.call(
            "getInventoryItem",
            client.get(url(&format!("/api/v1/inventory/{missing}"))),
        );
        assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
    }
    let (status, _) = c.call(
        "getInventoryItem",
        admin.get(url("/api/v1/inventory/WIDGET-001")),
    );
    assert_eq!(status, StatusCode::FORBIDDEN);

    // listMovements: the ledger of both APIs, oldest first, filtered and paged.
    let movements = |client: &Client, query: &str| {
        client.get(url(&format!("/api/v4.1/inventory/movements{query}")))
    };
    let (_, page) = c.call(
        "listMovements",
        admin.get(url(
            "/api/v4.1/inventory/movements?retailerId=197&skuRef=WIDGET-001&locationRef=DEFAULT&start=1&count=10",
        )),
    );
    let ledger: Vec<_> = page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["operation"].as_str().unwrap(),
                m["newQty"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ledger,
        [
            ("import", 125),
            ("adjust", 150),
            ("transfer", 100),
            ("cycle_count", 98),
            ("adjust", 103)
        ],
        "{page}"
    );
    let (_, page) = c.call("listMovements", movements(&stateset, "?skuRef=S-1"));
    assert_eq!(
        (
            &page["results"][0]["operation"],
            &page["results"][0]["api"],
            &page["results"][0]["retailerId"]
        ),
        (&json!("UPSERT"), &json!("fluent"), &json!("197")),
        "{page}"
    );
    // SDK-1 was written three times, the second changing nothing (no movement); the
    // job that skips Batch Pre-Processing wrote it again.
    let (_, page) = c.call("listMovements", movements(&sdk, "?skuRef=SDK-1"));
    let batches: Vec<_> = page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["batchId"].as_str().unwrap())
        .collect();
    assert_eq!(batches, [sdk_batch.as_str(), skipped.as_str()], "{page}");
    for (client, query) in [
        (&admin, ""),
        (&stateset, ""),
        (&stateset, "?retailerId=198"),
        (&admin, "?retailerId=nobody"),
        (&admin, "?skuRef=%00"),
        (&admin, "?start=5000"),
    ] {
        let (status, _) = c.call("listMovements", movements(client, query));
        assert_eq!(status, StatusCode::OK, "{query}");
    }
    for bad in [
        "?count=0&start=-1",
        "?sku=X",
        "?retailerId=1&retailerId=2",
        "?count=x",
    ] {
        let (status, _) = c.call("listMovements", movements(&admin, bad));
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }

    // listJobs: newest first, batches and records added up, filtered and paged; a
    // retailer's caller sees its own jobs only.
    let jobs = |client: &Client, query: &str| client.get(url(&format!("/api/v4.1/jobs{query}")));
    let (_, page) = c.call("listJobs", jobs(&admin, "?start=1&count=500"));
    let listed = page["results"].as_array().unwrap();
    assert_eq!(page["total"].as_u64(), Some(listed.len() as u64), "{page}");
    let ids: Vec<i64> = listed
        .iter()
        .map(|j| j["jobId"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    let listed_job = listed.iter().find(|j| j["jobId"] == job.as_str()).unwrap();
    let (_, detail) = c.call("getJob", admin.get(url(&job_path)));
    assert_eq!(
        listed_job["batches"]["total"].as_u64(),
        Some(detail["batch"].as_array().unwrap().len() as u64),
        "{listed_job}"
    );
    for (client, query, retailer) in [
        (&retailer_user, "", "197"),
        (&retailer_user, "?retailerId=197&status=OPEN", "197"),
        (&sdk, "?status=CLOSED", "197"),
        (&admin, "?retailerId=197", "197"),
    ] {
        let (status, page) = c.call("listJobs", jobs(client, query));
        assert_eq!(status, StatusCode::OK, "{query}");
        for j in page["results"].as_array().unwrap() {
            assert_eq!(j["retailerId"], retailer, "{query}: {j}");
        }
    }
    let (_, page) = c.call("listJobs", jobs(&elsewhere, ""));
    assert_eq!(page["total"], 0, "retailer 198 has no jobs: {page}");
    let (_, page) = c.call("listJobs", jobs(&retailer_user, "?retailerId=198"));
    assert_eq!(page["total"], 0, "{page}");
    for bad in [
        "?status=DONE",
        "?retailer=197",
        "?count=0",
        "?status=OPEN&status=CLOSED",
    ] {
        let (status, _) = c.call("listJobs", jobs(&admin, bad));
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }

    // getQueue: the queue now and its last hour, of one retailer for its callers.
    let queue = |client: &Client, query: &str| client.get(url(&format!("/api/v4.1/queue{query}")));
    let (_, all) = c.call("getQueue", queue(&admin, ""));
    assert_eq!(all["retailerId"], Value::Null, "{all}");
    let completed: i64 = all["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["completedBatches"].as_i64().unwrap())
        .sum();
    assert!(completed > 0, "this hour's batches: {all}");
    let (_, own) = c.call("getQueue", queue(&stateset, ""));
    assert_eq!(own["retailerId"], "197", "{own}");
    let (_, other) = c.call("getQueue", queue(&stateset, "?retailerId=198"));
    assert!(
        other["series"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["acceptedBatches"] == 0 && m["recordsApplied"] == 0),
        "another retailer's queue is empty to it: {other}"
    );
    c.call("getQueue", queue(&admin, "?retailerId=197"));
    for bad in ["?retailer=197", "?retailerId=1&retailerId=2"] {
        let (status, _) = c.call("getQueue", queue(&admin, bad));
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }

    // 202: a node that runs no executor and does not wait answers `processing`.
    let api_only = TestApp::spawn_with(TestDb::new(backend), |config| {
        config.role = Role::Api;
        config.api.stateset_wait = Duration::ZERO;
        // No executor is alive here: a waiting batch is flagged stalled at once.
        config.api.stalled_after = Duration::ZERO;
    });
    let queued = api_key_client(&api_only, "contract-queued", "197", &Permission::ALL);
    let (status, pending) = c.call(
        "createStateSetBatch",
        queued
            .post(api_only.url("/api/v1/inventory/batch"))
            .json(&seed),
    );
    assert_eq!(status, StatusCode::ACCEPTED, "{pending}");
    assert_eq!(
        (&pending["status"], &pending["results"]),
        (&json!("processing"), &json!([]))
    );
    let pending_id = pending["batch_id"].as_str().unwrap();
    let (_, polled) = c.call(
        "getStateSetBatch",
        queued.get(api_only.url(&format!("/api/v1/inventory/batch/{pending_id}"))),
    );
    assert_eq!(polled, pending);
    // cancelStateSetBatch: a queued batch is not applied at all (200); a running one
    // stops at its next safe point (202).
    let q_cancel =
        |id: &str| queued.post(api_only.url(&format!("/api/v1/inventory/batch/{id}/cancel")));
    let (status, cancelled) = c.call("cancelStateSetBatch", q_cancel(pending_id));
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(
        (&cancelled["cancelled"], &cancelled["status"]),
        (&json!(true), &json!("failed")),
        "{cancelled}"
    );
    assert_eq!(
        item_statuses(&cancelled),
        ["skipped", "skipped"],
        "{cancelled}"
    );
    let (status, _) = c.call("cancelStateSetBatch", q_cancel(pending_id));
    assert_eq!(status, StatusCode::CONFLICT);
    let (_, running) = c.call(
        "createStateSetBatch",
        queued
            .post(api_only.url("/api/v1/inventory/batch"))
            .json(&import),
    );
    let running_id = running["batch_id"].as_str().unwrap().to_owned();
    mark_running(&api_only, running_id.strip_prefix("batch_").unwrap());
    for _ in 0..2 {
        let (status, answer) = c.call("cancelStateSetBatch", q_cancel(&running_id));
        assert_eq!(
            (status, &answer["status"]),
            (StatusCode::ACCEPTED, &json!("processing")),
            "{answer}"
        );
    }

    // Batch control where batches wait: a PENDING batch cancelled is not applied at all
    // (200), a RUNNING one is asked to stop (202); export and resubmit refuse what is
    // not COMPLETE; cancelling the job closes it.
    let q = &api_only.client;
    let (_, created) = c.call(
        "createJob",
        q.post(api_only.url("/api/v4.1/job")).json(&job_body),
    );
    let q_job = created["id"].as_str().unwrap().to_owned();
    let q_job_path = format!("/api/v4.1/job/{q_job}");
    let q_batch = |id: &str| api_only.url(&format!("{q_job_path}/batch/{id}"));
    let two = json!({"action": "UPSERT", "entityType": "INVENTORY", "source": "SDK",
        "entities": [record("197", "158", "Q-1", 1), record("197", "158", "Q-2", 2)]});
    let (_, accepted) = c.call(
        "createBatch",
        q.post(api_only.url(&format!("{q_job_path}/batch")))
            .json(&two),
    );
    let waiting = accepted["id"].as_str().unwrap().to_owned();
    let (_, accepted) = c.call(
        "createBatch",
        q.post(api_only.url(&format!("{q_job_path}/batch")))
            .json(&docs_example),
    );
    let claimed = accepted["id"].as_str().unwrap().to_owned();
    let (_, view) = c.call("getBatch", q.get(q_batch(&waiting)));
    assert_eq!(
        (
            &view["status"],
            &view["stalled"],
            &view["startedOn"],
            &view["expiresOn"]
        ),
        (&json!("PENDING"), &json!(true), &Value::Null, &Value::Null),
        "{view}"
    );
    assert_eq!(
        (
            &view["processedEntities"],
            &view["appliedEntities"],
            &view["attempts"]
        ),
        (&json!(0), &Value::Null, &json!(0)),
        "{view}"
    );
    let (status, _) = c.call(
        "exportBatchResults",
        q.get(format!("{}/results", q_batch(&waiting))),
    );
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = c.call(
        "resubmitBatch",
        q.post(format!("{}/resubmit", q_batch(&waiting))),
    );
    assert_eq!(status, StatusCode::CONFLICT);
    mark_running(&api_only, &claimed);
    let q_results = || q.get(api_only.url(&format!("{q_job_path}/results")));
    let (_, outcome) = c.call("getJobResults", q_results());
    assert_eq!(tally(&outcome), [2, 0, 0, 1, 1], "{outcome}");
    let (status, view) = c.call(
        "cancelBatch",
        q.post(format!("{}/cancel", q_batch(&waiting))),
    );
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(
        (&view["status"], &view["cancelled"], &view["source"]),
        (&json!("COMPLETE"), &json!(true), &json!("SDK")),
        "{view}"
    );
    assert_eq!(counts(&view), [2, 2, 0, 2, 0], "{view}");
    for _ in 0..2 {
        let (status, view) = c.call(
            "cancelBatch",
            q.post(format!("{}/cancel", q_batch(&claimed))),
        );
        assert_eq!(status, StatusCode::ACCEPTED, "{view}");
        assert_eq!(
            (
                &view["status"],
                &view["cancelRequested"],
                &view["cancelled"]
            ),
            (&json!("RUNNING"), &json!(true), &json!(false)),
            "{view}"
        );
    }
    let (status, _) = c.call(
        "cancelBatch",
        q.post(format!("{}/cancel", q_batch(&waiting))),
    );
    assert_eq!(status, StatusCode::CONFLICT);
    let (_, view) = c.call("getBatch", q.get(q_batch(&waiting)));
    assert_eq!(codes(&view["results"]), [409, 409], "{view}");
    let (_, lines) = c.call(
        "exportBatchResults",
        q.get(format!("{}/results?failed=true", q_batch(&waiting))),
    );
    assert_eq!(codes(&lines), [409, 409], "{lines}");
    let (status, again) = c.call(
        "resubmitBatch",
        q.post(format!("{}/resubmit", q_batch(&waiting))),
    );
    assert_eq!(status, StatusCode::OK, "{again}");
    let (_, outcome) = c.call("getJobResults", q_results());
    assert_eq!(tally(&outcome), [3, 0, 1, 1, 1], "{outcome}");
    let (status, answer) = c.call(
        "cancelJob",
        q.post(api_only.url(&format!("{q_job_path}/cancel"))),
    );
    assert_eq!(
        (status, answer),
        (
            StatusCode::OK,
            json!({"id": q_job, "status": "CLOSED", "cancelledBatches": 1,
                   "cancellingBatches": 1})
        )
    );
    let (_, body) = c.call("getJob", q.get(api_only.url(&q_job_path)));
    assert_eq!(body["status"], "CLOSED", "{body}");
    assert_eq!(
        (
            &body["batch"][2]["cancelled"],
            &body["batch"][2]["resubmittedFrom"]
        ),
        (&json!(true), &json!(waiting)),
        "{body}"
    );
    let (_, outcome) = c.call("getJobResults", q_results());
    assert_eq!(outcome["status"], "CLOSED", "{outcome}");
    let (status, _) = c.call(
        "createBatch",
        q.post(api_only.url(&format!("{q_job_path}/batch")))
            .json(&docs_example),
    );
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = c.call(
        "resubmitBatch",
        q.post(format!("{}/resubmit", q_batch(&waiting))),
    );
    assert_eq!(status, StatusCode::CONFLICT);
    let (_, answer) = c.call(
        "cancelJob",
        q.post(api_only.url(&format!("{q_job_path}/cancel"))),
    );
    assert_eq!(
        (&answer["cancelledBatches"], &answer["cancellingBatches"]),
        (&json!(0), &json!(1)),
        "{answer}"
    );

    // 429: a queue at one of its limits (here one unfinished batch per retailer) takes
    // no more batches, of either API, and stores nothing.
    let full = TestApp::spawn_with(TestDb::new(backend), |config| {
        config.role = Role::Api;
        config.api.stateset_wait = Duration::ZERO;
        config.api.queue_limits.batches_per_retailer = 1;
    });
    let full_key = api_key_client(&full, "contract-full", "197", &Permission::ALL);
    let f = &full.client;
    let (_, created) = c.call(
        "createJob",
        f.post(full.url("/api/v4.1/job")).json(&job_body),
    );
    let f_batches = format!("/api/v4.1/job/{}/batch", created["id"].as_str().unwrap());
    let post_keyed = |key: &str| {
        f.post(full.url(&f_batches))
            .header("Idempotency-Key", key)
            .json(&docs_example)
    };
    let (status, first) = c.call("createBatch", post_keyed("contract-full-1"));
    assert_eq!(status, StatusCode::OK, "{first}");
    let (status, refused) = c.call("createBatch", post_keyed("contract-full-2"));
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{refused}");
    let (status, again) = c.call("createBatch", post_keyed("contract-full-1"));
    assert_eq!(
        (status, &again),
        (StatusCode::OK, &first),
        "a retry gets its answer, full queue or not"
    );
    let (status, _) = c.call(
        "createStateSetBatch",
        full_key
            .post(full.url("/api/v1/inventory/batch"))
            .json(&seed),
    );
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let first = first["id"].as_str().unwrap().to_owned();
    let (status, _) = c.call(
        "cancelBatch",
        f.post(full.url(&format!("{f_batches}/{first}/cancel"))),
    );
    assert_eq!(status, StatusCode::OK);
    let (status, _) = c.call("createBatch", post_keyed("contract-full-3"));
    assert_eq!(status, StatusCode::OK);
    let (status, _) = c.call(
        "resubmitBatch",
        f.post(full.url(&format!("{f_batches}/{first}/resubmit"))),
    );
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);

    let (hook_path, delivery_path) = exercise_notifications(&mut c, &app, &stateset);

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
        (
            "listMovements",
            Box::new(|client: &Client| client.get(url("/api/v4.1/inventory/movements"))),
        ),
        (
            "listJobs",
            Box::new(|client: &Client| client.get(url("/api/v4.1/jobs"))),
        ),
        (
            "getQueue",
            Box::new(|client: &Client| client.get(url("/api/v4.1/queue"))),
        ),
        (
            "createStateSetBatch",
            Box::new(|client: &Client| client.post(url("/api/v1/inventory/batch")).json(&seed)),
        ),
        (
            "getStateSetBatch",
            Box::new(|client: &Client| {
                client.get(url(&format!("/api/v1/inventory/batch/{seed_batch}")))
            }),
        ),
        (
            "getInventoryItem",
            Box::new(|client: &Client| client.get(url("/api/v1/inventory/WIDGET-001"))),
        ),
        (
            "getJobResults",
            Box::new(|client: &Client| client.get(url(&format!("{job_path}/results")))),
        ),
        (
            "cancelJob",
            Box::new(|client: &Client| client.post(url(&format!("{job_path}/cancel")))),
        ),
        (
            "exportBatchResults",
            Box::new(|client: &Client| client.get(url(&format!("{mixed_path}/results")))),
        ),
        (
            "cancelBatch",
            Box::new(|client: &Client| client.post(url(&format!("{mixed_path}/cancel")))),
        ),
        (
            "resubmitBatch",
            Box::new(|client: &Client| client.post(url(&format!("{mixed_path}/resubmit")))),
        ),
        (
            "cancelStateSetBatch",
            Box::new(|client: &Client| {
                client.post(url(&format!("/api/v1/inventory/batch/{seed_batch}/cancel")))
            }),
        ),
        (
            "createWebhook",
            Box::new(|client: &Client| {
                client
                    .post(url("/api/v4.1/webhooks"))
                    .json(&json!({"url": "http://127.0.0.1:9/", "events": ["*"]}))
            }),
        ),
        (
            "listWebhooks",
            Box::new(|client: &Client| client.get(url("/api/v4.1/webhooks"))),
        ),
        (
            "getWebhook",
            Box::new(|client: &Client| client.get(url(&hook_path))),
        ),
        (
            "deleteWebhook",
            Box::new(|client: &Client| client.delete(url(&hook_path))),
        ),
        (
            "listWebhookDeliveries",
            Box::new(|client: &Client| client.get(url(&format!("{hook_path}/deliveries")))),
        ),
        (
            "replayWebhookDelivery",
            Box::new(|client: &Client| client.post(url(&format!("{delivery_path}/replay")))),
        ),
        (
            "getMetrics",
            Box::new(|client: &Client| client.get(url("/metrics"))),
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
    let (_, index) = c.call("getIndex", anonymous.get(url("/")));
    let index = index.as_str().unwrap();
    assert!(index.contains("href=\"/ui\"") && index.contains("href=\"/docs\""));
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
    // The dashboard: the page and its assets, public, revalidated by ETag.
    let (_, page) = c.call("getUi", anonymous.get(url("/ui")));
    assert!(page.as_str().unwrap().contains("/ui/app.js"));
    let tag = anonymous.get(url("/ui")).send().unwrap().headers()["etag"].clone();
    let (status, _) = c.call(
        "getUi",
        anonymous.get(url("/ui")).header("if-none-match", &tag),
    );
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    for asset in ["index.html", "app.js", "charts.js", "app.css", "icon.svg"] {
        let (status, _) = c.call("getUiAsset", anonymous.get(url(&format!("/ui/{asset}"))));
        assert_eq!(status, StatusCode::OK, "{asset}");
    }
    let asset = anonymous.get(url("/ui/app.js")).send().unwrap();
    let tag = asset.headers()["etag"].clone();
    let (status, _) = c.call(
        "getUiAsset",
        anonymous
            .get(url("/ui/app.js"))
            .header("if-none-match", tag),
    );
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    let (status, _) = c.call("getUiAsset", anonymous.get(url("/ui/nope.js")));
    assert_eq!(status, StatusCode::NOT_FOUND);

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

const METRICS_TOKEN: &str = "contract-metrics-token";

/// The webhook and metrics operations, each answering with success and with its refusals.
/// Answers the path of a subscription left in place and of one of its deliveries.
fn exercise_notifications(
    c: &mut Contract,
    app: &TestApp,
    retailer_key: &Client,
) -> (String, String) {
    let admin = &app.client;
    let url = |path: &str| app.url(path);
    let hooks = "/api/v4.1/webhooks";
    let subscribe =
        |c: &mut Contract, body: Value| c.call("createWebhook", admin.post(url(hooks)).json(&body));
    let (status, kept) = subscribe(
        c,
        json!({"url": "http://127.0.0.1:9/hook", "events": ["BATCH_CREATE"], "retailerId": "197"}),
    );
    assert_eq!(status, StatusCode::CREATED, "{kept}");
    assert!(
        kept["secret"].as_str().is_some_and(|s| s.len() >= 16),
        "{kept}"
    );
    let hook_path = format!("{hooks}/{}", kept["id"].as_str().unwrap());
    let (status, gone) = subscribe(
        c,
        json!({"url": "http://127.0.0.1:9/other", "events": ["*"], "secret": "a-secret-of-my-own-choosing"}),
    );
    assert_eq!(status, StatusCode::CREATED, "{gone}");
    assert_eq!(gone["secret"], "a-secret-of-my-own-choosing");
    assert_eq!(
        gone["retailerId"],
        Value::Null,
        "an administrator's: every retailer's"
    );
    for (refused, code) in [
        (
            json!({"url": "http://127.0.0.1:9/", "events": ["BATCH_DONE"]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"events": ["*"], "secret": "short"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"url": "ftp://127.0.0.1/", "events": ["*"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"url": "https://no-such-host.invalid/", "events": ["*"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let (status, body) = subscribe(c, refused.clone());
        assert_eq!(status, code, "{refused}: {body}");
    }
    let (status, _) = c.call(
        "createWebhook",
        admin
            .post(url(hooks))
            .header("content-type", "text/plain")
            .body("{}"),
    );
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // A retailer's caller may not subscribe to another retailer's events, nor see an
    // administrator's subscription.
    let (status, _) = c.call(
        "createWebhook",
        retailer_key
            .post(url(hooks))
            .json(&json!({"url": "http://127.0.0.1:9/", "events": ["*"], "retailerId": "198"})),
    );
    assert_eq!(status, StatusCode::FORBIDDEN);
    let gone_path = format!("{hooks}/{}", gone["id"].as_str().unwrap());
    let (status, _) = c.call("getWebhook", retailer_key.get(url(&gone_path)));
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (_, listed) = c.call("listWebhooks", admin.get(url(hooks)));
    assert_eq!(listed["total"], 2, "{listed}");
    assert!(listed["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h.get("secret").is_none()));
    let (_, seen) = c.call("getWebhook", admin.get(url(&hook_path)));
    assert_eq!(seen["events"], json!(["BATCH_CREATE"]));
    for missing in ["999999", "abc"] {
        let (status, _) = c.call("getWebhook", admin.get(url(&format!("{hooks}/{missing}"))));
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let (status, _) = c.call("deleteWebhook", admin.delete(url(&gone_path)));
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = c.call("deleteWebhook", admin.delete(url(&gone_path)));
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A batch accepted for 197 is a delivery to the kept subscription.
    let job = app.create_job(json!("197"));
    app.post_batch(&job, json!([record("197", "L", "S", 1)]));
    let deliveries = format!("{hook_path}/deliveries");
    let (_, page) = c.call("listWebhookDeliveries", admin.get(url(&deliveries)));
    assert_eq!(page["total"], 1, "{page}");
    assert_eq!(page["results"][0]["event"], "BATCH_CREATE");
    let (status, _) = c.call(
        "listWebhookDeliveries",
        admin.get(url(&format!("{deliveries}?count=0"))),
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = c.call(
        "listWebhookDeliveries",
        admin.get(url(&format!("{gone_path}/deliveries"))),
    );
    assert_eq!(status, StatusCode::NOT_FOUND);
    let delivery_path = format!(
        "{deliveries}/{}",
        page["results"][0]["id"].as_str().unwrap()
    );
    // The dispatcher keeps trying the closed port: a replay may meet an attempt in flight.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, replayed) = c.call(
            "replayWebhookDelivery",
            admin.post(url(&format!("{delivery_path}/replay"))),
        );
        if status == StatusCode::ACCEPTED {
            assert_eq!(replayed["status"], "pending", "{replayed}");
            break;
        }
        assert_eq!(status, StatusCode::CONFLICT, "{replayed}");
        assert!(
            Instant::now() < deadline,
            "every replay met an attempt in flight"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, _) = c.call(
        "replayWebhookDelivery",
        admin.post(url(&format!("{deliveries}/999999/replay"))),
    );
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Metrics: for administrators and the scraper's token; not for a retailer's caller.
    let (_, text) = c.call("getMetrics", admin.get(url("/metrics")));
    let text = text.as_str().unwrap();
    assert!(
        text.contains("stockbatch_queue_batches") && text.ends_with("# EOF\n"),
        "{text}"
    );
    let (status, _) = c.call(
        "getMetrics",
        client_with_token(METRICS_TOKEN).get(url("/metrics")),
    );
    assert_eq!(status, StatusCode::OK);
    let (status, _) = c.call("getMetrics", retailer_key.get(url("/metrics")));
    assert_eq!(status, StatusCode::FORBIDDEN);
    (hook_path, delivery_path)
}

/// Every served path answers the methods it serves (not 404 or 405), and any other method
/// with 405 and an `Allow` header naming exactly the served ones.
#[test]
fn every_path_serves_its_methods_and_refuses_others_with_405() {
    // No executor: batches wait until `run_one` applies them, so that each batch-control
    // path meets a batch it can act on.
    let app = TestApp::spawn_with(TestDb::new(Backend::Sqlite), |config| {
        config.role = Role::Api;
        config.api.stateset_wait = Duration::ZERO;
        config.notify.allow_private_destinations = true;
    });
    // Two subscriptions: one to delete, one whose delivery is replayed.
    let subscription = json!({"url": "http://127.0.0.1:9/", "events": ["BATCH_CREATE"]});
    let [deleted, kept] = [0, 1].map(|_| {
        let (status, hook) = app.post("/api/v4.1/webhooks", &subscription);
        assert_eq!(status, StatusCode::CREATED, "{hook}");
        hook["id"].as_str().unwrap().to_owned()
    });
    // The StateSet routes need a caller of one retailer.
    let stateset = api_key_client(&app, "routes-197", "197", &Permission::ALL);
    let job = app.create_job(json!("197"));
    // COMPLETE, with a record that was not applied (to export and resubmit).
    let batch = app.post_batch(&job, json!([record("197", "L", "S", 1), {"qty": 1}]));
    assert!(matches!(run_one(&app), Step::Processed(_)));
    // PENDING, to cancel; and a job to cancel.
    let waiting = app.post_batch(&job, json!([record("197", "L", "S", 2)]));
    let cancelled_job = app.create_job(json!("197"));
    let stateset_body =
        json!({"operation": "import", "items": [{"sku": "S", "data": {"quantity": 3}}]});
    let mut stateset_batches = Vec::new();
    for _ in 0..2 {
        let (status, imported) = read(
            stateset
                .post(app.url("/api/v1/inventory/batch"))
                .json(&stateset_body)
                .send()
                .unwrap(),
        );
        assert_eq!(status, StatusCode::ACCEPTED, "{imported}");
        stateset_batches.push(imported["batch_id"].as_str().unwrap().to_owned());
    }
    let (_, deliveries) = app.get(&format!("/api/v4.1/webhooks/{kept}/deliveries"));
    let delivery = deliveries["results"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("a delivery of the batches posted: {deliveries}"))
        .to_owned();
    let concrete = |path: &str| {
        let hook = if path == "/api/v4.1/webhooks/{webhookId}" {
            &deleted
        } else {
            &kept
        };
        let cancel = path.ends_with("/cancel");
        let job = if path == "/api/v4.1/job/{jobId}/cancel" {
            &cancelled_job
        } else {
            &job
        };
        app.url(
            &path
                .replace("{jobId}", job)
                .replace("{batchId}", if cancel { &waiting } else { &batch })
                .replace("{batch_id}", &stateset_batches[usize::from(cancel)])
                .replace("{sku}", "S")
                .replace("{webhookId}", hook)
                .replace("{deliveryId}", &delivery)
                .replace("{asset}", "app.js"),
        )
    };
    for (path, allow) in ROUTES {
        let served: Vec<&str> = allow.split(',').map(str::trim).collect();
        let client = if path.starts_with("/api/v1/") {
            &stateset
        } else {
            &app.client
        };
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
                ("/api/v1/inventory/batch", "POST") => request.json(&stateset_body),
                ("/api/v4.1/webhooks", "POST") => request.json(&subscription),
                (_, "POST") => request.json(&json!({"action": "UPSERT", "entityType": "INVENTORY",
                            "entities": [record("197", "L", "S", 2)]})),
                _ => request,
            };
            let response = request.send().expect("request");
            let status = response.status();
            if served.contains(&method) {
                assert!(status.is_success(), "{method} {path}: {status}");
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
    let batch = json!({"batch_id": "batch_1", "status": "completed", "operation": "adjust",
        "validate_only": false,
        "summary": {"total_items": 1, "processed": 1, "failed": 0, "skipped": 0},
        "results": [{"sku": "A", "status": "success", "message": "m",
            "data": {"location": "L", "previous_quantity": 1, "new_quantity": 2, "adjustment": 1}}],
        "cancelled": false, "notification_email": null, "notification": null,
        "created_at": "2026-12-01T06:54:58.275Z", "completed_at": null});
    c.validate("StateSetBatch", &schema("StateSetBatch"), &batch);
    let mut wrong = batch.clone();
    wrong["batch_id"] = json!("1");
    refuses("StateSetBatch", wrong);
    let mut wrong = batch.clone();
    wrong["status"] = json!("done");
    refuses("StateSetBatch", wrong);
    // Result data must be one operation's.
    let mut wrong = batch.clone();
    wrong["results"][0]["data"] = json!({"location": "L", "previous_quantity": 1});
    refuses("StateSetBatch", wrong);
    let mut wrong = batch;
    wrong["results"][0]["data"]["new_quantity"] = json!(-1);
    refuses("StateSetBatch", wrong);
    let movement = json!({"id": "1", "retailerId": "197", "skuRef": "S", "locationRef": "L",
        "operation": "adjust", "previousQty": 0, "newQty": 1, "delta": 1, "reason": null,
        "reference": null, "batchId": "1", "api": "stateset",
        "createdOn": "2026-12-01T06:54:58.275Z"});
    c.validate("Movement", &schema("Movement"), &movement);
    let mut wrong = movement.clone();
    wrong["api"] = json!("other");
    refuses("Movement", wrong);
    // A field the document does not name is refused, also inside arrays and allOf.
    let mut wrong = movement;
    wrong["undocumented"] = json!(1);
    refuses("Movement", wrong);
    let facts = json!({"batchId": "1", "entityType": "INVENTORY", "status": "COMPLETE",
        "createdOn": "2026-12-01T07:51:24.781Z", "startedOn": "2026-12-01T07:51:24.787Z",
        "completedOn": "2026-12-01T07:51:24.795Z", "attempts": 1, "totalEntities": 1,
        "processedEntities": 1, "appliedEntities": 1, "rejectedEntities": 0,
        "unchangedEntities": 0, "cancelled": false, "cancelRequested": false, "stalled": false,
        "expiresOn": "2026-12-08T07:51:24.781Z", "source": "SDK"});
    c.validate("BatchFacts", &schema("BatchFacts"), &facts);
    let mut batch = facts.clone();
    for (key, value) in json!({"jobId": "1", "start": 1, "count": 100, "total": 1,
        "results": [{"entityId": "1", "entityRef": "S:L", "responseCode": 409,
                     "message": "not applied: the batch was cancelled before it was applied"}]})
    .as_object()
    .unwrap()
    {
        batch[key] = value.clone();
    }
    c.validate("Batch", &schema("Batch"), &batch);
    refuses("BatchFacts", batch.clone());
    let mut wrong = batch.clone();
    wrong["results"][0]["extra"] = json!(true);
    refuses("Batch", wrong);
    let mut wrong = batch;
    wrong["results"][0]["responseCode"] = json!(422);
    refuses("Batch", wrong);
    let mut wrong = facts.clone();
    wrong["status"] = json!("CANCELLED");
    refuses("BatchFacts", wrong);
    let mut wrong = facts;
    wrong["conditions"] = json!([]);
    refuses("BatchFacts", wrong);
    let line = json!({"index": 1, "responseCode": 400, "message": "m", "entityId": null,
                      "entityRef": null, "record": [1]});
    c.validate("ResultLine", &schema("ResultLine"), &line);
    let mut wrong = line;
    wrong["index"] = json!(0);
    refuses("ResultLine", wrong);
    let outcome = json!({"id": "1", "status": "CLOSED", "totalBatches": 1,
        "successfulBatches": 0, "failedBatches": 1, "pendingBatches": 0, "runningBatches": 0,
        "records": {"total": 1, "applied": 0, "rejected": 1, "unchanged": 0},
        "results": [{"batchId": "1", "status": "COMPLETE", "processedEntities": 1,
                     "totalEntities": 1, "errors": [{"code": "409", "message": "m"}]}]});
    c.validate("JobResults", &schema("JobResults"), &outcome);
    let mut wrong = outcome;
    wrong["records"] = json!({"total": 1});
    refuses("JobResults", wrong);
    // The client-credentials answer has no refresh token.
    let client_token = json!({"access_token": "a", "token_type": "bearer", "expires_in": 1,
                              "scope": "api", "Retailer_id": 197});
    c.validate("TokenResponse", &schema("TokenResponse"), &client_token);
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
