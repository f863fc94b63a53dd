//! Batches: posting, statuses, results and their paging, record-level checks, ordering.

mod common;
use common::*;

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{json, Value};

fn batch_path(job: &str, batch: &str) -> String {
    format!("/api/v4.1/job/{job}/batch/{batch}")
}

fn results(backend: Backend, body: &Value) -> &Vec<Value> {
    body["results"]
        .as_array()
        .unwrap_or_else(|| panic!("{backend:?}: no results array: {body}"))
}

fn entity_refs(backend: Backend, body: &Value) -> Vec<String> {
    results(backend, body)
        .iter()
        .map(|r| r["entityRef"].as_str().unwrap_or("<none>").to_owned())
        .collect()
}

/// The inventory of `retailer`, all of it (at most 5000 positions).
fn inventory(app: &TestApp, retailer: &str) -> Vec<Value> {
    let (status, body) = app.get(&format!(
        "/api/v4.1/inventory?retailerId={retailer}&count=5000"
    ));
    assert_eq!(status, StatusCode::OK, "{:?}: {body}", app.db.backend());
    body["results"].as_array().expect("results").clone()
}

fn position<'a>(positions: &'a [Value], location: &str, sku: &str) -> Option<&'a Value> {
    positions
        .iter()
        .find(|p| p["locationRef"] == location && p["skuRef"] == sku)
}

backend_tests!(a_batch_is_accepted_then_pending_or_running_then_complete);
fn a_batch_is_accepted_then_pending_or_running_then_complete(backend: Backend) {
    let app = TestApp::spawn(backend);
    let job = app.create_job(json!("197"));
    let entities: Vec<Value> = (0..300)
        .map(|i| record("197", "L1", &format!("S{i}"), i))
        .collect();
    let (status, created) = app.post(
        &format!("/api/v4.1/job/{job}/batch"),
        &json!({"action": "UPSERT", "entityType": "INVENTORY", "entities": entities}),
    );
    assert_eq!(status, StatusCode::OK, "{backend:?}: {created}");
    assert_eq!(
        created.as_object().map(|o| o.len()),
        Some(1),
        "{backend:?}: only `id` expected: {created}"
    );
    let batch = created["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{backend:?}: id is not a string: {created}"))
        .to_owned();

    let (status, early) = app.get(&batch_path(&job, &batch));
    assert_eq!(status, StatusCode::OK, "{backend:?}: {early}");
    assert_eq!(early["batchId"], batch.as_str(), "{backend:?}: {early}");
    assert_eq!(early["entityType"], "INVENTORY", "{backend:?}: {early}");
    assert_eq!(early["total"], 300, "{backend:?}: {early}");
    let early_status = early["status"].as_str().expect("status");
    match early_status {
        // Results are written when the batch completes.
        "PENDING" | "RUNNING" => {
            assert_eq!(early["results"], json!([]), "{backend:?}: {early}")
        }
        "COMPLETE" => assert_eq!(results(backend, &early).len(), 100, "{backend:?}"),
        other => panic!("{backend:?}: unexpected status {other}: {early}"),
    }

    let done = app.wait_complete(&job, &batch, 300);
    assert_eq!(done["status"], "COMPLETE", "{backend:?}: {done}");
    assert_eq!(done["batchId"], batch.as_str(), "{backend:?}: {done}");
    assert_eq!(done["jobId"], job.as_str(), "{backend:?}: {done}");
    assert_eq!(done["entityType"], "INVENTORY", "{backend:?}: {done}");
    assert_eq!(done["total"], 300, "{backend:?}: {done}");
    assert_eq!(done["start"], 1, "{backend:?}: {done}");
    assert_eq!(done["count"], 300, "{backend:?}: {done}");
    let created_on = done["createdOn"].as_str().expect("createdOn");
    assert!(
        created_on.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(created_on).is_ok(),
        "{backend:?}: {created_on}"
    );
    let results = results(backend, &done);
    assert_eq!(results.len(), 300, "{backend:?}");
    assert!(
        results.iter().all(|r| r["responseCode"] == 200),
        "{backend:?}: {done}"
    );
}

