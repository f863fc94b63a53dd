//! API keys end to end: created with the `stockbatch api-key` commands (the real binary,
//! on the test database), used as bearer tokens over real HTTP, listed and revoked.

mod common;
#[path = "support/process.rs"]
mod process;

use std::process::Command;

use common::*;
use process::texts;
use reqwest::blocking::{Client, RequestBuilder};
use reqwest::StatusCode;
use serde_json::{json, Value};
use stockbatch::auth::secrets::token_hash;

/// Runs `stockbatch ARGS` on the app's database: whether it succeeded, stdout, stderr.
fn cli(app: &TestApp, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_stockbatch"))
        .args(args)
        .args(["--database-url", app.db.url()])
        .output()
        .expect("run stockbatch");
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).expect("UTF-8 output");
    (
        output.status.success(),
        text(output.stdout),
        text(output.stderr),
    )
}

/// `api-key create NAME --retailer RETAILER EXTRA...`; returns the key it printed.
fn create_key(app: &TestApp, name: &str, retailer: &str, extra: &[&str]) -> String {
    let mut args = vec!["api-key", "create", name, "--retailer", retailer];
    args.extend(extra);
    let (ok, out, err) = cli(app, &args);
    assert!(ok, "api-key create: {err}");
    assert!(out.contains("shown only this once"), "{out}");
    let keys: Vec<_> = out.lines().filter(|l| l.starts_with("sbk_")).collect();
    assert_eq!(keys.len(), 1, "one key line: {out}");
    keys[0].to_owned()
}

fn send(request: RequestBuilder) -> (StatusCode, Value) {
    read(request.send().expect("request"))
}

/// Asserts a 401 with `WWW-Authenticate: Bearer` and the errors body; returns the body.
fn unauthorized(client: &Client, url: &str) -> Value {
    let response = client.get(url).send().expect("GET");
    assert_eq!(
        response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer"),
        "a 401 for {url}"
    );
    let (status, body) = read(response);
    assert_errors(status, &body, StatusCode::UNAUTHORIZED);
    body
}

backend_tests!(a_key_works_within_its_retailer_and_permissions);
fn a_key_works_within_its_retailer_and_permissions(backend: Backend) {
    let app = TestApp::spawn(backend);
    let base = &app.base;
    let theirs = app.create_job(json!("200"));
    let key = create_key(
        &app,
        "feed",
        "100",
        &[
            "--permissions",
            "JOB_CREATE,JOB_VIEW,INVENTORY_VIEW",
            "--default-location",
            "DC1",
        ],
    );
    let feed = client_with_token(&key);

    let (status, body) = send(feed.get(format!("{base}/api/v4.1/inventory")));
    assert_eq!(status, StatusCode::OK, "{backend:?}: {body}");
    let (status, job) = send(
        feed.post(format!("{base}/api/v4.1/job"))
            .json(&json!({"name": "feed", "retailerId": "100"})),
    );
    assert_eq!(status, StatusCode::OK, "{backend:?}: {job}");
    let job = job["id"].as_str().unwrap();
    let (status, body) = send(feed.get(format!("{base}/api/v4.1/job/{job}")));
    assert_eq!(status, StatusCode::OK, "{backend:?}: {body}");

    let (status, body) = send(
        feed.post(format!("{base}/api/v4.1/job"))
            .json(&json!({"name": "feed", "retailerId": "200"})),
    );
    assert_errors(status, &body, StatusCode::FORBIDDEN);
    let (status, body) = send(feed.get(format!("{base}/api/v4.1/job/{theirs}")));
    assert_errors(status, &body, StatusCode::NOT_FOUND);

    let batch = json!({"action": "UPSERT", "entityType": "INVENTORY",
        "entities": [record("100", "DC1", "S", 1)]});
    let (status, body) = send(
        feed.post(format!("{base}/api/v4.1/job/{job}/batch"))
            .json(&batch),
    );
    assert_errors(status, &body, StatusCode::FORBIDDEN);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("BATCH_CREATE"),
        "{backend:?}: {body}"
    );
}

