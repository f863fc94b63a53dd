//! Authentication, permissions and retailer isolation, through real HTTP.

mod common;
#[path = "support/process.rs"]
mod process;

use common::*;
use process::{execute, texts};
use reqwest::blocking::{Client, RequestBuilder};
use reqwest::StatusCode;
use serde_json::{json, Value};
use stockbatch::auth::secrets::token_hash;
use stockbatch::auth::Permission;
use stockbatch::db::accounts::{set_client_disabled, set_user_disabled};

const RETAILER: &str = "100";

/// A service with a job and a completed batch of retailer 100, and users to call it as.
struct World {
    app: TestApp,
    job: String,
    batch: String,
}

fn world(backend: Backend) -> World {
    let app = TestApp::spawn(backend);
    let job = app.create_job(json!(RETAILER));
    let batch = app.post_batch(&job, json!([record(RETAILER, "L", "S", 5)]));
    app.wait_complete(&job, &batch, 10);
    app.create_user("owner", Some(RETAILER), &Permission::ALL);
    app.create_user("stranger", Some("200"), &Permission::ALL);
    app.create_user("powerless", Some(RETAILER), &[]);
    World { app, job, batch }
}

/// An API route: its name, the permission it needs, and a request to it.
type Route<'a> = (
    &'static str,
    Permission,
    Box<dyn Fn(&Client) -> RequestBuilder + 'a>,
);

/// Every API route.
fn routes(w: &World) -> Vec<Route<'_>> {
    let base = &w.app.base;
    let batch_body = json!({"action": "UPSERT", "entityType": "INVENTORY", "entities": [record(RETAILER, "L", "S", 6)]});
    vec![
        (
            "create job",
            Permission::JobCreate,
            Box::new(move |c: &Client| {
                c.post(format!("{base}/api/v4.1/job"))
                    .json(&json!({"name": "n", "retailerId": RETAILER}))
            }),
        ),
        (
            "get job",
            Permission::JobView,
            Box::new(move |c: &Client| c.get(format!("{base}/api/v4.1/job/{}", w.job))),
        ),
        (
            "create batch",
            Permission::BatchCreate,
            Box::new(move |c: &Client| {
                c.post(format!("{base}/api/v4.1/job/{}/batch", w.job))
                    .json(&batch_body)
            }),
        ),
        (
            "get batch",
            Permission::BatchView,
            Box::new(move |c: &Client| {
                c.get(format!("{base}/api/v4.1/job/{}/batch/{}", w.job, w.batch))
            }),
        ),
        (
            "list inventory",
            Permission::InventoryView,
            Box::new(move |c: &Client| {
                c.get(format!("{base}/api/v4.1/inventory?retailerId={RETAILER}"))
            }),
        ),
    ]
}

fn send(request: RequestBuilder) -> (StatusCode, Value) {
    read(request.send().expect("request"))
}

backend_tests!(every_route_checks_token_permission_and_retailer);
fn every_route_checks_token_permission_and_retailer(backend: Backend) {
    let w = world(backend);
    let anonymous = w.app.anonymous();
    let bad_token = client_with_token("not-a-token");
    let expired_token = login(&w.app.base, "owner", USER_PASSWORD);
    let expires = "2000-01-01 00:00:00";
    execute(
        w.app.db.url(),
        &format!(
            "UPDATE tokens SET expires_at = '{expires}' WHERE token_hash = '{}'",
            token_hash(&expired_token)
        ),
    );
    let expired = client_with_token(&expired_token);
    let stranger = w.app.client_as("stranger");
    let powerless = w.app.client_as("powerless");
    let owner = w.app.client_as("owner");

    for (name, permission, request) in routes(&w) {
        let context = format!("{backend:?} {name}");
        for (who, client) in [
            ("no token", &anonymous),
            ("bad token", &bad_token),
            ("expired token", &expired),
        ] {
            let response = request(client).send().unwrap();
            assert_eq!(
                response
                    .headers()
                    .get("www-authenticate")
                    .map(|v| v.to_str().unwrap()),
                Some("Bearer"),
                "{context} {who}"
            );
            let (status, body) = read(response);
            assert_errors(status, &body, StatusCode::UNAUTHORIZED);
        }
        let (status, body) = send(request(&powerless));
        assert_errors(status, &body, StatusCode::FORBIDDEN);
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains(permission.as_str()),
            "{context}: {body}"
        );

        let (status, body) = send(request(&stranger));
        match name {
            "create job" => assert_errors(status, &body, StatusCode::FORBIDDEN),
            "list inventory" => {
                assert_eq!(status, StatusCode::OK, "{context}: {body}");
                assert_eq!(
                    body["total"], 0,
                    "{context}: another retailer's positions are invisible"
                );
            }
            _ => assert_errors(status, &body, StatusCode::NOT_FOUND),
        }

        let (status, body) = send(request(&owner));
        assert_eq!(status, StatusCode::OK, "{context}: {body}");
    }
}

