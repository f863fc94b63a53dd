//! `stockbatch load`, the real binary, against the real service: each format, the default
//! mapping and `--map`, bad rows reported with their lines, a re-run after kill -9 that
//! posts nothing twice, several chunks in flight, back-pressure and expired tokens.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use reqwest::StatusCode;
use serde_json::Value;
use stockbatch::auth::accounts::{self, ClientBinding};
use stockbatch::auth::Permission;

const RETAILER: &str = "77";

/// A load's command line against `app`, logged in as the administrator.
fn load_command(app: &TestApp, file: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stockbatch"));
    command
        .arg("load")
        .arg(file)
        .args([
            "--url",
            &app.base,
            "--client-id",
            CLIENT_ID,
            "--retailer",
            RETAILER,
        ])
        .args(["--username", ADMIN])
        .args(args)
        .env("STOCKBATCH_CLIENT_SECRET", CLIENT_SECRET)
        .env("STOCKBATCH_PASSWORD", ADMIN_PASSWORD)
        .env_remove("STOCKBATCH_URL")
        .env_remove("STOCKBATCH_CLIENT_ID")
        .env_remove("STOCKBATCH_USERNAME")
        .stdin(Stdio::null());
    command
}

struct Loaded {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Loaded {
    fn of(output: Output) -> Loaded {
        Loaded {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// The job the loader said it loads into.
    fn job_id(&self) -> String {
        job_of(&self.stderr).unwrap_or_else(|| panic!("no job named: {self}"))
    }
}

impl std::fmt::Display for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn job_of(stderr: &str) -> Option<String> {
    let rest = stderr.split(" into job ").nth(1)?;
    Some(rest.split_whitespace().next()?.to_owned())
}

fn load(app: &TestApp, file: &Path, args: &[&str]) -> Loaded {
    Loaded::of(
        load_command(app, file, args)
            .output()
            .expect("run stockbatch load"),
    )
}

fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The failure report's rows (as header → value), in line order.
fn report_rows(path: &Path) -> Vec<serde_json::Map<String, Value>> {
    let mut reader = csv::Reader::from_path(path).expect("the report exists");
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        stockbatch::loader::REPORT_COLUMNS
    );
    let mut rows: Vec<serde_json::Map<String, Value>> = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            let record: Value = serde_json::from_str(&r[3]).expect("the record is JSON");
            serde_json::Map::from_iter([
                ("line".to_owned(), Value::from(r[0].parse::<u64>().unwrap())),
                (
                    "responseCode".to_owned(),
                    Value::from(r[1].parse::<i64>().unwrap()),
                ),
                ("message".to_owned(), Value::from(&r[2])),
                ("record".to_owned(), record),
            ])
        })
        .collect();
    rows.sort_by_key(|r| r["line"].as_u64());
    rows
}

/// The position of `sku` at `location`, if any.
fn position(app: &TestApp, location: &str, sku: &str) -> Option<Value> {
    let (status, body) = app.get(&format!(
        "/api/v4.1/inventory?retailerId={RETAILER}&locationRef={location}&skuRef={sku}"
    ));
    assert_eq!(status, StatusCode::OK, "{body}");
    body["results"].as_array()?.first().cloned()
}

fn positions_total(app: &TestApp) -> i64 {
    let (status, body) = app.get(&format!(
        "/api/v4.1/inventory?retailerId={RETAILER}&count=1"
    ));
    assert_eq!(status, StatusCode::OK, "{body}");
    body["total"].as_i64().unwrap()
}

