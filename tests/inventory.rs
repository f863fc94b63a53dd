//! `GET /api/v4.1/inventory`: the positions batches produced, filtered and paged.

mod common;
use common::*;

use reqwest::StatusCode;
use serde_json::{json, Value};

/// (retailer, location, sku, qty) of every position the test stores.
const POSITIONS: [(&str, &str, &str, i64); 8] = [
    ("197", "L1", "S1", 1),
    ("197", "L1", "S2", 2),
    ("197", "L2", "S1", 3),
    ("197", "L2", "S3", 4),
    ("197", "L3", "S1", 5),
    ("197", "L 4/ä", "A B+C&D", 6),
    ("198", "L1", "S1", 10),
    ("198", "L9", "S9", 11),
];

/// Stores [`POSITIONS`] through one job per retailer.
fn seed(app: &TestApp) {
    for retailer in ["197", "198"] {
        let job = app.create_job(json!(retailer));
        let entities: Vec<Value> = POSITIONS
            .iter()
            .filter(|p| p.0 == retailer)
            .map(|&(r, l, s, q)| record(r, l, s, q))
            .collect();
        let batch = app.post_batch(&job, json!(entities));
        let done = app.wait_complete(&job, &batch, 100);
        for r in done["results"].as_array().expect("results") {
            assert_eq!(r["responseCode"], 200, "{:?}: {done}", app.db.backend());
        }
    }
}