backend_tests!(unknown_batches_are_404);
fn unknown_batches_are_404(backend: Backend) {
    let app = TestApp::spawn(backend);
    let job = app.create_job(json!("197"));
    let other_job = app.create_job(json!("197"));
    let batch = app.post_batch(&job, json!([record("197", "L1", "S1", 1)]));
    let unknown = batch.parse::<i64>().unwrap() + 100;
    for path in [
        batch_path(&job, &unknown.to_string()),
        batch_path(&job, "abc"),
        batch_path(&job, "0"),
        // A batch is only found under its own job.
        batch_path(&other_job, &batch),
        batch_path("999999", &batch),
        batch_path("abc", &batch),
    ] {
        let (status, body) = app.get(&path);
        error_messages(backend, status, &body, StatusCode::NOT_FOUND);
    }
    let (status, body) = app.get(&batch_path(&job, &batch));
    assert_eq!(status, StatusCode::OK, "{backend:?}: {body}");
}

backend_tests!(the_fluent_docs_example_is_applied);
fn the_fluent_docs_example_is_applied(backend: Backend) {
    const EXAMPLE: &str = r#"{"action":"UPSERT","entityType":"INVENTORY","source":"batch","event":"InventoryChanged","catalogueRef":"DEFAULT:197","conditions":{"preprocessing":"skip"},"entities":[{"locationRef":"158","qty":10,"correctedQty":11,"reservedQty":12,"skuRef":"29SPM0020X96-1-8","retailerId":197}]}"#;
    let app = TestApp::spawn(backend);
    let job = app.create_job(json!("197"));
    let (status, created) = app.post_raw(
        &format!("/api/v4.1/job/{job}/batch"),
        Some("application/json"),
        EXAMPLE,
    );
    assert_eq!(status, StatusCode::OK, "{backend:?}: {created}");
    let batch = created["id"].as_str().expect("batch id").to_owned();
    let done = app.wait_complete(&job, &batch, 10);
    assert_eq!(done["total"], 1, "{backend:?}: {done}");
    let result = &done["results"][0];
    assert!(
        result["responseCode"].is_i64() && result["responseCode"] == 200,
        "{backend:?}: {done}"
    );
    assert_eq!(
        result["message"], "Inventory created",
        "{backend:?}: {done}"
    );
    assert_eq!(
        result["entityRef"], "29SPM0020X96-1-8:158",
        "{backend:?}: {done}"
    );
    let entity_id = result["entityId"]
        .as_str()
        .unwrap_or_else(|| panic!("{backend:?}: entityId is not a string: {done}"));

    let (status, listed) =
        app.get("/api/v4.1/inventory?retailerId=197&skuRef=29SPM0020X96-1-8&locationRef=158");
    assert_eq!(status, StatusCode::OK, "{backend:?}: {listed}");
    assert_eq!(listed["total"], 1, "{backend:?}: {listed}");
    let p = &listed["results"][0];
    assert_eq!(p["id"], entity_id, "{backend:?}: {listed}");
    assert_eq!(p["retailerId"], "197", "{backend:?}: {listed}");
    assert_eq!(p["skuRef"], "29SPM0020X96-1-8", "{backend:?}: {listed}");
    assert_eq!(p["locationRef"], "158", "{backend:?}: {listed}");
    assert_eq!(p["qty"], 10, "{backend:?}: {listed}");
    assert_eq!(p["correctedQty"], 11, "{backend:?}: {listed}");
    assert_eq!(p["reservedQty"], 12, "{backend:?}: {listed}");
    assert_eq!(p["type"], "LAST_ON_HAND", "{backend:?}: {listed}");
}