fn job_results(app: &TestApp, job_id: &str) -> Value {
    let (status, body) = app.get(&format!("/api/v4.1/job/{job_id}/results"));
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

backend_tests!(
    csv_with_the_default_mapping_and_maps,
    ndjson_and_a_json_array,
    bad_records_are_reported_with_their_lines,
    a_rerun_after_kill_resumes_without_duplicates,
    a_file_of_several_chunks_in_flight_at_once,
);

/// Names and aliases find the key fields; `--map` renames and leaves out columns; other
/// columns are kept as extra fields; the report is header-only and the exit status 0.
fn csv_with_the_default_mapping_and_maps(backend: Backend) {
    let app = TestApp::spawn(backend);
    let dir = tempfile::tempdir().unwrap();
    let feed = write_file(
        dir.path(),
        "feed.csv",
        "\u{feff}SKU,Location,Quantity,Lot Number,Note,corrected_qty\n\
         A-1,L1,10,LOT-9,ignore me,\n\
         A-2,L1, 7 ,,x,5\n\
         \n\
         \"A,3\",L2,3.0,LOT-1,,\n",
    );
    let run = load(&app, &feed, &["--map", "Lot Number=lot", "--map", "note=-"]);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("3 records read"), "{run}");
    assert!(run.stdout.contains("3 applied"), "{run}");
    assert!(
        run.stderr
            .contains("Lot Number -> lot (kept as an extra field)"),
        "{run}"
    );
    let a1 = position(&app, "L1", "A-1").expect("A-1 loaded");
    assert_eq!(a1["qty"], 10);
    assert_eq!(a1["lot"], "LOT-9");
    assert!(a1.get("Note").is_none() && a1.get("note").is_none(), "{a1}");
    let a2 = position(&app, "L1", "A-2").expect("A-2 loaded");
    assert_eq!(
        (a2["qty"].as_i64(), a2["correctedQty"].as_i64()),
        (Some(7), Some(5))
    );
    assert!(a2.get("lot").is_none(), "empty cells are left out: {a2}");
    assert_eq!(position(&app, "L2", "A,3").expect("quoted SKU")["qty"], 3);
    assert!(report_rows(&dir.path().join("feed.csv.failures.csv")).is_empty());

    // A mapping that lacks a key field is refused before anything is posted.
    let bad = write_file(dir.path(), "bad.csv", "article,where,count\nA,L,1\n");
    let refused = load(&app, &bad, &[]);
    assert_eq!(refused.code, 2, "{refused}");
    assert!(
        refused.stderr.contains("no column maps to skuRef"),
        "{refused}"
    );
    let mapped = load(
        &app,
        &bad,
        &[
            "--map",
            "article=skuRef",
            "--map",
            "where=locationRef",
            "--map",
            "count=qty",
        ],
    );
    assert_eq!(mapped.code, 0, "{mapped}");
    assert_eq!(position(&app, "L", "A").expect("mapped")["qty"], 1);
}

/// NDJSON, one record a line, and a JSON array (pretty-printed, records over several
/// lines) load as InventoryPosts; `--map` renames a key.
fn ndjson_and_a_json_array(backend: Backend) {
    let app = TestApp::spawn(backend);
    let dir = tempfile::tempdir().unwrap();
    let mut ndjson = String::new();
    for i in 0..20 {
        ndjson += &format!(
            "{{\"sku\": \"N-{i}\", \"locationRef\": \"L1\", \"qty\": {i}, \"uom\": \"EA\"}}\n"
        );
    }
    let feed = write_file(dir.path(), "feed.ndjson", &ndjson);
    let run = load(&app, &feed, &["--map", "sku=skuRef"]);
    assert_eq!(run.code, 0, "{run}");
    let n7 = position(&app, "L1", "N-7").expect("N-7 loaded");
    assert_eq!(
        (n7["qty"].as_i64(), n7["uom"].as_str()),
        (Some(7), Some("EA"))
    );

    let records: Vec<Value> = (0..30)
        .map(|i| serde_json::json!({"skuRef": format!("J-{i}"), "locationRef": "L2", "qty": i * 2}))
        .collect();
    let feed = write_file(
        dir.path(),
        "feed.json",
        &serde_json::to_string_pretty(&records).unwrap(),
    );
    let run = load(&app, &feed, &[]);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("30 records read"), "{run}");
    assert_eq!(
        position(&app, "L2", "J-29").expect("J-29 loaded")["qty"],
        58
    );

    // A file named otherwise says its format with --format.
    let feed = write_file(
        dir.path(),
        "feed.data",
        "[{\"skuRef\": \"X\", \"locationRef\": \"L3\", \"qty\": 1}]",
    );
    let unknown = load(&app, &feed, &[]);
    assert_eq!(unknown.code, 2, "{unknown}");
    assert!(unknown.stderr.contains("--format"), "{unknown}");
    let run = load(&app, &feed, &["--format", "json"]);
    assert_eq!(run.code, 0, "{run}");
}

