//! Webhooks and emails against real receivers on loopback: signed Fluent-shaped events for
//! both APIs, what a batch changed, receivers that are down, slow or failing, a dispatcher
//! killed mid-delivery, two dispatcher nodes, and batch emails through an SMTP sink.

mod common;
#[path = "support/process.rs"]
mod process;
#[path = "support/receivers.rs"]
mod receivers;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::*;
use process::Service;
use receivers::{Received, Receiver, SmtpSink};
use reqwest::StatusCode;
use serde_json::{json, Value};
use stockbatch::auth::Permission;
use stockbatch::notify::signing::verify;
use stockbatch::notify::{KeySource, SealingKey, SmtpRelay};

const WEBHOOKS: &str = "/api/v4.1/webhooks";
const STATESET: &str = "/api/v1/inventory/batch";
const WAIT: Duration = Duration::from_secs(30);

/// A service that may call loopback receivers, retrying quickly.
fn spawn(db: TestDb, adjust: impl FnOnce(&mut stockbatch::Config)) -> TestApp {
    TestApp::spawn_with(db, |c| {
        c.notify.allow_private_destinations = true;
        c.notify.poll_interval = Duration::from_millis(100);
        c.notify.first_retry = Duration::from_millis(100);
        c.notify.max_retry_delay = Duration::from_millis(400);
        c.notify.send_timeout = Duration::from_secs(2);
        c.notify.lease = Duration::from_secs(5);
        c.executor.poll_interval = Duration::from_millis(100);
        adjust(c);
    })
}

/// Subscribes `url` to `events` (of `retailer`, or every retailer's); returns (id, secret).
fn subscribe(
    app: &TestApp,
    url: &str,
    events: &[&str],
    retailer: Option<&str>,
) -> (String, String) {
    let (status, body) = app.post(
        WEBHOOKS,
        &json!({"url": url, "events": events, "retailerId": retailer}),
    );
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let secret = body["secret"]
        .as_str()
        .expect("the secret, once")
        .to_owned();
    (body["id"].as_str().unwrap().to_owned(), secret)
}

fn named<'a>(got: &'a [Received], name: &str) -> Vec<&'a Received> {
    got.iter()
        .filter(|r| r.header("Stockbatch-Event") == name)
        .collect()
}

fn event_ids(got: &[Received]) -> Vec<String> {
    got.iter()
        .map(|r| r.header("Stockbatch-Event-Id").to_owned())
        .collect()
}

fn assert_signed(received: &Received, secret: &str) {
    let timestamp: i64 = received.header("Stockbatch-Timestamp").parse().unwrap();
    assert!(
        (chrono::Utc::now().timestamp() - timestamp).abs() < 300,
        "a fresh timestamp"
    );
    let signature = received.header("Stockbatch-Signature");
    assert!(
        verify(secret, timestamp, &received.body, signature),
        "signed"
    );
    assert!(!verify("whsec_other", timestamp, &received.body, signature));
    assert_eq!(received.header("Content-Type"), "application/json");
    assert_eq!(
        received.json()["id"],
        received.header("Stockbatch-Event-Id")
    );
}

fn stateset(app: &TestApp, shop: &reqwest::blocking::Client, body: Value) -> Value {
    let (status, view) = read(shop.post(app.url(STATESET)).json(&body).send().unwrap());
    assert_eq!(status, StatusCode::OK, "{view}");
    view
}

fn deliveries(app: &TestApp, webhook: &str) -> Vec<Value> {
    let (status, body) = app.get(&format!("{WEBHOOKS}/{webhook}/deliveries?count=500"));
    assert_eq!(status, StatusCode::OK, "{body}");
    body["results"].as_array().unwrap().clone()
}