backend_tests!(keys_are_listed_without_secrets_stored_as_hashes_and_revoked_at_once);
fn keys_are_listed_without_secrets_stored_as_hashes_and_revoked_at_once(backend: Backend) {
    let app = TestApp::spawn(backend);
    let key = create_key(&app, "feed", "100", &[]);
    let feed = client_with_token(&key);
    let url = app.url("/api/v4.1/inventory");
    assert_eq!(send(feed.get(&url)).0, StatusCode::OK, "{backend:?}");

    let (ok, listed, err) = cli(&app, &["api-key", "list"]);
    assert!(ok, "{backend:?}: {err}");
    let line = listed.lines().find(|l| l.starts_with("feed ")).unwrap();
    for shown in ["100", "DEFAULT", "active", "JOB_CREATE", "INVENTORY_VIEW"] {
        assert!(line.contains(shown), "{backend:?}: {listed}");
    }
    let hash = token_hash(&key);
    let secret = key.strip_prefix("sbk_").unwrap();
    assert!(
        !listed.contains(secret) && !listed.contains(&hash),
        "{backend:?}: {listed}"
    );

    let stored: Vec<String> = [
        "name",
        "key_hash",
        "retailer_id",
        "permissions",
        "default_location",
    ]
    .iter()
    .flat_map(|column| texts(app.db.url(), &format!("SELECT {column} AS t FROM api_keys")))
    .collect();
    assert_eq!(stored.len(), 5, "{backend:?}: {stored:?}");
    assert!(
        stored.iter().all(|s| !s.contains(secret)),
        "{backend:?}: the key is stored in plain text"
    );
    assert!(stored.contains(&hash), "{backend:?}: kept as its SHA-256");

    let (ok, _, err) = cli(&app, &["api-key", "create", "feed", "--retailer", "100"]);
    assert!(!ok && err.contains("API key feed already exists"), "{err}");

    // A wrong key, and then a revoked one, answer exactly as a wrong token does.
    let invalid = unauthorized(&client_with_token("not-a-token"), &url);
    let wrong = client_with_token(&format!("sbk_{}", "0".repeat(64)));
    assert_eq!(unauthorized(&wrong, &url), invalid, "{backend:?}");
    let (ok, out, err) = cli(&app, &["api-key", "revoke", "feed"]);
    assert!(ok, "{backend:?}: {err}");
    assert!(out.contains("revoked"), "{out}");
    assert_eq!(unauthorized(&feed, &url), invalid, "{backend:?}");
    let (_, listed, _) = cli(&app, &["api-key", "list"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("feed ") && l.contains("revoked")),
        "{backend:?}: {listed}"
    );

    let (ok, _, err) = cli(&app, &["api-key", "revoke", "nobody"]);
    assert!(!ok && err.contains("no API key nobody"), "{err}");
}

#[test]
fn creating_a_key_checks_its_arguments() {
    let app = TestApp::spawn(Backend::Sqlite);
    let long_name = "n".repeat(256);
    let wide_retailer = "😀".repeat(255);
    for (args, error) in [
        (vec!["create", &long_name, "--retailer", "100"], "1 to 255"),
        (
            vec!["create", "k", "--retailer", &wide_retailer],
            "765 bytes",
        ),
        (
            vec![
                "create",
                "k",
                "--retailer",
                "100",
                "--permissions",
                "JOB_DELETE",
            ],
            "unknown permission",
        ),
        (vec!["create", "k"], "--retailer"),
    ] {
        let (ok, out, err) = cli(&app, &[&["api-key"], args.as_slice()].concat());
        assert!(!ok && err.contains(error), "{args:?}: {err}");
        assert!(!out.contains("sbk_"), "{out}");
    }
    let (_, listed, _) = cli(&app, &["api-key", "list"]);
    assert_eq!(listed.lines().count(), 1, "only the header: {listed}");
}