backend_tests!(another_retailers_job_looks_exactly_like_a_missing_one);
fn another_retailers_job_looks_exactly_like_a_missing_one(backend: Backend) {
    let w = world(backend);
    let stranger = w.app.client_as("stranger");
    let (_, hidden) = send(stranger.get(format!("{}/api/v4.1/job/{}", w.app.base, w.job)));
    let missing_id = w.job.parse::<i64>().unwrap() + 1000;
    let (_, missing) = send(stranger.get(format!("{}/api/v4.1/job/{missing_id}", w.app.base)));
    assert_eq!(
        hidden["errors"][0]["message"],
        format!("job {} not found", w.job),
        "{backend:?}"
    );
    assert_eq!(
        missing["errors"][0]["message"],
        format!("job {missing_id} not found"),
        "{backend:?}"
    );
    let (_, positions) = send(stranger.get(format!("{}/api/v4.1/inventory", w.app.base)));
    assert_eq!(
        positions["total"], 0,
        "{backend:?}: unfiltered, still only the user's retailer"
    );
}

backend_tests!(a_record_for_another_retailer_gets_401_and_is_not_applied);
fn a_record_for_another_retailer_gets_401_and_is_not_applied(backend: Backend) {
    let w = world(backend);
    let owner = w.app.client_as("owner");
    let body = json!({"action": "UPSERT", "entityType": "INVENTORY",
        "entities": [record(RETAILER, "L", "MINE", 1), record("200", "L", "THEIRS", 2)]});
    let (status, created) = send(
        owner
            .post(format!("{}/api/v4.1/job/{}/batch", w.app.base, w.job))
            .json(&body),
    );
    assert_eq!(status, StatusCode::OK, "{backend:?}: {created}");
    let done = w
        .app
        .wait_complete(&w.job, created["id"].as_str().unwrap(), 10);
    assert_eq!(done["results"][0]["responseCode"], 200, "{backend:?}");
    assert_eq!(done["results"][1]["responseCode"], 401, "{backend:?}");
    let (_, theirs) = w.app.get("/api/v4.1/inventory?retailerId=200");
    assert_eq!(theirs["total"], 0, "{backend:?}");
}

backend_tests!(tokens_come_from_a_form_body_or_the_query_string);
fn tokens_come_from_a_form_body_or_the_query_string(backend: Backend) {
    let w = world(backend);
    let (status, form) = token_request(
        &w.app.base,
        &[("username", "owner"), ("password", USER_PASSWORD)],
    );
    assert_eq!(status, StatusCode::OK, "{backend:?}: {form}");
    assert_eq!(form["token_type"], "bearer");
    assert_eq!(form["scope"], "api");
    assert_eq!(form["expires_in"], 86_400);
    assert_eq!(form["Retailer_id"], 100, "Fluent's spelling, a number");
    assert!(form["refresh_token"]
        .as_str()
        .is_some_and(|t| t.len() == 64));

    let query = serde_urlencoded::to_string([
        ("grant_type", "password"),
        ("username", "owner"),
        ("password", USER_PASSWORD),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
        ("scope", "api"),
    ])
    .unwrap();
    let (status, by_query) =
        send(Client::new().post(format!("{}/oauth/token?{query}", w.app.base)));
    assert_eq!(status, StatusCode::OK, "{backend:?}: {by_query}");
    assert_ne!(by_query["access_token"], form["access_token"]);
    for token in [&form["access_token"], &by_query["access_token"]] {
        let (status, _) = send(
            client_with_token(token.as_str().unwrap())
                .get(format!("{}/api/v4.1/job/{}", w.app.base, w.job)),
        );
        assert_eq!(status, StatusCode::OK, "{backend:?}");
    }
    let (_, admin) = token_request(
        &w.app.base,
        &[("username", ADMIN), ("password", ADMIN_PASSWORD)],
    );
    assert_eq!(
        admin["Retailer_id"],
        Value::Null,
        "an administrator has no single retailer"
    );
}