fn wait_deliveries(
    app: &TestApp,
    webhook: &str,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let rows = deliveries(app, webhook);
        if done(&rows) {
            return rows;
        }
        assert!(Instant::now() < deadline, "waited for {what}: {rows:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

backend_tests!(signed_fluent_shaped_events_for_both_apis_with_what_each_batch_changed);
fn signed_fluent_shaped_events_for_both_apis_with_what_each_batch_changed(backend: Backend) {
    let app = spawn(TestDb::new(backend), |_| {});
    let receiver = Receiver::start();
    let (webhook, secret) = subscribe(
        &app,
        &receiver.url(),
        &["BATCH_CREATE", "BATCH_COMPLETE", "INVENTORY_CHANGED"],
        Some("7"),
    );
    let other = Receiver::start();
    subscribe(&app, &other.url(), &["*"], Some("8"));

    let job = app.create_job(json!("7"));
    let first = app.post_batch(
        &job,
        json!([
            record("7", "L1", "A", 5),
            record("7", "L1", "B", 9),
            record("7", "L1", "A", 6)
        ]),
    );
    app.wait_complete(&job, &first, 10);
    // The same quantities again: Batch Pre-Processing leaves them, so nothing changes.
    let second = app.post_batch(
        &job,
        json!([record("7", "L1", "A", 6), record("7", "L1", "B", 9)]),
    );
    app.wait_complete(&job, &second, 10);
    let shop = app.api_key_client("7", "L1");
    let view = stateset(
        &app,
        &shop,
        json!({"operation": "adjust", "items": [
            {"sku": "B", "data": {"adjustment_type": "relative", "quantity": -4}},
            {"sku": "C", "data": {"adjustment_type": "relative", "quantity": -1}}]}),
    );
    let stateset_id = view["batch_id"]
        .as_str()
        .unwrap()
        .trim_start_matches("batch_")
        .to_owned();

    let got = receiver.wait_until(WAIT, "3 creates, 3 completes, 2 changes", |got| {
        named(got, "BATCH_CREATE").len() == 3
            && named(got, "BATCH_COMPLETE").len() == 3
            && named(got, "INVENTORY_CHANGED").len() == 2
    });
    std::thread::sleep(Duration::from_millis(500));
    let got_all = receiver.received();
    assert_eq!(got_all.len(), 8, "{backend:?}: nothing more, nothing twice");
    let ids: HashSet<String> = event_ids(&got_all).into_iter().collect();
    assert_eq!(ids.len(), 8, "{backend:?}: each event has its own id");
    for received in &got {
        assert_signed(received, &secret);
    }

    let complete: Vec<Value> = named(&got, "BATCH_COMPLETE")
        .iter()
        .map(|r| r.json())
        .collect();
    let fluent = complete.iter().find(|e| e["entityId"] == first).unwrap();
    assert_eq!(fluent["name"], "BATCH_COMPLETE");
    assert_eq!(fluent["retailerId"], "7");
    assert_eq!(fluent["entityType"], "BATCH");
    assert_eq!(fluent["rootEntityType"], "JOB");
    assert_eq!(fluent["rootEntityId"], job);
    assert_eq!(fluent["attributes"]["status"], "COMPLETE");
    assert_eq!(fluent["attributes"]["totalEntities"], 3);
    assert_eq!(fluent["attributes"]["appliedEntities"], 3);
    let ss = complete
        .iter()
        .find(|e| e["entityId"] == stateset_id)
        .unwrap();
    assert_eq!(ss["entityRef"], format!("batch_{stateset_id}"));
    assert_eq!(ss["rootEntityType"], Value::Null);
    assert_eq!(ss["attributes"]["api"], "stateset");
    assert_eq!(ss["attributes"]["rejectedEntities"], 1, "C has no stock");

    let changes: HashMap<String, Value> = named(&got, "INVENTORY_CHANGED")
        .iter()
        .map(|r| {
            let e = r.json();
            (
                e["entityId"].as_str().unwrap().to_owned(),
                e["attributes"].clone(),
            )
        })
        .collect();
    assert_eq!(
        changes[&first]["positions"],
        json!([
            {"locationRef": "L1", "skuRef": "A", "previousQty": 0, "qty": 6},
            {"locationRef": "L1", "skuRef": "B", "previousQty": 0, "qty": 9}]),
        "{backend:?}: one entry per position, first before to last after"
    );
    assert!(
        !changes.contains_key(&second),
        "{backend:?}: an unchanged batch changes nothing"
    );
    assert_eq!(
        changes[&stateset_id]["positions"],
        json!([{"locationRef": "L1", "skuRef": "B", "previousQty": 9, "qty": 5}])
    );
    assert!(
        other.received().is_empty(),
        "{backend:?}: retailer 8 hears nothing of 7"
    );

    let rows = deliveries(&app, &webhook);
    assert_eq!(rows.len(), 8);
    assert!(
        rows.iter()
            .all(|d| d["status"] == "delivered" && d["attempts"] == 1 && d["lastStatus"] == 200),
        "{rows:?}"
    );
}

#[test]
fn subscriptions_are_permission_checked_isolated_and_their_secrets_sealed() {
    let app = spawn(TestDb::new(Backend::Sqlite), |_| {});
    app.create_user("viewer7", Some("7"), &[Permission::JobView]);
    app.create_user("admin7", Some("7"), &Permission::ALL);
    app.create_user("admin8", Some("8"), &Permission::ALL);
    let (viewer, seven, eight) = (
        app.client_as("viewer7"),
        app.client_as("admin7"),
        app.client_as("admin8"),
    );
    let body = json!({"url": "http://127.0.0.1:9/hook", "events": ["BATCH_COMPLETE"]});

    let (status, err) = read(viewer.post(app.url(WEBHOOKS)).json(&body).send().unwrap());
    assert_errors(status, &err, StatusCode::FORBIDDEN);
    let (status, err) = read(
        seven
            .post(app.url(WEBHOOKS))
            .json(&json!({"url": "http://127.0.0.1:9/", "events": ["*"], "retailerId": "8"}))
            .send()
            .unwrap(),
    );
    assert_errors(status, &err, StatusCode::FORBIDDEN);
    let (status, created) = read(seven.post(app.url(WEBHOOKS)).json(&body).send().unwrap());
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        created["retailerId"], "7",
        "a retailer's user subscribes to its own"
    );
    let id = created["id"].as_str().unwrap();
    let secret = created["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_") && secret.len() > 30);

    let (status, list) = read(viewer.get(app.url(WEBHOOKS)).send().unwrap());
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["results"].as_array().unwrap().len(), 1);
    assert!(!list.to_string().contains(secret), "never shown again");
    let (_, list) = read(eight.get(app.url(WEBHOOKS)).send().unwrap());
    assert_eq!(list["results"], json!([]), "8 does not see 7's");
    let (status, err) = read(
        eight
            .get(app.url(&format!("{WEBHOOKS}/{id}")))
            .send()
            .unwrap(),
    );
    assert_errors(status, &err, StatusCode::NOT_FOUND);
    let (status, err) = read(
        eight
            .delete(app.url(&format!("{WEBHOOKS}/{id}")))
            .send()
            .unwrap(),
    );
    assert_errors(status, &err, StatusCode::NOT_FOUND);
    let (status, all) = app.get(WEBHOOKS);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        all["results"].as_array().unwrap().len(),
        1,
        "the administrator sees all"
    );

    let stored: Vec<String> = app.with_db(|conn| {
        stockbatch::db::notifications::list_subscriptions(conn, None)
            .unwrap()
            .into_iter()
            .map(|s| s.secret_sealed)
            .collect()
    });
    assert!(
        stored[0].starts_with("v1.") && !stored[0].contains(&secret[6..]),
        "sealed at rest"
    );

    // A malformed request is a 400; a well-formed one whose URL cannot be used, a 422.
    for (bad, why, code) in [
        (
            json!({"url": "ftp://x/", "events": ["*"]}),
            "http:// or https://",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"url": "http://127.0.0.1/", "events": ["NOPE"]}),
            "known are",
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"events": ["*"]}),
            "'url' is required",
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"url": "\u{a0}", "events": ["*"]}),
            "is not a URL",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"url": "http://u:p@127.0.0.1/", "events": ["*"]}),
            "credentials",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"url": "https://no-such-host.invalid/", "events": ["*"]}),
            "does not resolve",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let (status, err) = app.post(WEBHOOKS, &bad);
        assert_errors(status, &err, code);
        assert!(err.to_string().contains(why), "{bad}: {err}");
    }
    let (status, err) = read(
        viewer
            .delete(app.url(&format!("{WEBHOOKS}/{id}")))
            .send()
            .unwrap(),
    );
    assert_errors(status, &err, StatusCode::FORBIDDEN);
    let deleted = seven
        .delete(app.url(&format!("{WEBHOOKS}/{id}")))
        .send()
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.get(WEBHOOKS).1["results"], json!([]));
}