backend_tests!(results_are_paged);
fn results_are_paged(backend: Backend) {
    let app = TestApp::spawn(backend);
    let job = app.create_job(json!("197"));
    let sku = |i: usize| format!("SKU-{i:04}");
    let entities: Vec<Value> = (1..=250)
        .map(|i| record("197", "L1", &sku(i), i as i64))
        .collect();
    let batch = app.post_batch(&job, json!(entities));
    app.wait_complete(&job, &batch, 1);
    let expect_refs = |range: std::ops::RangeInclusive<usize>| -> Vec<String> {
        range.map(|i| format!("{}:L1", sku(i))).collect()
    };
    let page = |query: &str| -> Value {
        let (status, body) = app.get(&format!("{}{query}", batch_path(&job, &batch)));
        assert_eq!(status, StatusCode::OK, "{backend:?}: {query}: {body}");
        body
    };
    let assert_page = |body: &Value, start: i64, count: i64, refs: Vec<String>| {
        assert_eq!(body["start"], start, "{backend:?}: {body}");
        assert_eq!(body["count"], count, "{backend:?}: {body}");
        assert_eq!(body["total"], 250, "{backend:?}: {body}");
        assert_eq!(entity_refs(backend, body), refs, "{backend:?}");
    };

    assert_page(&page(""), 1, 100, expect_refs(1..=100));
    assert_page(&page("?start=1&count=100"), 1, 100, expect_refs(1..=100));
    assert_page(
        &page("?start=101&count=50"),
        101,
        50,
        expect_refs(101..=150),
    );
    assert_page(
        &page("?start=201&count=100"),
        201,
        100,
        expect_refs(201..=250),
    );
    assert_page(&page("?start=250&count=1"), 250, 1, expect_refs(250..=250));
    assert_page(&page("?start=251"), 251, 100, vec![]);
    assert_page(&page("?start=1000"), 1000, 100, vec![]);
    assert_page(
        &page("?start=1000000000000"),
        1_000_000_000_000,
        100,
        vec![],
    );
    assert_page(
        &page(&format!("?start={}", i64::MAX)),
        i64::MAX,
        100,
        vec![],
    );
    assert_page(&page("?count=5000"), 1, 5000, expect_refs(1..=250));
    // Consecutive pages cover the batch exactly once.
    let mut all = Vec::new();
    for start in (1..=250).step_by(60) {
        all.extend(entity_refs(
            backend,
            &page(&format!("?start={start}&count=60")),
        ));
    }
    assert_eq!(all, expect_refs(1..=250), "{backend:?}");
    // Each result of the middle page is the record at its position.
    let middle = page("?start=101&count=50");
    for (offset, r) in results(backend, &middle).iter().enumerate() {
        assert_eq!(r["responseCode"], 200, "{backend:?}: {r}");
        assert_eq!(r["message"], "Inventory created", "{backend:?}: {r}");
        assert!(r["entityId"].is_string(), "{backend:?}: {r}");
        assert_eq!(
            r["entityRef"],
            format!("{}:L1", sku(101 + offset)),
            "{backend:?}"
        );
    }

    for bad in [
        "?count=5001",
        "?count=0",
        "?count=-5",
        "?start=0",
        "?start=-1",
        "?count=abc",
        "?start=abc",
        "?count=1.5",
        "?count=1000000000000",
        "?count=99999999999999999999999",
    ] {
        let (status, body) = app.get(&format!("{}{bad}", batch_path(&job, &batch)));
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{backend:?}: {bad}: {body}"
        );
        error_messages(backend, status, &body, StatusCode::BAD_REQUEST);
    }
    // Both problems of one query are listed.
    let (status, body) = app.get(&format!("{}?start=0&count=0", batch_path(&job, &batch)));
    let messages = error_messages(backend, status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(messages.len(), 2, "{backend:?}: {body}");
}

