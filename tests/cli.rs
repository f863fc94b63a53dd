//! The command line as a newcomer meets it: commands run from the wrong place, passwords
//! without a terminal, changing a password or a client secret, ignored first-start values.

mod common;
#[path = "support/process.rs"]
mod process;

use std::process::{Command, Stdio};

use common::*;
use process::Service;
use reqwest::StatusCode;

fn run(dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(Service::binary())
        .current_dir(dir)
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("STOCKBATCH_USER_PASSWORD")
        .stdin(Stdio::null())
        .output()
        .expect("run stockbatch");
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    (
        output.status.success(),
        text(output.stdout),
        text(output.stderr),
    )
}

#[test]
fn commands_other_than_create_refuse_a_database_that_is_not_there() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["user", "list"][..],
        &["client", "list"],
        &["retailer", "list"],
        &["api-key", "list"],
        &["webhook", "list"],
        &["user", "disable", "alice"],
    ] {
        let (ok, _, err) = run(dir.path(), args);
        assert!(!ok, "{args:?}");
        assert!(
            err.contains("there is no database at stockbatch.db"),
            "{args:?}: {err}"
        );
    }
    assert!(
        !dir.path().join("stockbatch.db").exists(),
        "no empty database left behind"
    );
    // A file that is not stockbatch's is not set up behind the user's back.
    std::fs::write(dir.path().join("other.db"), b"").unwrap();
    let (ok, _, err) = run(
        dir.path(),
        &["user", "list", "--database-url", "sqlite://other.db"],
    );
    assert!(!ok && err.contains("no stockbatch tables"), "{err}");
    let (ok, out, err) = run(dir.path(), &["retailer", "create", "197", "--name", "Shop"]);
    assert!(ok, "create commands set a database up: {err}");
    assert!(out.contains("created retailer 197"), "{out}");
    let (ok, out, _) = run(dir.path(), &["retailer", "list"]);
    assert!(ok && out.contains("Shop"), "{out}");
}

#[test]
fn a_password_without_a_terminal_says_how_to_give_one() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = run(
        dir.path(),
        &["user", "create", "alice", "--retailer", "197"],
    );
    assert!(!ok);
    assert!(
        err.contains("--password or STOCKBATCH_USER_PASSWORD"),
        "{err}"
    );
    assert!(!err.contains("os error"), "{err}");
}

#[test]
fn set_password_and_rotate_secret_end_the_old_credentials() {
    let app = TestApp::spawn(Backend::Sqlite);
    let dir = tempfile::tempdir().unwrap();
    let db = ["--database-url", app.db.url()];
    let cli = |args: &[&str]| run(dir.path(), &[args, &db[..]].concat());
    let (ok, _, err) = cli(&[
        "user",
        "create",
        "alice",
        "--retailer",
        "197",
        "--password",
        "first-password-1",
    ]);
    assert!(ok, "{err}");
    let old = login(&app.base, "alice", "first-password-1");
    let (ok, out, err) = cli(&[
        "user",
        "set-password",
        "alice",
        "--password",
        "second-password-2",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("password of alice set"), "{out}");
    let stale = client_with_token(&old)
        .get(app.url("/api/v4.1/inventory"))
        .send()
        .unwrap();
    assert_eq!(
        stale.status(),
        StatusCode::UNAUTHORIZED,
        "the old session ended"
    );
    let (status, _) = token_request(
        &app.base,
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "first-password-1"),
        ],
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    login(&app.base, "alice", "second-password-2");
    let (ok, _, err) = cli(&[
        "user",
        "set-password",
        "nobody",
        "--password",
        "third-password-3",
    ]);
    assert!(!ok && err.contains("no user nobody"), "{err}");

    let (ok, out, err) = cli(&["client", "rotate-secret", CLIENT_ID]);
    assert!(ok, "{err}");
    let secret = out.lines().last().unwrap().trim().to_owned();
    assert!(
        out.contains("shown only this once") && secret.len() >= 32,
        "{out}"
    );
    let (status, body) = token_request(
        &app.base,
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "second-password-2"),
        ],
    );
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "the old client secret is refused: {body}"
    );
    assert_eq!(body["error"], "invalid_client");
    let (status, body) = token_request(
        &app.base,
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "second-password-2"),
            ("client_secret", secret.as_str()),
        ],
    );
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[test]
fn first_start_values_ignored_on_a_used_database_are_reported() {
    let db = TestDb::new(Backend::Sqlite);
    let mut first = Service::start("first", db.url(), "api", &[]);
    first.kill9();
    let mut command = Command::new(Service::binary());
    command
        .args([
            "serve",
            "--role",
            "api",
            "--bind",
            "127.0.0.1:0",
            "--database-url",
            db.url(),
        ])
        .env("STOCKBATCH_ADMIN_PASSWORD", "a-new-admin-password")
        .env("STOCKBATCH_CLIENT_SECRET", "a-new-client-secret")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let mut line = String::new();
    while std::io::BufRead::read_line(&mut stderr, &mut line).unwrap() > 0 {
        seen.push_str(&line);
        if line.contains("listening on") {
            break;
        }
        line.clear();
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        seen.contains("STOCKBATCH_ADMIN_USERNAME/STOCKBATCH_ADMIN_PASSWORD are ignored"),
        "{seen}"
    );
    assert!(seen.contains("user set-password"), "{seen}");
    assert!(
        seen.contains("STOCKBATCH_CLIENT_ID/STOCKBATCH_CLIENT_SECRET are ignored"),
        "{seen}"
    );
    assert!(!seen.contains("a-new-admin-password"), "never logged");
}