/// (retailer, location, sku, qty) of a listing's results, sorted.
fn keys(backend: Backend, body: &Value) -> Vec<(String, String, String, i64)> {
    let mut keys: Vec<_> = body["results"]
        .as_array()
        .unwrap_or_else(|| panic!("{backend:?}: no results: {body}"))
        .iter()
        .map(|p| {
            (
                p["retailerId"].as_str().unwrap_or_default().to_owned(),
                p["locationRef"].as_str().unwrap_or_default().to_owned(),
                p["skuRef"].as_str().unwrap_or_default().to_owned(),
                p["qty"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    keys.sort();
    keys
}

fn expected(
    matches: impl Fn(&(&str, &str, &str, i64)) -> bool,
) -> Vec<(String, String, String, i64)> {
    let mut keys: Vec<_> = POSITIONS
        .iter()
        .filter(|p| matches(p))
        .map(|&(r, l, s, q)| (r.to_owned(), l.to_owned(), s.to_owned(), q))
        .collect();
    keys.sort();
    keys
}

backend_tests!(inventory_is_filtered_by_retailer_sku_and_location);
fn inventory_is_filtered_by_retailer_sku_and_location(backend: Backend) {
    let app = TestApp::spawn(backend);
    let (status, empty) = app.get("/api/v4.1/inventory");
    assert_eq!(status, StatusCode::OK, "{backend:?}: {empty}");
    assert_eq!(empty["total"], 0, "{backend:?}: {empty}");
    assert_eq!(empty["results"], json!([]), "{backend:?}: {empty}");

    seed(&app);
    type Filter = fn(&(&str, &str, &str, i64)) -> bool;
    let cases: [(&str, Filter); 10] = [
        ("", |_| true),
        ("?retailerId=197", |p| p.0 == "197"),
        ("?retailerId=198", |p| p.0 == "198"),
        ("?retailerId=999", |_| false),
        ("?retailerId=197&skuRef=S1", |p| p.0 == "197" && p.2 == "S1"),
        ("?retailerId=197&locationRef=L2", |p| {
            p.0 == "197" && p.1 == "L2"
        }),
        ("?retailerId=197&skuRef=S1&locationRef=L2", |p| {
            p.0 == "197" && p.1 == "L2" && p.2 == "S1"
        }),
        ("?skuRef=S1", |p| p.2 == "S1"),
        ("?locationRef=L1", |p| p.1 == "L1"),
        // Values are URL-decoded: `+` as %2B, space, `/`, `&` and non-ASCII.
        ("?skuRef=A%20B%2BC%26D&locationRef=L%204%2F%C3%A4", |p| {
            p.2 == "A B+C&D"
        }),
    ];
    for (query, filter) in cases {
        let (status, body) = app.get(&format!("/api/v4.1/inventory{query}"));
        assert_eq!(status, StatusCode::OK, "{backend:?}: {query}: {body}");
        let want = expected(filter);
        assert_eq!(body["total"], want.len(), "{backend:?}: {query}: {body}");
        assert_eq!(keys(backend, &body), want, "{backend:?}: {query}");
        assert_eq!(body["start"], 1, "{backend:?}: {query}: {body}");
        assert_eq!(body["count"], 100, "{backend:?}: {query}: {body}");
    }

    // Every position has the full shape.
    let (_, all) = app.get("/api/v4.1/inventory?retailerId=197&skuRef=S2");
    let p = &all["results"][0];
    assert!(p["id"].is_string(), "{backend:?}: {p}");
    assert_eq!(p["type"], "LAST_ON_HAND", "{backend:?}: {p}");
    for field in ["createdOn", "updatedOn"] {
        let at = p[field].as_str().unwrap_or_default();
        assert!(
            at.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(at).is_ok(),
            "{backend:?}: {field} {at:?}"
        );
    }
}

backend_tests!(inventory_is_paged);
fn inventory_is_paged(backend: Backend) {
    let app = TestApp::spawn(backend);
    seed(&app);
    let (status, whole) = app.get("/api/v4.1/inventory?retailerId=197&count=5000");
    assert_eq!(status, StatusCode::OK, "{backend:?}: {whole}");
    assert_eq!(whole["count"], 5000, "{backend:?}: {whole}");
    let whole = whole["results"].as_array().expect("results").clone();
    assert_eq!(whole.len(), 6, "{backend:?}");

    let mut paged = Vec::new();
    for start in [1, 3, 5] {
        let (status, page) = app.get(&format!(
            "/api/v4.1/inventory?retailerId=197&start={start}&count=2"
        ));
        assert_eq!(status, StatusCode::OK, "{backend:?}: {page}");
        assert_eq!(page["start"], start, "{backend:?}: {page}");
        assert_eq!(page["count"], 2, "{backend:?}: {page}");
        assert_eq!(page["total"], 6, "{backend:?}: {page}");
        let results = page["results"].as_array().expect("results");
        assert_eq!(results.len(), 2, "{backend:?}: {page}");
        paged.extend(results.iter().cloned());
    }
    assert_eq!(
        paged, whole,
        "{backend:?}: pages must cover the listing in order"
    );

    let (_, last) = app.get("/api/v4.1/inventory?retailerId=197&start=6&count=4");
    assert_eq!(
        last["results"].as_array().map(Vec::len),
        Some(1),
        "{backend:?}: {last}"
    );
    assert_eq!(last["results"][0], whole[5], "{backend:?}");
    let (_, past) = app.get("/api/v4.1/inventory?retailerId=197&start=1000");
    assert_eq!(past["results"], json!([]), "{backend:?}: {past}");
    assert_eq!(past["total"], 6, "{backend:?}: {past}");
    assert_eq!(past["start"], 1000, "{backend:?}: {past}");
    let (status, far) = app.get(&format!(
        "/api/v4.1/inventory?retailerId=197&start={}&count=5000",
        i64::MAX
    ));
    assert_eq!(status, StatusCode::OK, "{backend:?}: {far}");
    assert_eq!(far["results"], json!([]), "{backend:?}: {far}");
    assert_eq!(far["total"], 6, "{backend:?}: {far}");

    for bad in [
        "?count=5001",
        "?count=0",
        "?start=0",
        "?start=-1",
        "?count=abc",
        "?start=x",
        "?count=1000000000000",
    ] {
        let (status, body) = app.get(&format!("/api/v4.1/inventory{bad}"));
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{backend:?}: {bad}: {body}"
        );
        error_messages(backend, status, &body, StatusCode::BAD_REQUEST);
    }
}

backend_tests!(optional_fields_a_later_record_leaves_out_keep_their_value);
fn optional_fields_a_later_record_leaves_out_keep_their_value(backend: Backend) {
    let app = TestApp::spawn(backend);
    let job = app.create_job(json!("197"));
    let full = json!({
        "retailerId": "197", "skuRef": "S1", "locationRef": "L1", "qty": 5,
        "inventoryId": "INV-1", "correctedQty": -2, "reservedQty": 3, "ref": "R1",
        "type": "RESERVED", "status": "ACTIVE", "attributes": {"condition": "NEW"}
    });
    let first = app.post_batch(&job, json!([full]));
    app.wait_complete(&job, &first, 10);
    let second = app.post_batch(&job, json!([record("197", "L1", "S1", 8)]));
    let done = app.wait_complete(&job, &second, 10);
    assert_eq!(
        done["results"][0]["message"], "Inventory updated",
        "{backend:?}: {done}"
    );
    assert_eq!(
        done["results"][0]["entityRef"], "S1:L1",
        "{backend:?}: {done}"
    );

    let (_, listed) = app.get("/api/v4.1/inventory?retailerId=197");
    assert_eq!(listed["total"], 1, "{backend:?}: {listed}");
    let p = &listed["results"][0];
    assert_eq!(p["qty"], 8, "{backend:?}: {p}");
    for field in [
        "inventoryId",
        "correctedQty",
        "reservedQty",
        "ref",
        "status",
        "attributes",
    ] {
        assert_eq!(p[field], full[field], "{backend:?}: {field}: {p}");
    }
}
