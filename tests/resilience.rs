//! Real processes against a real database: killed, stopped, cut off, panicking, scaled out.
//! No accepted batch may be lost, applied twice, or left PENDING/RUNNING.

mod common;
#[path = "support/process.rs"]
mod process;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use process::{execute, numbers, Proxy, Service};
use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// A client logged in as the administrator of the service at `base` (one login per service).
fn client(base: &str) -> Client {
    static TOKENS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());
    let mut tokens = TOKENS.lock().unwrap();
    let token = match tokens.iter().find(|(b, _)| b == base) {
        Some((_, token)) => token.clone(),
        None => {
            let token = login(base, ADMIN, ADMIN_PASSWORD);
            tokens.push((base.to_owned(), token.clone()));
            token
        }
    };
    client_with_token(&token)
}

fn create_job(base: &str, retailer: &str) -> String {
    let (status, body) = read(
        client(base)
            .post(format!("{base}/api/v4.1/job"))
            .json(&json!({"name": "resilience", "retailerId": retailer}))
            .send()
            .unwrap(),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

fn post_batch(base: &str, job: &str, entities: &[Value]) -> String {
    let (status, body) = read(
        client(base)
            .post(format!("{base}/api/v4.1/job/{job}/batch"))
            .json(&json!({"action": "UPSERT", "entityType": "INVENTORY", "entities": entities}))
            .send()
            .unwrap(),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

fn get_batch(base: &str, job: &str, batch: &str) -> Value {
    let (status, body) = read(
        client(base)
            .get(format!(
                "{base}/api/v4.1/job/{job}/batch/{batch}?count=5000"
            ))
            .send()
            .unwrap(),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn wait_for_status(base: &str, job: &str, batch: &str, wanted: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let body = get_batch(base, job, batch);
        if body["status"] == wanted {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "batch {batch} never {wanted}: {}",
            body["status"]
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every record's result is there exactly once, in order, with the expected code.
fn assert_all_results(batch: &Value, records: usize, code: i64) {
    let results = batch["results"].as_array().unwrap();
    assert_eq!(batch["total"], records);
    assert_eq!(results.len(), records, "one result per record");
    assert!(
        results.iter().all(|r| r["responseCode"] == code),
        "all {code}: {}",
        results[0]
    );
}

fn positions(base: &str, retailer: &str) -> HashMap<String, i64> {
    let (status, body) = read(
        client(base)
            .get(format!(
                "{base}/api/v4.1/inventory?retailerId={retailer}&count=5000"
            ))
            .send()
            .unwrap(),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["skuRef"].as_str().unwrap().to_owned(),
                p["qty"].as_i64().unwrap(),
            )
        })
        .collect()
}

backend_tests!(an_executor_killed_mid_batch_loses_and_repeats_nothing);
fn an_executor_killed_mid_batch_loses_and_repeats_nothing(backend: Backend) {
    let db = TestDb::new(backend);
    let api = Service::start("api", db.url(), "api", &[]);
    let base = api.base();
    let job = create_job(&base, "7");
    let batches: Vec<String> = (0..3)
        .map(|b| {
            let records: Vec<Value> = (0..5000)
                .map(|i| record("7", "L", &format!("SKU-{i}"), b * 10_000 + i))
                .collect();
            post_batch(&base, &job, &records)
        })
        .collect();

    // One batch at a time, so exactly one batch is mid-apply when the executor dies.
    let slow = [
        ("STOCKBATCH_FAULT_APPLY_DELAY_MS", "4000"),
        ("STOCKBATCH_LEASE_SECS", "2"),
        ("STOCKBATCH_EXECUTOR_WORKERS", "1"),
    ];
    let mut doomed = Service::start("executor-1", db.url(), "executor", &slow);
    wait_for_status(&base, &job, &batches[0], "RUNNING", Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(500));
    doomed.kill9();
    assert_eq!(
        get_batch(&base, &job, &batches[0])["status"],
        "RUNNING",
        "{backend:?}: killed mid-batch"
    );

    let _fresh = Service::start(
        "executor-2",
        db.url(),
        "executor",
        &[("STOCKBATCH_LEASE_SECS", "2")],
    );
    for batch in &batches {
        let done = wait_for_status(&base, &job, batch, "COMPLETE", Duration::from_secs(60));
        assert_all_results(&done, 5000, 200);
    }
    let stock = positions(&base, "7");
    assert_eq!(stock.len(), 5000, "{backend:?}");
    assert!(
        (0..5000).all(|i| stock[&format!("SKU-{i}")] == 20_000 + i),
        "{backend:?}: last batch wins"
    );
    let per_batch = numbers(
        db.url(),
        "SELECT CAST(SUM(results) AS BIGINT) AS n FROM batch_result_chunks GROUP BY batch_id ORDER BY batch_id",
    );
    assert_eq!(
        per_batch,
        vec![5000, 5000, 5000],
        "{backend:?}: exactly one result per record"
    );
    let attempts = numbers(
        db.url(),
        "SELECT CAST(attempts AS BIGINT) AS n FROM batches ORDER BY id",
    );
    assert_eq!(
        attempts,
        vec![2, 1, 1],
        "{backend:?}: the killed batch ran again, once"
    );
}

backend_tests!(a_panicking_batch_completes_with_500s_and_the_executor_goes_on);
fn a_panicking_batch_completes_with_500s_and_the_executor_goes_on(backend: Backend) {
    let db = TestDb::new(backend);
    let env = [
        ("STOCKBATCH_FAULT_PANIC_SKU", "BOOM"),
        ("STOCKBATCH_MAX_ATTEMPTS", "2"),
    ];
    let service = Service::start("service", db.url(), "all", &env);
    let base = service.base();
    let job = create_job(&base, "5");
    let bad = post_batch(
        &base,
        &job,
        &[record("5", "L", "OK-1", 1), record("5", "L", "BOOM", 2)],
    );
    let good = post_batch(&base, &job, &[record("5", "L", "OK-2", 3)]);

    let failed = wait_for_status(&base, &job, &bad, "COMPLETE", Duration::from_secs(30));
    assert_all_results(&failed, 2, 500);
    assert!(
        failed["results"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("not applied"),
        "{failed}"
    );
    let done = wait_for_status(&base, &job, &good, "COMPLETE", Duration::from_secs(30));
    assert_all_results(&done, 1, 200);

    let stock = positions(&base, "5");
    assert_eq!(stock.get("OK-2"), Some(&3), "{backend:?}");
    assert!(
        !stock.contains_key("OK-1"),
        "{backend:?}: nothing of the failed batch applied"
    );
    let attempts = numbers(
        db.url(),
        "SELECT CAST(attempts AS BIGINT) AS n FROM batches ORDER BY id",
    );
    assert_eq!(attempts, vec![2, 1], "{backend:?}");
}

backend_tests!(sigterm_during_a_batch_exits_cleanly_and_strands_nothing);
fn sigterm_during_a_batch_exits_cleanly_and_strands_nothing(backend: Backend) {
    let db = TestDb::new(backend);
    let mut service = Service::start(
        "service",
        db.url(),
        "all",
        &[("STOCKBATCH_FAULT_APPLY_DELAY_MS", "1500")],
    );
    let base = service.base();
    let job = create_job(&base, "3");
    let records: Vec<Value> = (0..1000)
        .map(|i| record("3", "L", &format!("S{i}"), i))
        .collect();
    let batch = post_batch(&base, &job, &records);
    wait_for_status(&base, &job, &batch, "RUNNING", Duration::from_secs(20));

    let status = service.terminate(Duration::from_secs(20));
    assert!(status.success(), "{backend:?}: exit status {status:?}");
    let state = numbers(
        db.url(),
        "SELECT CAST(CASE status WHEN 'COMPLETE' THEN 1 WHEN 'PENDING' THEN 0 ELSE -1 END AS BIGINT) AS n \
         FROM batches",
    );
    assert!(
        state == vec![1] || state == vec![0],
        "{backend:?}: COMPLETE or back in the queue, got {state:?}"
    );
    let results = numbers(
        db.url(),
        "SELECT CAST(COALESCE(SUM(results), 0) AS BIGINT) AS n FROM batch_result_chunks",
    );
    assert_eq!(
        results,
        vec![if state == vec![1] { 1000 } else { 0 }],
        "{backend:?}"
    );
}

#[test]
#[cfg_attr(
    not(postgres_tests),
    ignore = "PostgreSQL: set STOCKBATCH_TEST_POSTGRES_URL (at build time too)"
)]
fn three_executors_apply_200_concurrent_batches_exactly_once_in_acceptance_order() {
    let db = TestDb::new(Backend::Postgres);
    let api = Service::start("api", db.url(), "api", &[]);
    let _executors: Vec<Service> = (0..3)
        .map(|i| Service::start(&format!("executor-{i}"), db.url(), "executor", &[]))
        .collect();
    let base = api.base();
    let jobs: Vec<String> = (0..4).map(|_| create_job(&base, "9")).collect();

    // Four clients, 50 batches each, 20 records each over 40 shared positions.
    let accepted: Mutex<Vec<AcceptedBatch>> = Mutex::default();
    std::thread::scope(|scope| {
        for (client_no, job) in jobs.iter().enumerate() {
            let (accepted, base) = (&accepted, &base);
            scope.spawn(move || {
                let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ client_no as u64;
                for _ in 0..50 {
                    let records: Vec<(String, i64)> = (0..20)
                        .map(|_| {
                            seed ^= seed << 13;
                            seed ^= seed >> 7;
                            seed ^= seed << 17;
                            (format!("P{}", seed % 40), (seed >> 20) as i64 % 1000)
                        })
                        .collect();
                    let body: Vec<Value> = records
                        .iter()
                        .map(|(sku, qty)| record("9", "L", sku, *qty))
                        .collect();
                    let id = post_batch(base, job, &body);
                    accepted
                        .lock()
                        .unwrap()
                        .push((id.parse().unwrap(), job.clone(), records));
                }
            });
        }
    });
    let mut accepted = accepted.into_inner().unwrap();
    assert_eq!(accepted.len(), 200);
    for (id, job, records) in &accepted {
        let done = wait_for_status(
            &base,
            job,
            &id.to_string(),
            "COMPLETE",
            Duration::from_secs(120),
        );
        assert_all_results(&done, records.len(), 200);
    }

    accepted.sort_by_key(|(id, _, _)| *id);
    let mut replay: HashMap<String, i64> = HashMap::new();
    for (_, _, records) in &accepted {
        for (sku, qty) in records {
            replay.insert(sku.clone(), *qty);
        }
    }
    assert_eq!(
        positions(&base, "9"),
        replay,
        "final positions equal the replay in acceptance order"
    );
    let per_batch = numbers(
        db.url(),
        "SELECT CAST(SUM(results) AS BIGINT) AS n FROM batch_result_chunks GROUP BY batch_id",
    );
    assert!(
        per_batch.len() == 200 && per_batch.iter().all(|n| *n == 20),
        "exactly one result per record"
    );
    let attempts = numbers(
        db.url(),
        "SELECT CAST(attempts AS BIGINT) AS n FROM batches",
    );
    assert!(
        attempts.iter().all(|a| *a == 1),
        "every batch ran exactly once: {attempts:?}"
    );
}

#[test]
#[cfg_attr(
    not(postgres_tests),
    ignore = "PostgreSQL: set STOCKBATCH_TEST_POSTGRES_URL (at build time too)"
)]
fn a_database_outage_answers_503_and_recovers_without_losing_a_batch() {
    let db = TestDb::new(Backend::Postgres);
    let target = host_port(db.url());
    let proxy = Proxy::start(&target);
    let via_proxy = db
        .url()
        .replacen(&target, &format!("127.0.0.1:{}", proxy.port), 1);
    let env = [
        ("STOCKBATCH_DB_TIMEOUT_MS", "1000"),
        ("STOCKBATCH_FAULT_APPLY_DELAY_MS", "1000"),
    ];
    let service = Service::start("service", &via_proxy, "all", &env);
    let base = service.base();
    let job = create_job(&base, "4");
    let before: Vec<Value> = (0..100)
        .map(|i| record("4", "L", &format!("B{i}"), i))
        .collect();
    let during_cut = post_batch(&base, &job, &before);
    wait_for_status(&base, &job, &during_cut, "RUNNING", Duration::from_secs(20));

    proxy.cut();
    let started = Instant::now();
    let (status, body) = read(
        client(&base)
            .post(format!("{base}/api/v4.1/job"))
            .json(&json!({"name": "x", "retailerId": "4"}))
            .send()
            .unwrap(),
    );
    assert_errors(status, &body, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "503 promptly, not a hang"
    );
    let (status, body) = read(client(&base).get(format!("{base}/health")).send().unwrap());
    assert_errors(status, &body, StatusCode::SERVICE_UNAVAILABLE);

    proxy.restore();
    let after: Vec<Value> = (0..100)
        .map(|i| record("4", "L", &format!("A{i}"), i))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let after_cut = loop {
        let response = client(&base)
            .post(format!("{base}/api/v4.1/job/{job}/batch"))
            .json(&json!({"action": "UPSERT", "entityType": "INVENTORY", "entities": after}))
            .send()
            .unwrap();
        let (status, body) = read(response);
        if status == StatusCode::OK {
            break body["id"].as_str().unwrap().to_owned();
        }
        assert_errors(status, &body, StatusCode::SERVICE_UNAVAILABLE);
        assert!(Instant::now() < deadline, "the service did not recover");
        std::thread::sleep(Duration::from_millis(200));
    };
    for batch in [&during_cut, &after_cut] {
        let done = wait_for_status(&base, &job, batch, "COMPLETE", Duration::from_secs(60));
        assert_all_results(&done, 100, 200);
    }
    let stock = positions(&base, "4");
    assert_eq!(stock.len(), 200, "both batches applied");
    let per_batch = numbers(
        db.url(),
        "SELECT CAST(SUM(results) AS BIGINT) AS n FROM batch_result_chunks GROUP BY batch_id",
    );
    assert_eq!(per_batch, vec![100, 100]);
}

/// A batch as accepted: its id, its job, and its (skuRef, qty) records.
type AcceptedBatch = (i64, String, Vec<(String, i64)>);

/// `host:port` of a PostgreSQL URL.
fn host_port(url: &str) -> String {
    let rest = url.split("://").nth(1).unwrap();
    let rest = rest.rsplit('@').next().unwrap();
    rest.split('/').next().unwrap().to_owned()
}

#[test]
fn a_second_executor_on_one_sqlite_file_is_refused_with_a_reason() {
    let db = TestDb::new(Backend::Sqlite);
    let _first = Service::start("executor-1", db.url(), "executor", &[]);
    let mut second = std::process::Command::new(env!("CARGO_BIN_EXE_stockbatch"))
        .args(["serve", "--role", "executor", "--database-url", db.url()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the second executor kept running"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(stderr.contains("SQLite runs one executor"), "{stderr}");

    // An API-only process beside the executor is fine, and its batches run.
    let api = Service::start("api", db.url(), "api", &[]);
    let base = api.base();
    let job = create_job(&base, "8");
    let batch = post_batch(&base, &job, &[record("8", "L", "S", 1)]);
    let done = wait_for_status(&base, &job, &batch, "COMPLETE", Duration::from_secs(20));
    assert_all_results(&done, 1, 200);
}

backend_tests!(results_of_a_partly_applied_batch_stay_hidden_until_it_is_complete);
fn results_of_a_partly_applied_batch_stay_hidden_until_it_is_complete(backend: Backend) {
    let db = TestDb::new(backend);
    // No executor: the batch stays where the test puts it.
    let api = Service::start("api", db.url(), "api", &[]);
    let base = api.base();
    let job = create_job(&base, "7");
    let records: Vec<Value> = (0..3)
        .map(|i| record("7", "L", &format!("SKU-{i}"), i))
        .collect();
    let batch = post_batch(&base, &job, &records);
    // What an executor leaves after committing the first step of a batch it then lost.
    execute(
        db.url(),
        &format!(
            "UPDATE batches SET status = 'RUNNING' WHERE id = {batch}; \
             INSERT INTO batch_result_chunks (batch_id, first_seq, last_seq, results, failed, body) \
             VALUES ({batch}, 0, 0, 1, 0, \
             '{{\"messages\":[\"Inventory created\"],\"rows\":[[0,1,\"SKU-0:L\",200,0,null]]}}')"
        ),
    );
    let running = get_batch(&base, &job, &batch);
    assert_eq!(running["status"], "RUNNING", "{backend:?}");
    assert_eq!(running["total"], 3, "{backend:?}");
    assert_eq!(
        running["results"],
        json!([]),
        "{backend:?}: no partial results"
    );

    execute(
        db.url(),
        &format!("UPDATE batches SET status = 'COMPLETE' WHERE id = {batch}"),
    );
    let complete = get_batch(&base, &job, &batch);
    assert_eq!(
        complete["results"].as_array().map(Vec::len),
        Some(1),
        "{backend:?}"
    );
}