backend_tests!(record_level_problems_do_not_refuse_the_batch);
fn record_level_problems_do_not_refuse_the_batch(backend: Backend) {
    let app = TestApp::spawn(backend);
    let job = app.create_job(json!("197"));
    let long = "l".repeat(256);
    let entities = json!([
        record("197", "L1", "GOOD-1", 5),
        {"retailerId": "197", "locationRef": "L1", "qty": 1},
        {"retailerId": "197", "locationRef": "L1", "skuRef": "FLOAT", "qty": 1.5},
        {"retailerId": "197", "locationRef": "L1", "skuRef": "GOOD-2", "qty": "10"},
        {"retailerId": "197", "locationRef": "L1", "skuRef": "ABC", "qty": "abc"},
        {"retailerId": "197", "locationRef": "L1", "skuRef": "NEG", "qty": -1},
        {"retailerId": "197", "locationRef": long, "skuRef": "LONG", "qty": 1},
        record("198", "L1", "OTHER", 7),
        [1],
        "not a record",
        {"retailerId": 197, "locationRef": "L2", "skuRef": "GOOD-3", "qty": 0},
        {"retailerId": "197", "locationRef": "L1", "skuRef": "NOQTY"},
    ]);
    let batch = app.post_batch(&job, entities);
    let done = app.wait_complete(&job, &batch, 100);
    assert_eq!(done["status"], "COMPLETE", "{backend:?}: {done}");
    assert_eq!(done["total"], 12, "{backend:?}: {done}");
    let results = results(backend, &done);
    assert_eq!(results.len(), 12, "{backend:?}: {done}");

    // (index, responseCode, text the message must contain)
    let expected: [(usize, i64, &str); 12] = [
        (0, 200, "Inventory created"),
        (1, 400, "'skuRef'"),
        (2, 400, "'qty'"),
        (3, 200, "Inventory created"),
        (4, 400, "'qty'"),
        (5, 400, "'qty'"),
        (6, 400, "'locationRef'"),
        (7, 401, "'retailerId'"),
        (8, 400, "object"),
        (9, 400, "object"),
        (10, 200, "Inventory created"),
        (11, 400, "'qty'"),
    ];
    for (i, code, text) in expected {
        let r = &results[i];
        assert_eq!(r["responseCode"], code, "{backend:?}: record {i}: {r}");
        let message = r["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(text),
            "{backend:?}: record {i}: {message:?} should contain {text:?}"
        );
        if code == 200 {
            assert!(r["entityId"].is_string(), "{backend:?}: record {i}: {r}");
        } else {
            assert!(r["entityId"].is_null(), "{backend:?}: record {i}: {r}");
        }
    }
    assert_eq!(results[0]["entityRef"], "GOOD-1:L1", "{backend:?}");
    assert_eq!(results[3]["entityRef"], "GOOD-2:L1", "{backend:?}");
    assert_eq!(results[7]["entityRef"], "OTHER:L1", "{backend:?}");
    assert_eq!(results[10]["entityRef"], "GOOD-3:L2", "{backend:?}");

    let positions = inventory(&app, "197");
    assert_eq!(positions.len(), 3, "{backend:?}: {positions:?}");
    for (location, sku, qty, result) in [
        ("L1", "GOOD-1", 5, 0),
        ("L1", "GOOD-2", 10, 3),
        ("L2", "GOOD-3", 0, 10),
    ] {
        let p = position(&positions, location, sku)
            .unwrap_or_else(|| panic!("{backend:?}: {sku} not stored: {positions:?}"));
        assert_eq!(p["qty"], qty, "{backend:?}: {p}");
        assert_eq!(p["id"], results[result]["entityId"], "{backend:?}: {p}");
    }
    assert!(inventory(&app, "198").is_empty(), "{backend:?}");
}