#[test]
fn private_destinations_are_refused_unless_the_operator_allows_them() {
    let app = TestApp::spawn(Backend::Sqlite);
    for url in [
        "http://127.0.0.1:9000/hook",
        "http://localhost/hook",
        "http://169.254.169.254/",
        "http://[::1]/",
        "http://10.0.0.1/",
    ] {
        let (status, err) = app.post(WEBHOOKS, &json!({"url": url, "events": ["*"]}));
        assert_errors(status, &err, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            err.to_string().contains("STOCKBATCH_WEBHOOK_ALLOW_PRIVATE"),
            "{url}: {err}"
        );
    }
}

#[test]
fn a_receiver_down_for_a_while_gets_every_event_once_it_is_back() {
    let app = spawn(TestDb::new(Backend::Sqlite), |_| {});
    let port = Receiver::unused_port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let (webhook, secret) = subscribe(&app, &url, &["BATCH_COMPLETE"], None);
    let job = app.create_job(json!("7"));
    let batches: Vec<String> = (0..5)
        .map(|i| app.post_batch(&job, json!([record("7", "L", "A", i)])))
        .collect();
    for b in &batches {
        app.wait_complete(&job, b, 1);
    }
    let rows = wait_deliveries(&app, &webhook, "retries against a dead receiver", |rows| {
        rows.len() == 5 && rows.iter().all(|d| d["attempts"].as_i64() >= Some(2))
    });
    assert!(
        rows.iter()
            .all(|d| d["status"] == "pending"
                && d["lastError"].as_str().unwrap().contains("connect")),
        "{rows:?}"
    );

    let receiver = Receiver::start_on(port);
    let got = receiver.wait_until(WAIT, "all five", |got| got.len() >= 5);
    wait_deliveries(&app, &webhook, "all delivered", |rows| {
        rows.iter().all(|d| d["status"] == "delivered")
    });
    let got_all = receiver.received();
    assert_eq!(got_all.len(), 5, "each once");
    let completed: HashSet<String> = got
        .iter()
        .map(|r| r.json()["entityId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(completed, batches.iter().cloned().collect::<HashSet<_>>());
    got.iter().for_each(|r| assert_signed(r, &secret));
}

#[test]
fn a_failing_receiver_is_given_up_on_after_the_window_and_can_be_replayed() {
    let app = spawn(TestDb::new(Backend::Sqlite), |c| {
        c.notify.retry_for = Duration::from_secs(1);
    });
    let receiver = Receiver::start();
    receiver.answer_with(500);
    let (webhook, _) = subscribe(&app, &receiver.url(), &["BATCH_COMPLETE"], None);
    let job = app.create_job(json!("7"));
    let batch = app.post_batch(&job, json!([record("7", "L", "A", 1)]));
    app.wait_complete(&job, &batch, 1);
    let rows = wait_deliveries(&app, &webhook, "a failed delivery", |rows| {
        rows.first().is_some_and(|d| d["status"] == "failed")
    });
    let failed = &rows[0];
    assert_eq!(failed["lastStatus"], 500);
    assert!(failed["attempts"].as_i64().unwrap() >= 2, "{failed}");
    assert!(
        failed["lastError"].as_str().unwrap().contains("gave up"),
        "{failed}"
    );
    let tries = receiver.received().len();
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(receiver.received().len(), tries, "no attempt after failing");

    receiver.answer_with(200);
    let delivery = failed["id"].as_str().unwrap();
    let (status, replayed) = app.post(
        &format!("{WEBHOOKS}/{webhook}/deliveries/{delivery}/replay"),
        &json!({}),
    );
    assert_eq!(status, StatusCode::ACCEPTED, "{replayed}");
    assert_eq!(replayed["status"], "pending");
    wait_deliveries(&app, &webhook, "the replay delivered", |rows| {
        rows[0]["status"] == "delivered"
    });
    let last = receiver.received().pop().unwrap();
    assert_eq!(
        last.header("Stockbatch-Event-Id"),
        failed["eventId"].as_str().unwrap(),
        "the same event, again"
    );
    let (status, err) = app.post(
        &format!("{WEBHOOKS}/{webhook}/deliveries/999999/replay"),
        &json!({}),
    );
    assert_errors(status, &err, StatusCode::NOT_FOUND);
}

#[test]
fn a_receiver_that_never_answers_slows_neither_batches_nor_other_receivers() {
    let app = spawn(TestDb::new(Backend::Sqlite), |c| {
        c.notify.send_timeout = Duration::from_secs(3);
    });
    let stuck = Receiver::start();
    stuck.hold(Duration::from_secs(60));
    let healthy = Receiver::start();
    subscribe(&app, &stuck.url(), &["BATCH_COMPLETE"], None);
    subscribe(&app, &healthy.url(), &["BATCH_COMPLETE"], None);
    let shop = app.api_key_client("7", "L");
    let started = Instant::now();
    for i in 0..4 {
        let view = stateset(
            &app,
            &shop,
            json!({"operation": "adjust", "items": [
            {"sku": format!("S{i}"), "data": {"adjustment_type": "absolute", "quantity": 3}}]}),
        );
        assert_eq!(view["status"], "completed");
    }
    healthy.wait_until(Duration::from_secs(10), "four events", |got| got.len() == 4);
    // Sent one after the other, the stuck receiver's four would have taken 12 s.
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "{:?}",
        started.elapsed()
    );
    // One delivery in flight per subscription: an attempt per timeout at most.
    let attempts = stuck.received().len() as u64;
    assert!(
        attempts >= 1 && attempts <= started.elapsed().as_secs() / 3 + 1,
        "{attempts}"
    );
}

#[test]
fn a_dispatcher_killed_mid_delivery_loses_nothing() {
    let db = TestDb::new(Backend::Sqlite);
    let receiver = Receiver::start();
    receiver.hold(Duration::from_secs(30));
    let env = [
        ("STOCKBATCH_WEBHOOK_ALLOW_PRIVATE", "true"),
        ("STOCKBATCH_NOTIFY_FIRST_RETRY_MS", "100"),
        ("STOCKBATCH_NOTIFY_TIMEOUT_SECS", "20"),
    ];
    let mut server = Service::start("doomed", db.url(), "all", &env);
    let base = server.base();
    let admin = client_with_token(&login(&base, ADMIN, ADMIN_PASSWORD));
    let (status, created) = read(
        admin
            .post(format!("{base}{WEBHOOKS}"))
            .json(&json!({"url": receiver.url(), "events": ["BATCH_COMPLETE"]}))
            .send()
            .unwrap(),
    );
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (_, job) = read(
        admin
            .post(format!("{base}/api/v4.1/job"))
            .json(&json!({"name": "j", "retailerId": "7"}))
            .send()
            .unwrap(),
    );
    let job = job["id"].as_str().unwrap().to_owned();
    let mut posted = Vec::new();
    for i in 0..3 {
        let (status, batch) = read(
            admin
                .post(format!("{base}/api/v4.1/job/{job}/batch"))
                .json(&json!({"action": "UPSERT", "entityType": "INVENTORY", "entities": [record("7", "L", "A", i)]}))
                .send()
                .unwrap(),
        );
        assert_eq!(status, StatusCode::OK, "{batch}");
        posted.push(batch["id"].as_str().unwrap().to_owned());
    }
    // The first delivery is in flight (the receiver holds it): now the process dies.
    receiver.wait_until(WAIT, "a delivery in flight", |got| !got.is_empty());
    server.kill9();

    receiver.hold(Duration::ZERO);
    let restarted = Service::start("restarted", db.url(), "all", &env);
    let got = receiver.wait_until(WAIT, "every event", |got| {
        let ids: HashSet<String> = got
            .iter()
            .map(|r| r.json()["entityId"].as_str().unwrap().to_owned())
            .collect();
        ids.len() == 3
    });
    let completed: HashSet<String> = got
        .iter()
        .map(|r| r.json()["entityId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(completed, posted.into_iter().collect::<HashSet<_>>());
    let admin = client_with_token(&login(&restarted.base(), ADMIN, ADMIN_PASSWORD));
    let id = created["id"].as_str().unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, rows) = read(
            admin
                .get(format!("{}{WEBHOOKS}/{id}/deliveries", restarted.base()))
                .send()
                .unwrap(),
        );
        let rows = rows["results"].as_array().unwrap().clone();
        if rows.len() == 3 && rows.iter().all(|d| d["status"] == "delivered") {
            break;
        }
        assert!(Instant::now() < deadline, "{rows:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // At least once: only the event in flight at the kill may have come twice.
    assert!(
        receiver.received().len() <= 4,
        "{}",
        receiver.received().len()
    );
}

#[test]
#[cfg_attr(
    not(postgres_tests),
    ignore = "needs STOCKBATCH_TEST_POSTGRES_URL at build time"
)]
fn two_dispatcher_nodes_on_postgresql_send_each_event_once() {
    let db = TestDb::new(Backend::Postgres);
    let key = SealingKey::generate();
    let receiver = Receiver::start();
    let env = [
        ("STOCKBATCH_WEBHOOK_ALLOW_PRIVATE", "true"),
        ("STOCKBATCH_SEALING_KEY", key.as_str()),
        ("STOCKBATCH_WEBHOOK_WORKERS", "4"),
        ("STOCKBATCH_EXECUTOR_WORKERS", "2"),
    ];
    let nodes = [
        Service::start("node-1", db.url(), "all", &env),
        Service::start("node-2", db.url(), "all", &env),
    ];
    let admins: Vec<_> = nodes
        .iter()
        .map(|n| {
            (
                n.base(),
                client_with_token(&login(&n.base(), ADMIN, ADMIN_PASSWORD)),
            )
        })
        .collect();
    let (base, admin) = &admins[0];
    let (status, created) = read(
        admin
            .post(format!("{base}{WEBHOOKS}"))
            .json(&json!({"url": receiver.url(), "events": ["BATCH_CREATE", "BATCH_COMPLETE"]}))
            .send()
            .unwrap(),
    );
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (_, job) = read(
        admin
            .post(format!("{base}/api/v4.1/job"))
            .json(&json!({"name": "j", "retailerId": "7"}))
            .send()
            .unwrap(),
    );
    let job = job["id"].as_str().unwrap().to_owned();
    std::thread::scope(|scope| {
        for (n, (base, admin)) in admins.iter().enumerate() {
            let job = &job;
            scope.spawn(move || {
                for i in 0..20 {
                    let (status, body) = read(
                        admin
                            .post(format!("{base}/api/v4.1/job/{job}/batch"))
                            .json(&json!({"action": "UPSERT", "entityType": "INVENTORY",
                                "entities": [record("7", "L", &format!("N{n}-{i}"), i)]}))
                            .send()
                            .unwrap(),
                    );
                    assert_eq!(status, StatusCode::OK, "{body}");
                }
            });
        }
    });
    let got = receiver.wait_until(Duration::from_secs(60), "80 events", |got| got.len() >= 80);
    std::thread::sleep(Duration::from_secs(2));
    let got_all = receiver.received();
    assert_eq!(got_all.len(), 80, "no event sent twice");
    let ids: HashSet<String> = event_ids(&got).into_iter().collect();
    assert_eq!(ids.len(), 80);
    assert_eq!(named(&got_all, "BATCH_COMPLETE").len(), 40);
    let sent_by: Vec<i64> = process::numbers(
        db.url(),
        "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE status = 'delivered' AND attempts = 1",
    );
    assert_eq!(sent_by, vec![80]);
}

backend_tests!(batch_emails_summarise_the_batch_and_say_why_when_none_can_be_sent);
fn batch_emails_summarise_the_batch_and_say_why_when_none_can_be_sent(backend: Backend) {
    // No relay: accepted all the same, and the batch says the email was not sent.
    let app = spawn(TestDb::new(backend), |_| {});
    let shop = app.api_key_client("7", "L");
    let view = stateset(
        &app,
        &shop,
        json!({"operation": "adjust",
        "options": {"notification_email": "ops@example.com"},
        "items": [{"sku": "A", "data": {"adjustment_type": "absolute", "quantity": 2}}]}),
    );
    assert_eq!(view["notification"]["email"], "ops@example.com", "{view}");
    assert_eq!(
        view["notification"]["status"], "not_sent: no SMTP relay configured",
        "{backend:?}"
    );
    drop(app);

    let sink = SmtpSink::start();
    let app = spawn(TestDb::new(backend), |c| {
        c.notify.smtp = Some(SmtpRelay {
            url: sink.url(),
            from: "stockbatch <feeds@example.com>".to_owned(),
        });
    });
    let shop = app.api_key_client("7", "L");
    let view = stateset(
        &app,
        &shop,
        json!({"operation": "adjust",
        "options": {"notification_email": "ops@example.com", "continue_on_error": true},
        "items": [
            {"sku": "A", "data": {"adjustment_type": "absolute", "quantity": 10}},
            {"sku": "B", "data": {"adjustment_type": "relative", "quantity": -3}},
            {"sku": "A", "data": {"adjustment_type": "relative", "quantity": -4}}]}),
    );
    let id = view["batch_id"].as_str().unwrap().to_owned();
    let mail = unfolded(&sink.wait_for(1, WAIT)[0]);
    assert!(mail.contains("To: ops@example.com"), "{mail}");
    assert!(
        mail.contains("From: stockbatch <feeds@example.com>"),
        "{mail}"
    );
    assert!(
        mail.contains(&format!(
            "Subject: stockbatch: batch {id} completed with failures: 2 of 3 applied, 1 not"
        )),
        "{mail}"
    );
    assert!(mail.contains("Items:       3"), "{mail}");
    assert!(mail.contains("Not applied: 1"), "{mail}");
    assert!(
        mail.contains("#1 B: 422"),
        "the failed item and its message: {mail}"
    );
    assert!(
        mail.contains(&format!("GET /api/v1/inventory/batch/{id}")),
        "{mail}"
    );
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, view) = read(
            shop.get(app.url(&format!("{STATESET}/{id}")))
                .send()
                .unwrap(),
        );
        if view["notification"]["status"] == "sent" {
            assert!(view["notification"]["sentOn"].is_string());
            break;
        }
        assert!(Instant::now() < deadline, "{view}");
        std::thread::sleep(Duration::from_millis(50));
    }

    // A Fluent job's meta.notify: an email per batch, pointing at its results.
    let (status, job) = app.post(
        "/api/v4.1/job",
        &json!({"name": "j", "retailerId": "7", "meta": {"notify": "feeds@example.com"}}),
    );
    assert_eq!(status, StatusCode::OK, "{job}");
    let job = job["id"].as_str().unwrap();
    let batch = app.post_batch(job, json!([record("7", "L", "F", 1)]));
    app.wait_complete(job, &batch, 1);
    let mails: Vec<String> = sink.wait_for(2, WAIT).iter().map(|m| unfolded(m)).collect();
    assert!(mails[1].contains("To: feeds@example.com"), "{}", mails[1]);
    assert!(
        mails[1].contains(&format!(
            "Fluent batch {batch} of job {job} for retailer 7 completed."
        )),
        "{}",
        mails[1]
    );
    assert!(mails[1].contains(&format!(
        "GET /api/v4.1/job/{job}/batch/{batch}/results?failed=true"
    )));
    let (status, err) = app.post(
        "/api/v4.1/job",
        &json!({"name": "j", "retailerId": "7", "meta": {"notify": "nobody"}}),
    );
    assert_errors(status, &err, StatusCode::BAD_REQUEST);
    assert!(err
        .to_string()
        .contains("'meta.notify' must be an email address"));
}