backend_tests!(bad_credentials_get_oauth_errors_that_do_not_reveal_users);
fn bad_credentials_get_oauth_errors_that_do_not_reveal_users(backend: Backend) {
    let w = world(backend);
    let base = &w.app.base;
    let (status, wrong_password) = token_request(
        base,
        &[("username", "owner"), ("password", "wrong password!")],
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, unknown_user) = token_request(
        base,
        &[("username", "nobody"), ("password", "wrong password!")],
    );
    assert_eq!(
        wrong_password, unknown_user,
        "{backend:?}: same answer whether the user exists or not"
    );
    assert_eq!(
        wrong_password,
        json!({"error": "invalid_grant", "error_description": "Bad credentials"})
    );

    let cases: [(&[(&str, &str)], &str); 6] = [
        (
            &[
                ("username", "owner"),
                ("password", USER_PASSWORD),
                ("client_secret", "wrong secret"),
            ],
            "invalid_client",
        ),
        (
            &[
                ("username", "owner"),
                ("password", USER_PASSWORD),
                ("client_id", "nope"),
            ],
            "invalid_client",
        ),
        (
            &[
                ("username", "owner"),
                ("password", USER_PASSWORD),
                ("grant_type", "authorization_code"),
            ],
            "unsupported_grant_type",
        ),
        (
            &[("grant_type", "client_credentials")],
            "unauthorized_client",
        ),
        (
            &[
                ("username", "owner"),
                ("password", USER_PASSWORD),
                ("scope", "admin"),
            ],
            "invalid_scope",
        ),
        (&[("username", "owner")], "invalid_request"),
    ];
    for (fields, code) in cases {
        let (status, body) = token_request(base, fields);
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some(code)),
            "{backend:?} {fields:?}: {body}"
        );
        assert!(body["error_description"].is_string());
    }
}

backend_tests!(a_refresh_token_works_once);
fn a_refresh_token_works_once(backend: Backend) {
    let w = world(backend);
    let base = &w.app.base;
    let (_, first) = token_request(base, &[("username", "owner"), ("password", USER_PASSWORD)]);
    let refresh = first["refresh_token"].as_str().unwrap();
    let grant = [("grant_type", "refresh_token"), ("refresh_token", refresh)];
    let (status, second) = token_request(base, &grant);
    assert_eq!(status, StatusCode::OK, "{backend:?}: {second}");
    assert_ne!(second["access_token"], first["access_token"]);
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    let (status, _) = send(
        client_with_token(second["access_token"].as_str().unwrap())
            .get(format!("{base}/api/v4.1/job/{}", w.job)),
    );
    assert_eq!(status, StatusCode::OK);

    let (status, reused) = token_request(base, &grant);
    assert_eq!(status, StatusCode::BAD_REQUEST, "{backend:?}: {reused}");
    assert_eq!(reused["error"], "invalid_grant");
    let third = [
        ("grant_type", "refresh_token"),
        ("refresh_token", second["refresh_token"].as_str().unwrap()),
    ];
    assert_eq!(
        token_request(base, &third).0,
        StatusCode::OK,
        "the new refresh token works"
    );
}