backend_tests!(a_full_batch_of_5000_records_is_applied_and_read_in_one_page);
fn a_full_batch_of_5000_records_is_applied_and_read_in_one_page(backend: Backend) {
    let app = TestApp::spawn(backend);
    let job = app.create_job(json!(197));
    let entities: Vec<Value> = (0..5000)
        .map(|i| record("197", &format!("LOC-{}", i % 7), &format!("SKU-{i}"), i))
        .collect();
    let expected_refs: Vec<String> = (0..5000)
        .map(|i| format!("SKU-{i}:LOC-{}", i % 7))
        .collect();
    let batch = app.post_batch(&job, json!(entities));
    let done = app.wait_complete(&job, &batch, 5000);
    assert_eq!(done["total"], 5000, "{backend:?}");
    assert_eq!(done["count"], 5000, "{backend:?}");
    let results = results(backend, &done);
    assert_eq!(results.len(), 5000, "{backend:?}");
    let bad: Vec<&Value> = results
        .iter()
        .filter(|r| r["responseCode"] != 200 || r["message"] != "Inventory created")
        .take(3)
        .collect();
    assert!(bad.is_empty(), "{backend:?}: {bad:?}");
    assert_eq!(entity_refs(backend, &done), expected_refs, "{backend:?}");
    let ids: HashSet<&str> = results
        .iter()
        .filter_map(|r| r["entityId"].as_str())
        .collect();
    assert_eq!(ids.len(), 5000, "{backend:?}: entityIds not distinct");

    let (status, listed) = app.get("/api/v4.1/inventory?retailerId=197&count=1");
    assert_eq!(status, StatusCode::OK, "{backend:?}: {listed}");
    assert_eq!(listed["total"], 5000, "{backend:?}: {listed}");
    let (_, one) = app.get("/api/v4.1/inventory?retailerId=197&skuRef=SKU-4999");
    assert_eq!(one["total"], 1, "{backend:?}: {one}");
    assert_eq!(one["results"][0]["qty"], 4999, "{backend:?}: {one}");
    assert_eq!(
        one["results"][0]["locationRef"], "LOC-1",
        "{backend:?}: {one}"
    );
    assert_eq!(
        one["results"][0]["id"], results[4999]["entityId"],
        "{backend:?}"
    );
}