/// A message with its long header lines unfolded.
fn unfolded(mail: &str) -> String {
    mail.replace("\r\n ", " ")
}

#[test]
fn cancelling_a_job_sends_job_closed_and_the_cancelled_batches_complete_events() {
    let app = spawn(TestDb::new(Backend::Sqlite), |c| {
        c.role = stockbatch::Role::Api
    });
    let receiver = Receiver::start();
    subscribe(
        &app,
        &receiver.url(),
        &["BATCH_COMPLETE", "JOB_CLOSED"],
        Some("7"),
    );
    let job = app.create_job(json!("7"));
    let batch = app.post_batch(&job, json!([record("7", "L", "A", 1)]));
    let (status, body) = app.post(&format!("/api/v4.1/job/{job}/cancel"), &json!({}));
    assert_eq!(status, StatusCode::OK, "{body}");
    // This process runs no dispatcher: a node with an executor sends them.
    let executor = spawn_executor_node(&app);
    let got = receiver.wait_until(WAIT, "JOB_CLOSED and BATCH_COMPLETE", |got| got.len() == 2);
    let closed = named(&got, "JOB_CLOSED")[0].json();
    assert_eq!(closed["entityType"], "JOB");
    assert_eq!(closed["entityId"], job);
    assert_eq!(closed["attributes"]["cancelledBatches"], 1);
    let complete = named(&got, "BATCH_COMPLETE")[0].json();
    assert_eq!(complete["entityId"], batch);
    assert_eq!(complete["attributes"]["cancelled"], true);
    drop(executor);
}

