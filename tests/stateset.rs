//! StateSet batch operations through real HTTP, on both backends: the seed's examples
//! verbatim, every operation, option, status and error, Idempotency-Key, the item read
//! path, and the ledger shared with Fluent batches.

mod common;
#[path = "support/process.rs"]
mod process;

use std::time::Duration;

use common::*;
use process::numbers;
use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::{json, Value};

const BATCH: &str = "/api/v1/inventory/batch";
const RETAILER: &str = "197";

fn post(app: &TestApp, client: &Client, body: &Value) -> (StatusCode, Value) {
    read(client.post(app.url(BATCH)).json(body).send().unwrap())
}

/// Posts a batch that must complete; returns its view.
fn run(app: &TestApp, client: &Client, body: Value) -> Value {
    let (status, view) = post(app, client, &body);
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_ne!(view["status"], "processing", "{view}");
    view
}

fn results(view: &Value) -> Vec<(String, String)> {
    view["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["status"].as_str().unwrap().to_owned(),
                r["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Quantity per location of a SKU, from the item read path.
fn stock(app: &TestApp, client: &Client, sku: &str) -> Vec<(String, i64)> {
    let (status, item) = read(
        client
            .get(app.url(&format!("/api/v1/inventory/{sku}")))
            .send()
            .unwrap(),
    );
    if status == StatusCode::NOT_FOUND {
        return Vec::new();
    }
    assert_eq!(status, StatusCode::OK, "{item}");
    item["locations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["location"].as_str().unwrap().to_owned(),
                l["quantity"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn import(sku: &str, location: &str, quantity: i64) -> Value {
    json!({"sku": sku, "data": {"name": sku, "quantity": quantity, "location_id": location}})
}

fn adjust(sku: &str, kind: &str, quantity: i64) -> Value {
    json!({"sku": sku, "data": {"adjustment_type": kind, "quantity": quantity}})
}

backend_tests!(the_seed_examples_work_verbatim);
fn the_seed_examples_work_verbatim(backend: Backend) {
    let app = TestApp::spawn(backend);
    let shop = app.api_key_client(RETAILER, "DEFAULT");
    run(
        &app,
        &shop,
        json!({"operation": "import", "items": [
            import("WIDGET-001", "DEFAULT", 125), import("GADGET-002", "DEFAULT", 200),
            import("WIDGET-002", "DEFAULT", 10),
            import("WIDGET-001", "warehouse_001", 80), import("GADGET-002", "warehouse_001", 120)]}),
    );
    // The request example, exactly as the seed's curl sends it.
    let seed = r#"{
      "operation": "adjust",
      "items": [
        {
          "sku": "WIDGET-001",
          "data": {
            "adjustment_type": "absolute",
            "quantity": 150,
            "reason": "Cycle count correction"
          }
        },
        {
          "sku": "GADGET-002",
          "data": {
            "adjustment_type": "relative",
            "quantity": -25,
            "reason": "Damaged goods"
          }
        }
      ],
      "options": {
        "continue_on_error": true
      }
    }"#;
    let (status, view) = read(
        shop.post(app.url(BATCH))
            .header("content-type", "application/json")
            .body(seed)
            .send()
            .unwrap(),
    );
    assert_eq!(status, StatusCode::OK, "{backend:?}: {view}");
    assert!(view["batch_id"].as_str().unwrap().starts_with("batch_"));
    assert_eq!(view["status"], "completed");
    assert_eq!(
        view["summary"],
        json!({"total_items": 2, "processed": 2, "failed": 0, "skipped": 0})
    );
    let r = &view["results"];
    assert_eq!(r[0]["sku"], "WIDGET-001");
    assert_eq!(r[0]["status"], "success");
    assert_eq!(r[0]["message"], "Inventory adjusted successfully");
    assert_eq!(
        (
            &r[0]["data"]["previous_quantity"],
            &r[0]["data"]["new_quantity"],
            &r[0]["data"]["adjustment"]
        ),
        (&json!(125), &json!(150), &json!(25))
    );
    assert_eq!(
        (
            &r[1]["data"]["previous_quantity"],
            &r[1]["data"]["new_quantity"],
            &r[1]["data"]["adjustment"]
        ),
        (&json!(200), &json!(175), &json!(-25))
    );

    // Bulk update, bulk transfer, a cycle-count adjust with a reference, a dry-run import.
    let update = run(
        &app,
        &shop,
        json!({"operation": "update", "items": [
        {"sku": "WIDGET-001", "data": {"reorder_point": 100, "price": 29.99, "category": "Electronics"}},
        {"sku": "WIDGET-002", "data": {"reorder_point": 150, "price": 34.99, "category": "Electronics"}}]}),
    );
    assert_eq!(update["status"], "completed", "{update}");
    let transfer = run(
        &app,
        &shop,
        json!({"operation": "transfer", "items": [
        {"sku": "WIDGET-001", "data": {"from_location": "warehouse_001", "to_location": "warehouse_002", "quantity": 50}},
        {"sku": "GADGET-002", "data": {"from_location": "warehouse_001", "to_location": "warehouse_002", "quantity": 100}}]}),
    );
    assert_eq!(transfer["status"], "completed", "{transfer}");
    assert_eq!(
        transfer["results"][1]["data"],
        json!({"quantity": 100,
               "from": {"location": "warehouse_001", "previous_quantity": 120, "new_quantity": 20},
               "to": {"location": "warehouse_002", "previous_quantity": 0, "new_quantity": 100}})
    );
    let counted = run(
        &app,
        &shop,
        json!({"operation": "adjust", "items": [
        {"sku": "WIDGET-001", "data": {"adjustment_type": "absolute", "quantity": 148,
                                       "reason": "Monthly cycle count", "reference": "CC-1764576000000"}}]}),
    );
    assert_eq!(counted["results"][0]["data"]["adjustment"], -2);
    let dry = run(
        &app,
        &shop,
        json!({"operation": "import", "items": [
        {"sku": "NEW-1", "data": {"name": "New", "description": "d", "quantity": 7, "price": 9.5,
                                  "cost": 4.25, "location_id": "warehouse_001", "category": "Tools",
                                  "reorder_point": 3}}],
        "options": {"validate_only": true}}),
    );
    assert_eq!(dry["validate_only"], true);
    assert_eq!(dry["results"][0]["data"]["created"], true);
    assert!(
        stock(&app, &shop, "NEW-1").is_empty(),
        "{backend:?}: a dry run writes nothing"
    );

    let item = read(
        shop.get(app.url("/api/v1/inventory/WIDGET-001"))
            .send()
            .unwrap(),
    )
    .1;
    assert_eq!(item["properties"]["price"], 29.99);
    assert_eq!(item["properties"]["name"], "WIDGET-001");
    assert_eq!(item["total_quantity"], 148 + 30 + 50);
}

backend_tests!(relative_changes_never_take_stock_below_zero_and_transfers_are_all_or_nothing);
fn relative_changes_never_take_stock_below_zero_and_transfers_are_all_or_nothing(backend: Backend) {
    let app = TestApp::spawn(backend);
    let shop = app.api_key_client(RETAILER, "W1");
    run(
        &app,
        &shop,
        json!({"operation": "import", "items": [import("A", "W1", 12)]}),
    );
    let view = run(
        &app,
        &shop,
        json!({"operation": "adjust", "items": [adjust("A", "relative", -25)]}),
    );
    assert_eq!(view["status"], "failed", "{backend:?}: {view}");
    assert_eq!(
        results(&view),
        vec![(
            "error".into(),
            "insufficient stock: 12 on hand, 25 requested".into()
        )]
    );
    let view = run(
        &app,
        &shop,
        json!({"operation": "transfer", "items": [
        {"sku": "A", "data": {"from_location": "W1", "to_location": "W2", "quantity": 13}}]}),
    );
    assert_eq!(
        results(&view)[0].1,
        "insufficient stock: 12 on hand, 13 requested"
    );
    assert_eq!(
        stock(&app, &shop, "A"),
        vec![("W1".to_owned(), 12)],
        "{backend:?}: neither side moved"
    );
    let view = run(
        &app,
        &shop,
        json!({"operation": "cycle_count", "items": [
        {"sku": "A", "data": {"counted_quantity": 9, "reason": "count", "location": "W1"}}]}),
    );
    assert_eq!(
        view["results"][0]["data"],
        json!({"location": "W1", "previous_quantity": 12, "counted_quantity": 9, "new_quantity": 9, "variance": -3})
    );
    let view = run(
        &app,
        &shop,
        json!({"operation": "update", "items": [
        {"sku": "NOPE", "data": {"price": 1}}]}),
    );
    assert_eq!(
        results(&view)[0].1,
        "no inventory item NOPE: import it first"
    );
}

backend_tests!(stopping_at_the_first_error_keeps_what_came_before_and_skips_the_rest);
fn stopping_at_the_first_error_keeps_what_came_before_and_skips_the_rest(backend: Backend) {
    let app = TestApp::spawn(backend);
    let shop = app.api_key_client(RETAILER, "W1");
    let items = json!([adjust("A", "relative", 5), adjust("A", "relative", -20),
                       adjust("A", "relative", 1), {"sku": "B", "data": {"quantity": 1}}]);
    let view = run(&app, &shop, json!({"operation": "adjust", "items": items}));
    assert_eq!(view["status"], "partial", "{backend:?}: {view}");
    assert_eq!(
        view["summary"],
        json!({"total_items": 4, "processed": 1, "failed": 1, "skipped": 2})
    );
    let statuses: Vec<String> = results(&view).into_iter().map(|(s, _)| s).collect();
    assert_eq!(statuses, ["success", "error", "skipped", "skipped"]);
    assert_eq!(stock(&app, &shop, "A"), vec![("W1".to_owned(), 5)]);
    // Carrying on: every item is tried on its own, in order.
    let view = run(
        &app,
        &shop,
        json!({"operation": "adjust", "items": items,
                                       "options": {"continue_on_error": true}}),
    );
    let statuses: Vec<String> = results(&view).into_iter().map(|(s, _)| s).collect();
    assert_eq!(statuses, ["success", "error", "success", "error"]);
    assert_eq!(
        results(&view)[3].1,
        "'adjustment_type' is required: absolute or relative"
    );
    assert_eq!(view["results"][2]["data"]["previous_quantity"], 10);
    assert_eq!(stock(&app, &shop, "A"), vec![("W1".to_owned(), 11)]);
}

backend_tests!(a_dry_run_answers_what_a_real_run_would_and_writes_nothing);
fn a_dry_run_answers_what_a_real_run_would_and_writes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend);
    let shop = app.api_key_client(RETAILER, "W1");
    run(
        &app,
        &shop,
        json!({"operation": "import", "items": [import("A", "W1", 10)]}),
    );
    let items = json!([
        adjust("A", "relative", -4),
        adjust("A", "relative", -4),
        adjust("A", "relative", -4),
        adjust("A", "absolute", 3)
    ]);
    let movements_before = numbers(
        app.db.url(),
        "SELECT COUNT(*) AS n FROM inventory_movements",
    );
    let dry = run(
        &app,
        &shop,
        json!({"operation": "adjust", "items": items,
                                      "options": {"validate_only": true, "continue_on_error": true}}),
    );
    assert_eq!(
        stock(&app, &shop, "A"),
        vec![("W1".to_owned(), 10)],
        "{backend:?}"
    );
    assert_eq!(
        numbers(
            app.db.url(),
            "SELECT COUNT(*) AS n FROM inventory_movements"
        ),
        movements_before
    );
    let real = run(
        &app,
        &shop,
        json!({"operation": "adjust", "items": items,
                                       "options": {"continue_on_error": true}}),
    );
    assert_eq!(dry["results"], real["results"], "{backend:?}");
    assert_eq!(
        (dry["status"].clone(), dry["summary"].clone()),
        (real["status"].clone(), real["summary"].clone())
    );
    assert_eq!(stock(&app, &shop, "A"), vec![("W1".to_owned(), 3)]);
}

backend_tests!(bad_requests_are_refused_whole_and_store_nothing);
fn bad_requests_are_refused_whole_and_store_nothing(backend: Backend) {
    let app = TestApp::spawn(backend);
    let shop = app.api_key_client(RETAILER, "W1");
    let many: Vec<Value> = (0..1001)
        .map(|i| adjust(&format!("S{i}"), "relative", 1))
        .collect();
    for body in [
        json!({"items": [adjust("A", "relative", 1)]}),
        json!({"operation": "delete", "items": [adjust("A", "relative", 1)]}),
        json!({"operation": "adjust"}),
        json!({"operation": "adjust", "items": []}),
        json!({"operation": "adjust", "items": many}),
        json!({"operation": "adjust", "items": [adjust("A", "relative", 1)], "options": "fast"}),
        json!({"operation": "adjust", "items": [adjust("A", "relative", 1)],
               "options": {"notification_email": "ops at company"}}),
        json!({"operation": "adjust", "items": [{"sku": "", "data": {}}]}),
        json!({"operation": "adjust", "items": [{"sku": "A", "data": [1]}]}),
        json!([1]),
    ] {
        let (status, answer) = post(&app, &shop, &body);
        error_messages(backend, status, &answer, StatusCode::BAD_REQUEST);
    }
    assert_eq!(
        numbers(app.db.url(), "SELECT COUNT(*) AS n FROM batches"),
        vec![0]
    );
    let (status, answer) = read(
        shop.post(app.url(BATCH))
            .header("content-type", "text/plain")
            .body("{}")
            .send()
            .unwrap(),
    );
    error_messages(backend, status, &answer, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

backend_tests!(the_api_acts_for_one_retailer_with_permissions_and_a_default_location);
fn the_api_acts_for_one_retailer_with_permissions_and_a_default_location(backend: Backend) {
    let app = TestApp::spawn(backend);
    let body = json!({"operation": "adjust", "items": [adjust("A", "relative", 1)]});
    // The administrator belongs to no retailer.
    let (status, answer) = post(&app, &app.client, &body);
    let messages = error_messages(backend, status, &answer, StatusCode::FORBIDDEN);
    assert!(
        messages[0].contains("acts for one retailer"),
        "{messages:?}"
    );
    app.create_user(
        "viewer",
        Some(RETAILER),
        &[stockbatch::auth::Permission::BatchView],
    );
    let (status, answer) = post(&app, &app.client_as("viewer"), &body);
    error_messages(backend, status, &answer, StatusCode::FORBIDDEN);
    let (status, _) = read(
        app.anonymous()
            .post(app.url(BATCH))
            .json(&body)
            .send()
            .unwrap(),
    );
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // An API key's default location; a user's is DEFAULT.
    let store = app.api_key_client(RETAILER, "STORE-9");
    let view = run(&app, &store, body.clone());
    assert_eq!(view["results"][0]["data"]["location"], "STORE-9");
    app.create_user("clerk", Some(RETAILER), &stockbatch::auth::Permission::ALL);
    let clerk = app.client_as("clerk");
    let view = run(&app, &clerk, body.clone());
    assert_eq!(view["results"][0]["data"]["location"], "DEFAULT");

    // Another retailer sees neither the batch nor the item.
    let other = app.api_key_client("198", "DEFAULT");
    let path = format!("{BATCH}/{}", view["batch_id"].as_str().unwrap());
    assert_eq!(
        read(clerk.get(app.url(&path)).send().unwrap()).0,
        StatusCode::OK
    );
    let (status, answer) = read(other.get(app.url(&path)).send().unwrap());
    error_messages(backend, status, &answer, StatusCode::NOT_FOUND);
    let (status, _) = read(other.get(app.url("/api/v1/inventory/A")).send().unwrap());
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A Fluent batch is not a StateSet batch.
    let job = app.create_job(json!(RETAILER));
    let fluent = app.post_batch(&job, json!([record(RETAILER, "L", "F", 1)]));
    let (status, _) = read(
        clerk
            .get(app.url(&format!("{BATCH}/batch_{fluent}")))
            .send()
            .unwrap(),
    );
    assert_eq!(status, StatusCode::NOT_FOUND, "{backend:?}");
}

backend_tests!(a_batch_that_outlasts_the_wait_answers_202_and_completes_later);
fn a_batch_that_outlasts_the_wait_answers_202_and_completes_later(backend: Backend) {
    // An API-only node: nothing runs its batches until an executor does.
    let app = TestApp::spawn_with(TestDb::new(backend), |c| {
        c.role = stockbatch::Role::Api;
        c.api.stateset_wait = Duration::from_millis(100);
    });
    let shop = app.api_key_client(RETAILER, "W1");
    let (status, view) = post(
        &app,
        &shop,
        &json!({"operation": "adjust", "items": [adjust("A", "relative", 3)]}),
    );
    assert_eq!(status, StatusCode::ACCEPTED, "{backend:?}: {view}");
    assert_eq!(view["status"], "processing");
    assert_eq!(view["results"], json!([]));
    let path = format!("{BATCH}/{}", view["batch_id"].as_str().unwrap());
    assert_eq!(
        read(shop.get(app.url(&path)).send().unwrap()).1["status"],
        "processing"
    );
    let executor = app.executor();
    assert!(matches!(
        executor.run_once().unwrap(),
        stockbatch::executor::Step::Processed(_)
    ));
    let (status, done) = read(shop.get(app.url(&path)).send().unwrap());
    assert_eq!(status, StatusCode::OK);
    assert_eq!(done["status"], "completed", "{backend:?}: {done}");
    assert_eq!(done["results"][0]["data"]["new_quantity"], 3);
}

backend_tests!(an_idempotency_key_answers_a_retry_as_the_first_time_and_applies_nothing_again);
fn an_idempotency_key_answers_a_retry_as_the_first_time_and_applies_nothing_again(
    backend: Backend,
) {
    let app = TestApp::spawn(backend);
    let shop = app.api_key_client(RETAILER, "W1");
    let body = json!({"operation": "adjust", "items": [adjust("A", "relative", 5)]});
    let send = |client: &Client, key: &str, body: &Value| {
        read(
            client
                .post(app.url(BATCH))
                .header("Idempotency-Key", key)
                .json(body)
                .send()
                .unwrap(),
        )
    };
    let (status, first) = send(&shop, "order-1", &body);
    assert_eq!(status, StatusCode::OK, "{first}");
    let (status, again) = send(&shop, "order-1", &body);
    assert_eq!((status, &again), (StatusCode::OK, &first), "{backend:?}");
    assert_eq!(
        stock(&app, &shop, "A"),
        vec![("W1".to_owned(), 5)],
        "applied once"
    );
    let (status, answer) = send(
        &shop,
        "order-1",
        &json!({"operation": "adjust", "items": [adjust("A", "relative", 6)]}),
    );
    let messages = error_messages(backend, status, &answer, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(messages[0].contains("Idempotency-Key"), "{messages:?}");
    // Keys are scoped to the retailer.
    let other = app.api_key_client("198", "W1");
    let (_, theirs) = send(&other, "order-1", &body);
    assert_ne!(theirs["batch_id"], first["batch_id"]);
    let (status, answer) = send(&shop, "", &body);
    error_messages(backend, status, &answer, StatusCode::BAD_REQUEST);

    // Concurrent retries of one request: one batch, applied once, one answer.
    let answers: Vec<Value> = std::thread::scope(|scope| {
        let sends: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    send(
                        &shop,
                        "order-2",
                        &json!({"operation": "adjust", "items": [adjust("A", "relative", 1)]}),
                    )
                })
            })
            .collect();
        sends.into_iter().map(|s| s.join().unwrap().1).collect()
    });
    assert!(
        answers
            .iter()
            .all(|a| a["batch_id"] == answers[0]["batch_id"]),
        "{answers:?}"
    );
    assert_eq!(
        stock(&app, &shop, "A"),
        vec![("W1".to_owned(), 6)],
        "{backend:?}"
    );

    // Fluent's creating POSTs too.
    let job_body = json!({"name": "daily", "retailerId": RETAILER});
    let job = |key| {
        read(
            app.client
                .post(app.url("/api/v4.1/job"))
                .header("Idempotency-Key", key)
                .json(&job_body)
                .send()
                .unwrap(),
        )
    };
    assert_eq!(job("job-1").1, job("job-1").1);
    let job_id = job("job-1").1["id"].as_str().unwrap().to_owned();
    let batch_body = json!({"action": "UPSERT", "entityType": "INVENTORY", "entities": [record(RETAILER, "W1", "F", 4)]});
    let batch = |key| {
        read(
            app.client
                .post(app.url(&format!("/api/v4.1/job/{job_id}/batch")))
                .header("Idempotency-Key", key)
                .json(&batch_body)
                .send()
                .unwrap(),
        )
    };
    let (first, second) = (batch("b-1"), batch("b-1"));
    assert_eq!(
        (first.0, &first.1),
        (StatusCode::OK, &second.1),
        "{backend:?}"
    );
    assert_eq!(
        numbers(
            app.db.url(),
            "SELECT COUNT(*) AS n FROM batches WHERE job_id IS NOT NULL"
        ),
        vec![1]
    );
}

backend_tests!(both_apis_act_on_one_stock_and_one_ledger);
fn both_apis_act_on_one_stock_and_one_ledger(backend: Backend) {
    let app = TestApp::spawn(backend);
    let job = app.create_job(json!(RETAILER));
    let fluent = app.post_batch(&job, json!([record(RETAILER, "W1", "A", 100)]));
    app.wait_complete(&job, &fluent, 10);
    let shop = app.api_key_client(RETAILER, "W1");
    let view = run(
        &app,
        &shop,
        json!({"operation": "transfer", "items": [
        {"sku": "A", "data": {"from_location": "W1", "to_location": "W2", "quantity": 30, "reason": "rebalance", "reference": "T-1"}}]}),
    );
    assert_eq!(
        view["results"][0]["data"]["from"]["previous_quantity"], 100,
        "{backend:?}"
    );
    let fluent = app.post_batch(&job, json!([{"retailerId": RETAILER, "locationRef": "W2", "skuRef": "A", "qty": 45, "ref": "ERP-9"}]));
    app.wait_complete(&job, &fluent, 10);
    run(
        &app,
        &shop,
        json!({"operation": "adjust", "items": [
        {"sku": "A", "data": {"adjustment_type": "relative", "quantity": -5, "location": "W2"}}]}),
    );

    // The Fluent read path sees the StateSet transfer; StateSet sees the Fluent upsert.
    let (_, positions) = app.get(&format!(
        "/api/v4.1/inventory?retailerId={RETAILER}&skuRef=A"
    ));
    let qty: Vec<(String, i64)> = positions["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["locationRef"].as_str().unwrap().to_owned(),
                p["qty"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        qty,
        vec![("W1".to_owned(), 70), ("W2".to_owned(), 40)],
        "{backend:?}"
    );

    let (status, ledger) = app.get(&format!(
        "/api/v4.1/inventory/movements?retailerId={RETAILER}&skuRef=A&locationRef=W2"
    ));
    assert_eq!(status, StatusCode::OK, "{ledger}");
    let moves: Vec<(String, String, i64, i64, i64)> = ledger["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["api"].as_str().unwrap().to_owned(),
                m["operation"].as_str().unwrap().to_owned(),
                m["previousQty"].as_i64().unwrap(),
                m["newQty"].as_i64().unwrap(),
                m["delta"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        moves,
        vec![
            ("stateset".into(), "transfer".into(), 0, 30, 30),
            ("fluent".into(), "UPSERT".into(), 30, 45, 15),
            ("stateset".into(), "adjust".into(), 45, 40, -5),
        ],
        "{backend:?}"
    );
    assert_eq!(ledger["results"][0]["reason"], "rebalance");
    assert_eq!(ledger["results"][0]["reference"], "T-1");
    assert_eq!(ledger["results"][1]["reference"], "ERP-9");

    // Every position's chain: each movement starts where the one before ended, and the
    // last ends at the position's quantity.
    let (_, all) = app.get(&format!(
        "/api/v4.1/inventory/movements?retailerId={RETAILER}&count=5000"
    ));
    for (location, quantity) in qty {
        let chain: Vec<&Value> = all["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["locationRef"] == location.as_str())
            .collect();
        assert_eq!(chain[0]["previousQty"], 0);
        for pair in chain.windows(2) {
            assert_eq!(
                pair[0]["newQty"], pair[1]["previousQty"],
                "{backend:?} {location}"
            );
        }
        assert_eq!(chain.last().unwrap()["newQty"], quantity);
    }

    // Another retailer's user sees none of it; paging and bad parameters as elsewhere.
    app.create_user("stranger", Some("198"), &stockbatch::auth::Permission::ALL);
    let (_, theirs) = read(
        app.client_as("stranger")
            .get(app.url("/api/v4.1/inventory/movements"))
            .send()
            .unwrap(),
    );
    assert_eq!(theirs["total"], 0);
    let (_, page) = app.get(&format!(
        "/api/v4.1/inventory/movements?retailerId={RETAILER}&start=2&count=1"
    ));
    assert_eq!(
        (
            page["total"].as_i64(),
            page["results"].as_array().unwrap().len()
        ),
        (Some(5), 1)
    );
    let (status, body) = app.get("/api/v4.1/inventory/movements?sku=A");
    error_messages(backend, status, &body, StatusCode::BAD_REQUEST);
}