backend_tests!(a_batch_of_5001_records_is_refused_and_nothing_is_stored);
fn a_batch_of_5001_records_is_refused_and_nothing_is_stored(backend: Backend) {
    let app = TestApp::spawn(backend);
    let job = app.create_job(json!("197"));
    let entities: Vec<Value> = (0..5001)
        .map(|i| record("197", "L1", &format!("S{i}"), 1))
        .collect();
    let (status, body) = app.post(
        &format!("/api/v4.1/job/{job}/batch"),
        &json!({"action": "UPSERT", "entityType": "INVENTORY", "entities": entities}),
    );
    let messages = error_messages(backend, status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(messages.len(), 1, "{backend:?}: {body}");
    assert!(
        messages[0].contains("'entities'") && messages[0].contains("5000"),
        "{backend:?}: {body}"
    );
    let (_, job_body) = app.get(&format!("/api/v4.1/job/{job}"));
    assert_eq!(job_body["batch"], json!([]), "{backend:?}: {job_body}");
    let (_, listed) = app.get("/api/v4.1/inventory");
    assert_eq!(listed["total"], 0, "{backend:?}: {listed}");
}

backend_tests!(of_two_batches_on_the_same_positions_the_later_one_wins);
fn of_two_batches_on_the_same_positions_the_later_one_wins(backend: Backend) {
    let app = TestApp::spawn(backend);
    let job = app.create_job(json!("197"));
    let batch_of = |qty: i64| -> Vec<Value> {
        (0..200)
            .map(|i| record("197", &format!("L{}", i % 4), &format!("S{i}"), qty + i))
            .collect()
    };
    let first = app.post_batch(&job, json!(batch_of(1000)));
    let second = app.post_batch(&job, json!(batch_of(5000)));
    let done_second = app.wait_complete(&job, &second, 200);
    let done_first = app.wait_complete(&job, &first, 200);

    let first_results = results(backend, &done_first);
    let second_results = results(backend, &done_second);
    assert_eq!(first_results.len(), 200, "{backend:?}");
    assert_eq!(second_results.len(), 200, "{backend:?}");
    for (a, b) in first_results.iter().zip(second_results) {
        assert_eq!(a["responseCode"], 200, "{backend:?}: {a}");
        assert_eq!(b["responseCode"], 200, "{backend:?}: {b}");
        assert_eq!(a["entityRef"], b["entityRef"], "{backend:?}");
        assert_eq!(a["entityId"], b["entityId"], "{backend:?}: one position");
    }
    let positions = inventory(&app, "197");
    assert_eq!(positions.len(), 200, "{backend:?}");
    for i in 0..200 {
        let p = position(&positions, &format!("L{}", i % 4), &format!("S{i}"))
            .unwrap_or_else(|| panic!("{backend:?}: S{i} missing"));
        assert_eq!(p["qty"], 5000 + i, "{backend:?}: {p}");
    }
    // The later batch updated what the earlier one created.
    assert!(
        second_results
            .iter()
            .all(|r| r["message"] == "Inventory updated"),
        "{backend:?}: {done_second}"
    );
    assert!(
        first_results
            .iter()
            .all(|r| r["message"] == "Inventory created"),
        "{backend:?}: {done_first}"
    );
}

backend_tests!(duplicates_within_a_batch_apply_in_order);
fn duplicates_within_a_batch_apply_in_order(backend: Backend) {
    let app = TestApp::spawn(backend);
    let job = app.create_job(json!("197"));
    let batch = app.post_batch(
        &job,
        json!([
            record("197", "L1", "A", 1),
            record("197", "L1", "B", 50),
            record("197", "L1", "A", 2),
            {"retailerId": "197", "locationRef": "L1", "skuRef": "A", "qty": "bad"},
            record("197", "L1", "A", 3),
            record("197", "L1", "B", 60),
        ]),
    );
    let done = app.wait_complete(&job, &batch, 10);
    let results = results(backend, &done);
    assert_eq!(results.len(), 6, "{backend:?}: {done}");
    let codes: Vec<i64> = results
        .iter()
        .map(|r| r["responseCode"].as_i64().unwrap_or(-1))
        .collect();
    assert_eq!(codes, [200, 200, 200, 400, 200, 200], "{backend:?}: {done}");
    let messages: Vec<&str> = results
        .iter()
        .map(|r| r["message"].as_str().unwrap_or_default())
        .collect();
    for (i, expected) in [
        (0, "Inventory created"),
        (1, "Inventory created"),
        (2, "Inventory updated"),
        (4, "Inventory updated"),
        (5, "Inventory updated"),
    ] {
        assert_eq!(messages[i], expected, "{backend:?}: record {i}: {done}");
    }
    for i in [0, 2, 4] {
        assert_eq!(results[i]["entityRef"], "A:L1", "{backend:?}");
        assert_eq!(
            results[i]["entityId"], results[0]["entityId"],
            "{backend:?}"
        );
    }
    assert_eq!(
        results[5]["entityId"], results[1]["entityId"],
        "{backend:?}"
    );
    assert_ne!(
        results[0]["entityId"], results[1]["entityId"],
        "{backend:?}"
    );

    let positions = inventory(&app, "197");
    assert_eq!(positions.len(), 2, "{backend:?}: {positions:?}");
    assert_eq!(
        position(&positions, "L1", "A").unwrap()["qty"],
        3,
        "{backend:?}"
    );
    assert_eq!(
        position(&positions, "L1", "B").unwrap()["qty"],
        60,
        "{backend:?}"
    );
}

backend_tests!(results_match_the_posted_records_and_every_field_is_stored);
fn results_match_the_posted_records_and_every_field_is_stored(backend: Backend) {
    let app = TestApp::spawn(backend);
    let job = app.create_job(json!("197"));
    let n = 40i64;
    let entities: Vec<Value> = (0..n)
        .map(|i| {
            let mut r = json!({
                "retailerId": if i % 2 == 0 { json!("197") } else { json!(197) },
                "skuRef": format!("SKU-{i}"),
                "locationRef": format!("LOC-{}", i % 3),
                "qty": i * 3,
                "inventoryId": format!("INV-{i}"),
                "correctedQty": i - 20,
                "reservedQty": i + 1,
                "status": if i % 2 == 0 { "ACTIVE" } else { "INACTIVE" },
                "attributes": {"condition": "NEW", "storageAreaRef": format!("A{i}"),
                               "expectedOn": "2026-12-01", "n": i},
            });
            if i % 4 == 0 {
                r["ref"] = json!(format!("REF-{i}"));
            }
            if i % 5 == 0 {
                r["type"] = json!("RESERVED");
            }
            r
        })
        .collect();
    let batch = app.post_batch(&job, json!(entities.clone()));
    let done = app.wait_complete(&job, &batch, 100);
    let results = results(backend, &done);
    assert_eq!(results.len(), n as usize, "{backend:?}: {done}");
    let positions = inventory(&app, "197");
    assert_eq!(positions.len(), n as usize, "{backend:?}");

    for (i, (posted, result)) in entities.iter().zip(results).enumerate() {
        let expected_ref = posted["ref"].as_str().map_or_else(
            || {
                format!(
                    "{}:{}",
                    posted["skuRef"].as_str().unwrap(),
                    posted["locationRef"].as_str().unwrap()
                )
            },
            str::to_owned,
        );
        assert_eq!(
            result["responseCode"], 200,
            "{backend:?}: record {i}: {result}"
        );
        assert_eq!(
            result["entityRef"],
            expected_ref.as_str(),
            "{backend:?}: record {i}"
        );
        let p = position(
            &positions,
            posted["locationRef"].as_str().unwrap(),
            posted["skuRef"].as_str().unwrap(),
        )
        .unwrap_or_else(|| panic!("{backend:?}: record {i} not stored"));
        assert_eq!(p["id"], result["entityId"], "{backend:?}: record {i}");
        assert_eq!(p["retailerId"], "197", "{backend:?}: {p}");
        for field in [
            "qty",
            "inventoryId",
            "correctedQty",
            "reservedQty",
            "status",
            "attributes",
        ] {
            assert_eq!(
                p[field], posted[field],
                "{backend:?}: record {i} {field}: {p}"
            );
        }
        assert_eq!(p["ref"], posted["ref"], "{backend:?}: record {i}: {p}");
        let expected_type = posted["type"].as_str().unwrap_or("LAST_ON_HAND");
        assert_eq!(p["type"], expected_type, "{backend:?}: record {i}: {p}");
    }
}

backend_tests!(every_record_check_names_its_field);
fn every_record_check_names_its_field(backend: Backend) {
    let app = TestApp::spawn(backend);
    let job = app.create_job(json!(197));
    let base = record("197", "L1", "S", 1);
    let with = |field: &str, value: Value| -> Value {
        let mut r = base.clone();
        r[field] = value;
        r
    };
    let without = |field: &str| -> Value {
        let mut r = base.clone();
        r.as_object_mut().unwrap().remove(field);
        r
    };
    // (record, responseCode, text the message must contain)
    let cases: Vec<(Value, i64, &str)> = vec![
        (without("retailerId"), 400, "'retailerId'"),
        (without("locationRef"), 400, "'locationRef'"),
        (without("qty"), 400, "'qty'"),
        (with("skuRef", json!("")), 400, "'skuRef'"),
        (with("skuRef", json!("s".repeat(256))), 400, "'skuRef'"),
        (with("skuRef", json!(true)), 400, "'skuRef'"),
        (with("qty", json!("10.5")), 400, "'qty'"),
        (with("qty", json!(null)), 400, "'qty'"),
        (with("qty", json!(1e30)), 400, "'qty'"),
        (with("reservedQty", json!(-1)), 400, "'reservedQty'"),
        (with("correctedQty", json!("x")), 400, "'correctedQty'"),
        (
            with("inventoryId", json!("i".repeat(256))),
            400,
            "'inventoryId'",
        ),
        (with("ref", json!({"a": 1})), 400, "'ref'"),
        (with("type", json!("t".repeat(256))), 400, "'type'"),
        (with("status", json!([1])), 400, "'status'"),
        (with("attributes", json!([1])), 400, "'attributes'"),
        (
            with("attributes", json!({"big": "a".repeat(17 * 1024)})),
            400,
            "'attributes'",
        ),
        (with("retailerId", json!("1970")), 401, "'retailerId'"),
        // Accepted edge values.
        (with("correctedQty", json!(-5)), 200, "Inventory"),
        (with("qty", json!(i64::MAX)), 200, "Inventory"),
        (with("skuRef", json!("é".repeat(255))), 200, "Inventory"),
    ];
    let entities: Vec<Value> = cases.iter().map(|c| c.0.clone()).collect();
    let batch = app.post_batch(&job, json!(entities));
    let done = app.wait_complete(&job, &batch, 100);
    let results = results(backend, &done);
    assert_eq!(results.len(), cases.len(), "{backend:?}: {done}");
    for (i, ((posted, code, text), r)) in cases.iter().zip(results).enumerate() {
        assert_eq!(
            r["responseCode"], *code,
            "{backend:?}: record {i} {posted}: {r}"
        );
        let message = r["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(text),
            "{backend:?}: record {i}: {message:?} should contain {text:?}"
        );
    }
    let positions = inventory(&app, "197");
    assert_eq!(positions.len(), 2, "{backend:?}: {positions:?}");
    let s = position(&positions, "L1", "S").expect("S stored");
    assert_eq!(s["qty"], i64::MAX, "{backend:?}: {s}");
    assert_eq!(s["correctedQty"], -5, "{backend:?}: {s}");
}

backend_tests!(concurrent_clients_get_every_batch_applied_in_acceptance_order);
fn concurrent_clients_get_every_batch_applied_in_acceptance_order(backend: Backend) {
    let app = TestApp::spawn(backend);
    let job = app.create_job(json!("197"));
    let posted: Vec<(i64, i64)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4i64)
            .map(|client| {
                let (app, job) = (&app, &job);
                s.spawn(move || {
                    (0..5i64)
                        .map(|n| {
                            let qty = client * 100 + n;
                            let entities: Vec<Value> = (0..50)
                                .map(|i| record("197", "L1", &format!("S{i}"), qty))
                                .collect();
                            let id = app.post_batch(job, json!(entities));
                            (id.parse::<i64>().expect("numeric batch id"), qty)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("client thread"))
            .collect()
    });
    assert_eq!(posted.len(), 20, "{backend:?}");
    for (id, _) in &posted {
        let done = app.wait_complete(&job, &id.to_string(), 50);
        assert!(
            results(backend, &done)
                .iter()
                .all(|r| r["responseCode"] == 200),
            "{backend:?}: {done}"
        );
    }
    let (_, last_qty) = posted.iter().max().copied().expect("batches");
    let positions = inventory(&app, "197");
    assert_eq!(positions.len(), 50, "{backend:?}");
    for p in &positions {
        assert_eq!(
            p["qty"], last_qty,
            "{backend:?}: the last accepted batch wins: {p}"
        );
    }
    let (_, shown) = app.get(&format!("/api/v4.1/job/{job}"));
    assert_eq!(
        shown["batch"].as_array().map(Vec::len),
        Some(20),
        "{backend:?}"
    );
}