/// An executor-role process on `app`'s database, sharing its sealing key file.
fn spawn_executor_node(app: &TestApp) -> Service {
    Service::start(
        "executor",
        app.db.url(),
        "executor",
        &[("STOCKBATCH_WEBHOOK_ALLOW_PRIVATE", "true")],
    )
}

#[test]
fn the_cli_manages_subscriptions_and_prints_the_secret_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("cli.db").display());
    let run = |args: &[&str]| {
        let out = std::process::Command::new(Service::binary())
            .args(args)
            .args(["--database-url", &url])
            .env("STOCKBATCH_WEBHOOK_ALLOW_PRIVATE", "true")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        (
            out.status.success(),
            stdout + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, out) = run(&[
        "webhook",
        "create",
        "--url",
        "http://127.0.0.1:9/hook",
        "--events",
        "BATCH_COMPLETE,INVENTORY_CHANGED",
        "--retailer",
        "7",
    ]);
    assert!(ok, "{out}");
    assert!(
        out.contains("created webhook 1: BATCH_COMPLETE,INVENTORY_CHANGED of retailer 7"),
        "{out}"
    );
    let secret = out
        .lines()
        .find(|l| l.starts_with("whsec_"))
        .expect("the secret")
        .trim()
        .to_owned();
    assert!(secret.len() > 30, "{out}");
    let (ok, list) = run(&["webhook", "list"]);
    assert!(
        ok && list.contains("http://127.0.0.1:9/hook") && !list.contains(&secret),
        "{list}"
    );
    let key = SealingKey::load(&KeySource::File(dir.path().join("cli.db.sealing-key"))).unwrap();
    let pool = stockbatch::db::build_pool(&url, 1, Duration::from_secs(5)).unwrap();
    let sealed =
        stockbatch::db::notifications::list_subscriptions(&mut pool.get().unwrap(), None).unwrap();
    assert_eq!(
        key.open(&sealed[0].secret_sealed).unwrap(),
        secret,
        "sealed with the key file beside the database"
    );
    let (ok, out) = run(&[
        "webhook",
        "create",
        "--url",
        "http://10.0.0.1/",
        "--events",
        "*",
    ]);
    assert!(ok, "allowed by the environment: {out}");
    let (ok, out) = std::process::Command::new(Service::binary())
        .args([
            "webhook",
            "create",
            "--url",
            "http://10.0.0.1/",
            "--events",
            "*",
            "--database-url",
            &url,
        ])
        .output()
        .map(|o| {
            (
                o.status.success(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        })
        .unwrap();
    assert!(!ok && out.contains("are refused"), "{out}");
    let (ok, out) = run(&["webhook", "delete", "1"]);
    assert!(ok, "{out}");
    let (ok, out) = run(&["webhook", "delete", "1"]);
    assert!(!ok && out.contains("no webhook 1"), "{out}");
}

/// The fenced block of `language` that follows `after` in the README.
fn readme_block(after: &str, language: &str) -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let from = readme
        .find(after)
        .expect("the README's notifications section");
    let fence = format!("```{language}\n");
    let start = from + readme[from..].find(&fence).expect("the block") + fence.len();
    let end = start + readme[start..].find("```").unwrap();
    readme[start..end].to_owned()
}

#[test]
fn the_readme_verification_snippets_accept_real_deliveries_and_refuse_tampered_ones() {
    let app = spawn(TestDb::new(Backend::Sqlite), |_| {});
    let receiver = Receiver::start();
    let (_, secret) = subscribe(&app, &receiver.url(), &["BATCH_CREATE"], None);
    let job = app.create_job(json!("7"));
    app.post_batch(&job, json!([record("7", "L", "A", 1)]));
    let delivery = receiver.wait_until(WAIT, "one event", |got| !got.is_empty())[0].clone();
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body");
    let tampered = dir.path().join("tampered");
    std::fs::write(&body, &delivery.body).unwrap();
    std::fs::write(&tampered, [delivery.body.as_slice(), b" "].concat()).unwrap();
    let (ts, sig) = (
        delivery.header("Stockbatch-Timestamp"),
        delivery.header("Stockbatch-Signature"),
    );

    let python = readme_block("Verify it over the raw body", "python")
        + "import sys\nh = {'Stockbatch-Timestamp': sys.argv[2], 'Stockbatch-Signature': sys.argv[3]}\n\
           print(verified(sys.argv[1], h, open(sys.argv[4], 'rb').read()))\n";
    let node = readme_block("Node:", "js")
        + "const [secret, ts, sig, file] = process.argv.slice(1);\n\
           console.log(verified(secret, {'stockbatch-timestamp': ts, 'stockbatch-signature': sig}, require('fs').readFileSync(file)) ? 'True' : 'False');\n";
    for (program, args) in [
        ("python3", vec!["-c", python.as_str()]),
        ("node", vec!["-e", node.as_str()]),
    ] {
        for (file, expected) in [(&body, "True"), (&tampered, "False")] {
            let out = std::process::Command::new(program)
                .args(&args)
                .args([secret.as_str(), ts, sig, file.to_str().unwrap()])
                .output()
                .unwrap_or_else(|e| panic!("{program} must be installed to check the README: {e}"));
            let printed = String::from_utf8_lossy(&out.stdout);
            assert_eq!(
                printed.trim(),
                expected,
                "{program}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