/// Rows the loader cannot map and records the service refuses all reach the report with
/// the line they start on (a quoted field over two lines counts both); the good ones are
/// applied; the exit status is 1.
fn bad_records_are_reported_with_their_lines(backend: Backend) {
    let app = TestApp::spawn(backend);
    let dir = tempfile::tempdir().unwrap();
    let feed = write_file(
        dir.path(),
        "feed.csv",
        "sku,location,qty,retailerId,note\n\
         OK-1,L1,1,,\n\
         BAD-QTY,L1,ten,,\n\
         ,L1,3,,\n\
         OK-2,L1,4,,\"two\nlines\"\n\
         OTHER,L1,5,999,\n\
         SHORT,L1\n\
         OK-3,L1,6,,\n",
    );
    let run = load(&app, &feed, &[]);
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stdout.contains("3 applied"), "{run}");
    assert!(run.stdout.contains("2 not applied by the service"), "{run}");
    assert!(run.stdout.contains("2 refused by the loader"), "{run}");
    let rows = report_rows(&dir.path().join("feed.csv.failures.csv"));
    let seen: Vec<(u64, i64)> = rows
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().unwrap(),
                r["responseCode"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(seen, [(3, 400), (4, 400), (7, 401), (8, 400)], "{rows:?}");
    assert!(rows[0]["message"]
        .as_str()
        .unwrap()
        .contains("whole number"));
    assert_eq!(rows[0]["record"]["qty"], "ten", "the row as read: {rows:?}");
    assert!(
        rows[1]["message"].as_str().unwrap().contains("skuRef"),
        "{rows:?}"
    );
    assert_eq!(
        rows[2]["record"]["skuRef"], "OTHER",
        "the record as sent: {rows:?}"
    );
    assert!(
        rows[3]["message"].as_str().unwrap().contains("2 fields"),
        "{rows:?}"
    );
    for sku in ["OK-1", "OK-2", "OK-3"] {
        assert!(position(&app, "L1", sku).is_some(), "{sku}");
    }

    // --report puts it elsewhere; a re-run writes it anew, whole.
    let elsewhere = dir.path().join("failures").join("r.csv");
    std::fs::create_dir_all(elsewhere.parent().unwrap()).unwrap();
    let again = load(&app, &feed, &["--report", elsewhere.to_str().unwrap()]);
    assert_eq!(again.code, 1, "{again}");
    assert_eq!(again.job_id(), run.job_id());
    assert_eq!(report_rows(&elsewhere).len(), 4);
}