backend_tests!(repeated_failed_logins_lock_the_username);
fn repeated_failed_logins_lock_the_username(backend: Backend) {
    let w = world(backend);
    let base = &w.app.base;
    for username in ["owner", "nobody"] {
        for _ in 0..5 {
            let (_, body) = token_request(
                base,
                &[("username", username), ("password", "guess guess guess")],
            );
            assert_eq!(
                body["error_description"], "Bad credentials",
                "{backend:?} {username}"
            );
        }
        // Locked now: even the right password is refused, with a time to wait.
        let (status, body) =
            token_request(base, &[("username", username), ("password", USER_PASSWORD)]);
        assert_eq!(status, StatusCode::BAD_REQUEST, "{backend:?} {username}");
        assert_eq!(body["error"], "invalid_grant");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .starts_with("too many failed logins"),
            "{body}"
        );
    }
    // Other users are not affected.
    assert_eq!(
        token_request(
            base,
            &[("username", "stranger"), ("password", USER_PASSWORD)]
        )
        .0,
        StatusCode::OK
    );
}

backend_tests!(concurrent_guesses_get_at_most_five_checks_before_the_lock);
fn concurrent_guesses_get_at_most_five_checks_before_the_lock(backend: Backend) {
    let w = world(backend);
    let base = w.app.base.clone();
    for username in ["owner", "nobody"] {
        let answers: Vec<(StatusCode, Value)> = std::thread::scope(|scope| {
            let guesses: Vec<_> = (0..40)
                .map(|_| {
                    let base = &base;
                    scope.spawn(move || {
                        token_request(
                            base,
                            &[("username", username), ("password", "guess guess guess")],
                        )
                    })
                })
                .collect();
            guesses.into_iter().map(|g| g.join().unwrap()).collect()
        });
        let described = |text: &str| {
            answers
                .iter()
                .filter(|(_, b)| {
                    b["error_description"]
                        .as_str()
                        .unwrap_or("")
                        .starts_with(text)
                })
                .count()
        };
        let checked = described("Bad credentials");
        let locked = described("too many failed logins");
        let busy = answers
            .iter()
            .filter(|(s, b)| {
                *s == StatusCode::SERVICE_UNAVAILABLE && b["error"] == "temporarily_unavailable"
            })
            .count();
        assert!(
            (1..=5).contains(&checked),
            "{backend:?} {username}: {checked} guesses were checked"
        );
        assert_eq!(checked + locked + busy, 40, "{backend:?}: {answers:?}");
        let (_, body) = token_request(
            &base,
            &[("username", username), ("password", USER_PASSWORD)],
        );
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .starts_with("too many failed logins"),
            "{backend:?} {username}: locked even for the right password: {body}"
        );
    }
}

backend_tests!(disabling_a_user_or_client_ends_its_tokens_for_good);
fn disabling_a_user_or_client_ends_its_tokens_for_good(backend: Backend) {
    let w = world(backend);
    let (_, tokens) = token_request(
        &w.app.base,
        &[("username", "owner"), ("password", USER_PASSWORD)],
    );
    let owner = client_with_token(tokens["access_token"].as_str().unwrap());
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let url = format!("{}/api/v4.1/job/{}", w.app.base, w.job);
    assert_eq!(send(owner.get(&url)).0, StatusCode::OK);

    // As `stockbatch user disable owner`, then `user enable owner`.
    w.app.with_db(|conn| {
        assert!(set_user_disabled(conn, "owner", true).unwrap());
    });
    assert_eq!(
        send(owner.get(&url)).0,
        StatusCode::UNAUTHORIZED,
        "{backend:?}"
    );
    w.app.with_db(|conn| {
        assert!(set_user_disabled(conn, "owner", false).unwrap());
    });
    assert_eq!(
        send(owner.get(&url)).0,
        StatusCode::UNAUTHORIZED,
        "{backend:?}: re-enabling must not bring the old access token back"
    );
    let (status, body) = token_request(
        &w.app.base,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    );
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{backend:?}: nor the old refresh token"
    );
    let owner = w.app.client_as("owner");
    assert_eq!(send(owner.get(&url)).0, StatusCode::OK, "{backend:?}");

    // As `stockbatch client disable`, then `client enable`.
    w.app.with_db(|conn| {
        assert!(set_client_disabled(conn, CLIENT_ID, true).unwrap());
    });
    assert_eq!(
        send(owner.get(&url)).0,
        StatusCode::UNAUTHORIZED,
        "{backend:?}"
    );
    let (status, body) = token_request(
        &w.app.base,
        &[("username", "owner"), ("password", USER_PASSWORD)],
    );
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_client"))
    );
    w.app.with_db(|conn| {
        assert!(set_client_disabled(conn, CLIENT_ID, false).unwrap());
    });
    assert_eq!(
        send(owner.get(&url)).0,
        StatusCode::UNAUTHORIZED,
        "{backend:?}: re-enabling the client must not bring its tokens back"
    );
    assert_eq!(send(w.app.client_as("owner").get(&url)).0, StatusCode::OK);
}

