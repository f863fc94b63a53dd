//! What Fluent's own SDK relies on, through real HTTP on both backends: the
//! client_credentials grant, job results, every field of a record kept, batch-level fields
//! shown, and Batch Pre-Processing.

mod common;
#[path = "support/process.rs"]
mod process;

use common::*;
use process::numbers;
use reqwest::StatusCode;
use serde_json::{json, Value};
use stockbatch::auth::accounts::{create_client, ClientBinding};
use stockbatch::auth::Permission;

const RETAILER: &str = "197";

fn client_grant(app: &TestApp, client_id: &str, secret: &str) -> (StatusCode, Value) {
    token_request(
        &app.base,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret),
        ],
    )
}

backend_tests!(a_client_bound_to_a_retailer_gets_tokens_for_itself);
fn a_client_bound_to_a_retailer_gets_tokens_for_itself(backend: Backend) {
    let app = TestApp::spawn(backend);
    let secret = app.with_db(|conn| {
        let binding = ClientBinding {
            retailer_id: RETAILER,
            permissions: &[Permission::JobCreate, Permission::JobView],
        };
        create_client(conn, "erp", None, Some(binding)).unwrap()
    });
    let (status, tokens) = client_grant(&app, "erp", &secret);
    assert_eq!(status, StatusCode::OK, "{backend:?}: {tokens}");
    assert_eq!(tokens["Retailer_id"], 197);
    assert!(
        tokens.get("refresh_token").is_none(),
        "no refresh token: {tokens}"
    );
    let erp = client_with_token(tokens["access_token"].as_str().unwrap());
    let job = |retailer: &str| {
        read(
            erp.post(app.url("/api/v4.1/job"))
                .json(&json!({"name": "erp", "retailerId": retailer}))
                .send()
                .unwrap(),
        )
    };
    assert_eq!(job(RETAILER).0, StatusCode::OK);
    assert_eq!(
        job("198").0,
        StatusCode::FORBIDDEN,
        "{backend:?}: its retailer only"
    );
    let (status, _) = read(erp.get(app.url("/api/v4.1/inventory")).send().unwrap());
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "{backend:?}: its permissions only"
    );

    let (status, body) = client_grant(&app, "erp", "not the secret at all");
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_client"))
    );
    let (status, body) = client_grant(&app, CLIENT_ID, CLIENT_SECRET);
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unauthorized_client")),
        "{backend:?}: an unbound client only logs users in"
    );
    app.with_db(|conn| {
        stockbatch::db::accounts::set_client_disabled(conn, "erp", true).unwrap();
    });
    assert_eq!(job(RETAILER).0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        client_grant(&app, "erp", &secret).1["error"],
        "invalid_client"
    );
}

backend_tests!(job_results_say_which_batches_succeeded_and_what_failed);
fn job_results_say_which_batches_succeeded_and_what_failed(backend: Backend) {
    let app = TestApp::spawn(backend);
    let job = app.create_job(json!(RETAILER));
    let good = app.post_batch(
        &job,
        json!([record(RETAILER, "L", "A", 1), record(RETAILER, "L", "B", 2)]),
    );
    let bad = app.post_batch(
        &job,
        json!([record(RETAILER, "L", "C", 3), {"retailerId": RETAILER, "locationRef": "L", "qty": 1},
               record("198", "L", "D", 1)]),
    );
    app.wait_complete(&job, &good, 10);
    app.wait_complete(&job, &bad, 10);
    let again = app.post_batch(&job, json!([record(RETAILER, "L", "A", 1)]));
    app.wait_complete(&job, &again, 10);

    let (status, results) = app.get(&format!("/api/v4.1/job/{job}/results"));
    assert_eq!(status, StatusCode::OK, "{backend:?}: {results}");
    assert_eq!(results["id"], job.as_str());
    assert_eq!(results["status"], "OPEN");
    assert_eq!(
        (
            &results["totalBatches"],
            &results["successfulBatches"],
            &results["failedBatches"]
        ),
        (&json!(3), &json!(2), &json!(1))
    );
    assert_eq!(
        (&results["pendingBatches"], &results["runningBatches"]),
        (&json!(0), &json!(0))
    );
    assert_eq!(
        results["records"],
        json!({"total": 6, "applied": 4, "rejected": 2, "unchanged": 1})
    );
    let failed = &results["results"][1];
    assert_eq!(failed["batchId"], bad.as_str());
    assert_eq!(
        (&failed["processedEntities"], &failed["totalEntities"]),
        (&json!(3), &json!(3))
    );
    let codes: Vec<&str> = failed["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, vec!["400", "401"], "{backend:?}: {failed}");
    assert_eq!(results["results"][0]["errors"], json!([]));

    app.create_user("stranger", Some("198"), &Permission::ALL);
    let (status, _) = read(
        app.client_as("stranger")
            .get(app.url(&format!("/api/v4.1/job/{job}/results")))
            .send()
            .unwrap(),
    );
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "{backend:?}: another retailer's job"
    );
}