/// A load killed (SIGKILL) midway and run again goes on in the same job: the batches the
/// first run posted are answered from their Idempotency-Keys, none is posted twice, and
/// the second run exits 0.
fn a_rerun_after_kill_resumes_without_duplicates(backend: Backend) {
    let app = TestApp::spawn(backend);
    let dir = tempfile::tempdir().unwrap();
    let rows = 3000;
    let mut text = String::from("skuRef,locationRef,qty\n");
    for i in 0..rows {
        text += &format!("K-{i:05},L{},{}\n", i % 4, i % 97);
    }
    let feed = write_file(dir.path(), "feed.csv", &text);
    let args = ["--batch-size", "100", "--concurrency", "1"];
    let stderr_path = dir.path().join("first.stderr");
    let mut first: Child = load_command(&app, &feed, &args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    // Kill it once some of its batches are in the job, and before it is done.
    let deadline = Instant::now() + Duration::from_secs(60);
    let job_id = loop {
        let job = job_of(&std::fs::read_to_string(&stderr_path).unwrap());
        if let Some(job) = job {
            if job_results(&app, &job)["totalBatches"].as_u64().unwrap() >= 3 {
                break job;
            }
        }
        assert!(Instant::now() < deadline, "the first run posted nothing");
        assert!(
            first.try_wait().unwrap().is_none(),
            "the first run ended early"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    first.kill().unwrap();
    first.wait().unwrap();
    let posted = job_results(&app, &job_id)["totalBatches"].as_u64().unwrap();
    assert!(posted < 30, "killed midway: {posted} of 30 batches posted");

    let second = load(&app, &feed, &args);
    assert_eq!(second.code, 0, "{second}");
    assert_eq!(second.job_id(), job_id, "the same job");
    assert!(second.stdout.contains("3,000 applied"), "{second}");
    let results = job_results(&app, &job_id);
    assert_eq!(results["totalBatches"], 30, "no batch twice: {results}");
    assert_eq!(results["records"]["total"], rows, "{results}");
    assert_eq!(positions_total(&app), rows as i64);

    // And once more, all of it from the stored answers.
    let third = load(&app, &feed, &args);
    assert_eq!(third.code, 0, "{third}");
    assert_eq!(job_results(&app, &job_id)["totalBatches"], 30);
}

/// More records than one batch holds, several batches in flight: every batch is waited
/// for and every record accounted.
fn a_file_of_several_chunks_in_flight_at_once(backend: Backend) {
    let app = TestApp::spawn(backend);
    let dir = tempfile::tempdir().unwrap();
    let rows = 12_001;
    let path = dir.path().join("big.csv");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    writeln!(file, "sku,loc,qty").unwrap();
    for i in 0..rows {
        writeln!(file, "B-{i:06},L{},{}", i % 7, i % 50).unwrap();
    }
    drop(file);
    let run = load(&app, &path, &["--concurrency", "3"]);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("12,001 applied"), "{run}");
    let results = job_results(&app, &run.job_id());
    assert_eq!(results["totalBatches"], 3, "5000 + 5000 + 1: {results}");
    assert_eq!(results["records"]["applied"], rows, "{results}");
    assert_eq!(positions_total(&app), rows as i64);
}

/// The queue full (429, Retry-After) and tokens that expire midway slow the load down
/// but do not stop it. The service only accepts (one queued batch per retailer) and the test
/// applies one batch every 1.5 s, so the loader's second batch in flight always meets a full
/// queue and the load outlives its 2 s tokens.
#[test]
fn back_pressure_and_expired_tokens_are_waited_out() {
    let mut app = TestApp::spawn_with(TestDb::new(Backend::Sqlite), |config| {
        config.role = stockbatch::Role::Api;
        config.api.queue_limits.batches_per_retailer = 1;
        config.tokens.access_ttl = Duration::from_secs(2);
    });
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("sku,loc,qty\n");
    for i in 0..400 {
        text += &format!("P-{i},L1,{i}\n");
    }
    let feed = write_file(dir.path(), "feed.csv", &text);
    let mut child = load_command(&app, &feed, &["--batch-size", "100", "--concurrency", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run stockbatch load");
    let executor = app.executor();
    let deadline = Instant::now() + Duration::from_secs(90);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the load did not finish");
        std::thread::sleep(Duration::from_millis(1500));
        executor.run_once().unwrap();
    }
    let run = Loaded::of(child.wait_with_output().unwrap());
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("400 applied"), "{run}");
    let waited = run.stdout.split("the service asked to wait ").nth(1);
    assert!(
        waited.is_some_and(|w| !w.starts_with('0')),
        "429s were met: {run}"
    );
    assert!(
        !run.stdout.contains("; 0 logins again"),
        "tokens expired: {run}"
    );
    // The test's own token has expired by now too.
    app.client = client_with_token(&login(&app.base, ADMIN, ADMIN_PASSWORD));
    assert_eq!(job_results(&app, &run.job_id())["totalBatches"], 4);
}

/// A client bound to the retailer logs in as itself; without a secret and without a
/// terminal the loader says which variable to set.
#[test]
fn client_credentials_and_a_missing_secret() {
    let app = TestApp::spawn(Backend::Sqlite);
    app.with_db(|conn| {
        accounts::create_client(
            conn,
            "erp",
            Some("erp-client-secret-long"),
            Some(ClientBinding {
                retailer_id: RETAILER,
                permissions: &Permission::ALL,
            }),
        )
        .unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    let feed = write_file(dir.path(), "feed.csv", "sku,loc,qty\nC-1,L1,4\n");
    let as_client = |secret: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_stockbatch"));
        command
            .arg("load")
            .arg(&feed)
            .args([
                "--url",
                &app.base,
                "--client-id",
                "erp",
                "--retailer",
                RETAILER,
            ])
            .env_remove("STOCKBATCH_CLIENT_SECRET")
            .env_remove("STOCKBATCH_USERNAME")
            .stdin(Stdio::null());
        if let Some(secret) = secret {
            command.env("STOCKBATCH_CLIENT_SECRET", secret);
        }
        Loaded::of(command.output().unwrap())
    };
    let missing = as_client(None);
    assert_eq!(missing.code, 2, "{missing}");
    assert!(
        missing.stderr.contains("set STOCKBATCH_CLIENT_SECRET"),
        "{missing}"
    );
    let wrong = as_client(Some("not-the-secret"));
    assert_eq!(wrong.code, 2, "{wrong}");
    assert!(wrong.stderr.contains("logging in"), "{wrong}");
    assert!(
        !wrong.stderr.contains("not-the-secret"),
        "no secret shown: {wrong}"
    );
    let run = as_client(Some("erp-client-secret-long"));
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(position(&app, "L1", "C-1").expect("loaded")["qty"], 4);
}

/// A file changed past its first MiB but of the same size has the same identity: the
/// changed batch's key answers 422, and the load stops saying what to do rather than mix
/// two versions of the file in one job.
#[test]
fn a_file_changed_past_its_first_mib_is_not_mixed_in() {
    let app = TestApp::spawn(Backend::Sqlite);
    let dir = tempfile::tempdir().unwrap();
    let pad = "x".repeat(300);
    let mut text = String::from("sku,loc,qty,note\n");
    for i in 0..4000 {
        text += &format!("M-{i:05},L1,1,{pad}\n");
    }
    assert!(text.len() > 1024 * 1024 + 10_000);
    let feed = write_file(dir.path(), "feed.csv", &text);
    let args = ["--batch-size", "1000"];
    let first = load(&app, &feed, &args);
    assert_eq!(first.code, 0, "{first}");
    // The last row's qty, 1 → 2: same size, same first MiB.
    let changed = text
        .rsplit_once(",1,")
        .map(|(a, b)| format!("{a},2,{b}"))
        .unwrap();
    std::fs::write(&feed, &changed).unwrap();
    let second = load(&app, &feed, &args);
    assert_eq!(second.code, 2, "{second}");
    assert_eq!(second.job_id(), first.job_id());
    assert!(second.stdout.contains("another --job-name"), "{second}");
    assert!(second.stdout.contains("422"), "{second}");
    assert_eq!(job_results(&app, &first.job_id())["totalBatches"], 4);
}