backend_tests!(the_database_holds_no_plain_password_secret_or_token);
fn the_database_holds_no_plain_password_secret_or_token(backend: Backend) {
    let w = world(backend);
    let (_, tokens) = token_request(
        &w.app.base,
        &[("username", "owner"), ("password", USER_PASSWORD)],
    );
    let secrets = [
        ADMIN_PASSWORD,
        USER_PASSWORD,
        CLIENT_SECRET,
        w.app.token.as_str(),
        tokens["access_token"].as_str().unwrap(),
        tokens["refresh_token"].as_str().unwrap(),
    ];
    let mut stored = texts(w.app.db.url(), "SELECT password_hash AS t FROM users");
    stored.extend(texts(w.app.db.url(), "SELECT permissions AS t FROM users"));
    stored.extend(texts(
        w.app.db.url(),
        "SELECT secret_hash AS t FROM oauth_clients",
    ));
    stored.extend(texts(w.app.db.url(), "SELECT token_hash AS t FROM tokens"));
    assert!(stored.len() >= 10, "{backend:?}: {stored:?}");
    for secret in secrets {
        assert!(
            stored.iter().all(|s| !s.contains(secret)),
            "{backend:?}: a secret is stored in plain text"
        );
    }
    assert!(
        stored
            .iter()
            .filter(|s| s.starts_with("$argon2id$"))
            .count()
            >= 5,
        "{backend:?}: argon2id hashes"
    );
    assert!(
        texts(w.app.db.url(), "SELECT token_hash AS t FROM tokens")
            .contains(&token_hash(&w.app.token)),
        "{backend:?}: tokens are kept as their SHA-256"
    );
}

backend_tests!(the_readme_walkthrough_runs_end_to_end_with_a_token);
fn the_readme_walkthrough_runs_end_to_end_with_a_token(backend: Backend) {
    let app = TestApp::spawn(backend);
    let query = format!(
        "grant_type=password&username={ADMIN}&password={ADMIN_PASSWORD}&client_id={CLIENT_ID}&client_secret={CLIENT_SECRET}&scope=api"
    );
    let (status, token) = send(
        Client::new()
            .post(format!("{}/oauth/token", app.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(query),
    );
    assert_eq!(status, StatusCode::OK, "{backend:?}: {token}");
    let fluent = client_with_token(token["access_token"].as_str().unwrap());
    let (_, job) = send(
        fluent
            .post(format!("{}/api/v4.1/job", app.base))
            .json(&json!({"name": "Batch Inventory Job", "retailerId": "197"})),
    );
    let job = job["id"].as_str().unwrap();
    let docs_example = json!({"action": "UPSERT", "entityType": "INVENTORY", "entities": [
        {"locationRef": "158", "qty": 10, "correctedQty": 11, "reservedQty": 12, "skuRef": "29SPM0020X96-1-8", "retailerId": 197}]});
    let (status, batch) = send(
        fluent
            .post(format!("{}/api/v4.1/job/{job}/batch", app.base))
            .json(&docs_example),
    );
    assert_eq!(status, StatusCode::OK, "{backend:?}: {batch}");
    let done = app.wait_complete(job, batch["id"].as_str().unwrap(), 10);
    assert_eq!(done["results"][0]["responseCode"], 200);
    assert_eq!(done["results"][0]["message"], "Inventory created");
    let (_, stock) = send(fluent.get(format!(
        "{}/api/v4.1/inventory?retailerId=197&skuRef=29SPM0020X96-1-8",
        app.base
    )));
    assert_eq!(stock["results"][0]["qty"], 10, "{backend:?}");
}