backend_tests!(nothing_a_client_sends_is_lost);
fn nothing_a_client_sends_is_lost(backend: Backend) {
    let app = TestApp::spawn(backend);
    let (status, job) = app.post(
        "/api/v4.1/job",
        &json!({"name": "sdk", "retailerId": RETAILER,
                "meta": {"description": "nightly", "maxBatchCount": 10, "preprocessing": "skip"}}),
    );
    assert_eq!(status, StatusCode::OK);
    let job = job["id"].as_str().unwrap();
    let (status, batch) = app.post(
        &format!("/api/v4.1/job/{job}/batch"),
        &json!({"action": "UPSERT", "entityType": "INVENTORY", "source": "SDK", "event": "NORMAL",
                "catalogueRef": "DEFAULT:197", "conditions": {"hasRelatedInventoryQuantities": false},
                "entities": [{"retailerId": RETAILER, "locationRef": "L", "skuRef": "S", "qty": 5,
                              "uom": "EA", "lot": "LOT-7", "expiry": "2027-01-31",
                              "effectiveFrom": "2026-12-01T00:00:00Z", "custom": {"aisle": 4}}]}),
    );
    assert_eq!(status, StatusCode::OK, "{batch}");
    let batch = batch["id"].as_str().unwrap();
    let done = app.wait_complete(job, batch, 10);
    for (field, value) in [
        ("source", json!("SDK")),
        ("event", json!("NORMAL")),
        ("catalogueRef", json!("DEFAULT:197")),
        (
            "conditions",
            json!({"hasRelatedInventoryQuantities": false}),
        ),
    ] {
        assert_eq!(done[field], value, "{backend:?} {field}: {done}");
    }
    let (_, job_view) = app.get(&format!("/api/v4.1/job/{job}"));
    assert_eq!(
        job_view["meta"],
        json!({"description": "nightly", "maxBatchCount": 10, "preprocessing": "skip"})
    );
    assert_eq!(job_view["batch"][0]["source"], "SDK");
    let (_, positions) = app.get(&format!(
        "/api/v4.1/inventory?retailerId={RETAILER}&skuRef=S"
    ));
    let p = &positions["results"][0];
    for (field, value) in [
        ("uom", json!("EA")),
        ("lot", json!("LOT-7")),
        ("expiry", json!("2027-01-31")),
        ("effectiveFrom", json!("2026-12-01T00:00:00Z")),
        ("custom", json!({"aisle": 4})),
    ] {
        assert_eq!(p[field], value, "{backend:?} {field}: {p}");
    }
    // A later record keeps the fields it leaves out, and replaces those it sends.
    let next = app.post_batch(job, json!([{"retailerId": RETAILER, "locationRef": "L", "skuRef": "S", "qty": 6, "lot": "LOT-8"}]));
    app.wait_complete(job, &next, 10);
    let (_, positions) = app.get(&format!(
        "/api/v4.1/inventory?retailerId={RETAILER}&skuRef=S"
    ));
    assert_eq!(
        (
            &positions["results"][0]["lot"],
            &positions["results"][0]["uom"]
        ),
        (&json!("LOT-8"), &json!("EA"))
    );
    // Fluent's account header is accepted and ignored.
    let (status, _) = read(
        app.client
            .get(app.url(&format!("/api/v4.1/job/{job}")))
            .header("fluent.account", "ACME")
            .send()
            .unwrap(),
    );
    assert_eq!(status, StatusCode::OK);
}

fn messages(batch: &Value) -> Vec<String> {
    batch["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["message"].as_str().unwrap().to_owned())
        .collect()
}

backend_tests!(batch_pre_processing_skips_what_did_not_change);
fn batch_pre_processing_skips_what_did_not_change(backend: Backend) {
    let app = TestApp::spawn(backend);
    let job = app.create_job(json!(RETAILER));
    let snapshot = json!([
        record(RETAILER, "L", "A", 1),
        record(RETAILER, "L", "B", 2),
        record(RETAILER, "L", "A", 1)
    ]);
    let first = app.post_batch(&job, snapshot.clone());
    let first = app.wait_complete(&job, &first, 10);
    assert_eq!(
        messages(&first),
        [
            "Inventory created",
            "Inventory created",
            "Inventory unchanged"
        ],
        "{backend:?}"
    );
    let versions = || {
        numbers(
            app.db.url(),
            "SELECT version AS n FROM inventory_positions ORDER BY id",
        )
    };
    let (before, movements) = (
        versions(),
        numbers(
            app.db.url(),
            "SELECT COUNT(*) AS n FROM inventory_movements",
        ),
    );
    let again = app.post_batch(&job, snapshot.clone());
    let again = app.wait_complete(&job, &again, 10);
    assert_eq!(messages(&again), ["Inventory unchanged"; 3], "{backend:?}");
    assert!(again["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["responseCode"] == 200));
    assert_eq!(versions(), before, "{backend:?}: no new version");
    assert_eq!(
        numbers(
            app.db.url(),
            "SELECT COUNT(*) AS n FROM inventory_movements"
        ),
        movements,
        "no movement"
    );
    assert_eq!(again["unchangedEntities"], 3);
    // Any other field changing is a change.
    let status = app.post_batch(&job, json!([{"retailerId": RETAILER, "locationRef": "L", "skuRef": "A", "qty": 1, "status": "INACTIVE"}]));
    assert_eq!(
        messages(&app.wait_complete(&job, &status, 10)),
        ["Inventory updated"]
    );

    // A job that skips it writes every record.
    let (_, skip) = app.post(
        "/api/v4.1/job",
        &json!({"name": "x", "retailerId": RETAILER, "meta": {"preprocessing": "skip"}}),
    );
    let skip = skip["id"].as_str().unwrap();
    let forced = app.post_batch(skip, snapshot.clone());
    assert_eq!(
        messages(&app.wait_complete(skip, &forced, 10)),
        ["Inventory updated"; 3],
        "{backend:?}"
    );
}

#[test]
fn the_server_can_turn_batch_pre_processing_off_for_everyone() {
    let app = TestApp::spawn_with(TestDb::new(Backend::Sqlite), |c| {
        c.api.batch_preprocessing = false
    });
    let job = app.create_job(json!(RETAILER));
    for expected in ["Inventory created", "Inventory updated"] {
        let batch = app.post_batch(&job, json!([record(RETAILER, "L", "A", 1)]));
        assert_eq!(messages(&app.wait_complete(&job, &batch, 10)), [expected]);
    }
}
