//! Hostile traffic from another process on loopback, bounded in count and time: login
//! floods, lockout races, oversized parameters and keys, bursts of large uploads, bodies
//! that trickle in. Memory must stay bounded and come back, other requests must be served,
//! and nothing accepted may be lost.

mod common;
#[path = "support/netns.rs"]
mod netns;
#[path = "support/process.rs"]
mod process;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::*;
use process::{numbers, Service};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Floods measure memory and latency: one at a time, so they do not measure each other.
fn solo() -> MutexGuard<'static, ()> {
    static SOLO: Mutex<()> = Mutex::new(());
    SOLO.lock().unwrap_or_else(|e| e.into_inner())
}

/// Resident memory of a process, in MiB.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib / 1024.0
}

/// Samples a process's RSS every 50 ms until dropped; reports the peak.
struct RssWatch {
    peak: Arc<Mutex<f64>>,
    stop: Arc<AtomicBool>,
}

impl RssWatch {
    fn start(pid: u32) -> RssWatch {
        let (peak, stop) = (
            Arc::new(Mutex::new(0.0_f64)),
            Arc::new(AtomicBool::new(false)),
        );
        let (p, s) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                let now = rss_mib(pid);
                let mut peak = p.lock().unwrap();
                *peak = peak.max(now);
                drop(peak);
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        RssWatch { peak, stop }
    }

    fn peak(&self) -> f64 {
        *self.peak.lock().unwrap()
    }
}

impl Drop for RssWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Waits up to `within` for the process's RSS to come within `slack` MiB of `target`.
fn settles_near(pid: u32, target: f64, slack: f64, within: Duration) -> f64 {
    let deadline = Instant::now() + within;
    loop {
        let now = rss_mib(pid);
        if now <= target + slack || Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Polls the batch at `url` every `every` until it is COMPLETE and returns it; fails after
/// `within`.
fn completed_batch(
    api: &reqwest::blocking::Client,
    url: &str,
    within: Duration,
    every: Duration,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (status, batch) = read(api.get(url).send().unwrap());
        if status == StatusCode::OK && batch["status"] == "COMPLETE" {
            return batch;
        }
        assert!(Instant::now() < deadline, "{url} not done: {batch}");
        std::thread::sleep(every);
    }
}

/// One HTTP/1.1 keep-alive connection, written by hand so a flood costs the test little.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    fn open(port: u16) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        Conn {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
        }
    }

    /// Sends one request; returns the status and body, or None if the server closed.
    fn send(&mut self, head: &str, body: &[u8]) -> Option<(u16, Vec<u8>)> {
        self.writer.write_all(head.as_bytes()).ok()?;
        self.writer.write_all(body).ok()?;
        read_response(&mut self.reader)
    }
}

fn read_response(reader: &mut BufReader<TcpStream>) -> Option<(u16, Vec<u8>)> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let status: u16 = line.split(' ').nth(1)?.parse().ok()?;
    let mut length = 0;
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((status, body))
}

fn token_post(form: &str) -> String {
    format!(
        "POST /oauth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\n\r\n{form}",
        form.len()
    )
}

/// `connections` keep-alive connections post `form(i)` to /oauth/token until `duration`
/// passes; returns how many answers of each status came back.
fn flood_logins(
    port: u16,
    connections: usize,
    duration: Duration,
    form: impl Fn(usize) -> String + Sync,
) -> Vec<(u16, usize)> {
    let counts: Mutex<Vec<(u16, usize)>> = Mutex::default();
    let deadline = Instant::now() + duration;
    std::thread::scope(|scope| {
        for c in 0..connections {
            let (counts, form) = (&counts, &form);
            scope.spawn(move || {
                let mut conn = Conn::open(port);
                let mut i = c;
                while Instant::now() < deadline {
                    let status = match conn.send(&token_post(&form(i)), b"") {
                        Some((status, _)) => status,
                        None => {
                            conn = Conn::open(port);
                            0
                        }
                    };
                    let mut counts = counts.lock().unwrap();
                    match counts.iter_mut().find(|(s, _)| *s == status) {
                        Some((_, n)) => *n += 1,
                        None => counts.push((status, 1)),
                    }
                    i += connections;
                }
            });
        }
    });
    counts.into_inner().unwrap()
}

fn form(username: &str, client_id: &str, secret: &str) -> String {
    serde_urlencoded::to_string([
        ("grant_type", "password"),
        ("username", username),
        ("password", "not the password"),
        ("client_id", client_id),
        ("client_secret", secret),
        ("scope", "api"),
    ])
    .unwrap()
}

#[test]
fn a_login_flood_keeps_memory_bounded_and_gives_it_back() {
    let _solo = solo();
    let db = TestDb::new(Backend::Sqlite);
    let service = Service::start("flood", db.url(), "all", &[]);
    let (pid, port) = (service.child.id(), service.port.unwrap());
    std::thread::sleep(Duration::from_millis(500));
    let start = rss_mib(pid);
    let watch = RssWatch::start(pid);

    // Unknown clients: refused before any hashing.
    let unknown = flood_logins(port, 150, Duration::from_secs(15), |i| {
        form(
            &format!("user-{i}"),
            &format!("client-{i}"),
            "some secret value",
        )
    });
    // A valid client and unknown users: every answer needs a password check, so most wait
    // for the hashing threads or are turned away at once with 503.
    let hashed = flood_logins(port, 150, Duration::from_secs(10), |i| {
        form(&format!("user-{i}"), CLIENT_ID, CLIENT_SECRET)
    });
    let peak = watch.peak();
    drop(watch);
    let settled = settles_near(pid, start, 50.0, Duration::from_secs(10));
    eprintln!(
        "login flood: RSS start {start:.1} MiB, peak {peak:.1} MiB, after {settled:.1} MiB; \
         unknown clients {unknown:?}; valid client {hashed:?}"
    );
    assert!(
        unknown.iter().all(|(s, _)| *s == 400),
        "unknown clients get 400 invalid_client: {unknown:?}"
    );
    assert!(unknown.iter().map(|(_, n)| n).sum::<usize>() > 1000);
    assert!(
        hashed.iter().all(|(s, _)| *s == 400 || *s == 503),
        "bad credentials or busy: {hashed:?}"
    );
    assert!(
        hashed.iter().any(|(s, _)| *s == 503),
        "the queue filled: {hashed:?}"
    );
    assert!(peak < 300.0, "peak RSS {peak:.1} MiB");
    assert!(
        settled <= start + 50.0,
        "RSS {settled:.1} MiB after the flood, {start:.1} MiB before"
    );
}

#[test]
fn a_login_flood_does_not_starve_health_reads_or_the_executor() {
    let _solo = solo();
    let db = TestDb::new(Backend::Sqlite);
    let service = Service::start("fair", db.url(), "all", &[]);
    let base = service.base();
    let port = service.port.unwrap();
    let api = client_with_token(&login(&base, ADMIN, ADMIN_PASSWORD));
    let (_, job) = read(
        api.post(format!("{base}/api/v4.1/job"))
            .json(&json!({"name": "fair", "retailerId": "1"}))
            .send()
            .unwrap(),
    );
    let job = job["id"].as_str().unwrap().to_owned();

    let flooding = AtomicBool::new(true);
    let (mut health_ms, reads, batches) = std::thread::scope(|scope| {
        let flood = scope.spawn(|| {
            let counts = flood_logins(port, 50, Duration::from_secs(10), |i| {
                form(&format!("user-{i}"), CLIENT_ID, CLIENT_SECRET)
            });
            flooding.store(false, Ordering::SeqCst);
            counts
        });
        std::thread::sleep(Duration::from_millis(500));
        let mut health_ms = Vec::new();
        let mut reads = Vec::new();
        let mut batches = Vec::new();
        let mut n = 0;
        while flooding.load(Ordering::SeqCst) {
            let started = Instant::now();
            let health = reqwest::blocking::get(format!("{base}/health")).unwrap();
            health_ms.push(started.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(health.status(), StatusCode::OK);
            if n % 10 == 0 {
                let (status, body) = read(
                    api.post(format!("{base}/api/v4.1/job/{job}/batch"))
                        .json(&json!({"action": "UPSERT", "entityType": "INVENTORY",
                                      "entities": [record("1", "L", &format!("S{n}"), n)]}))
                        .send()
                        .unwrap(),
                );
                assert_eq!(
                    status,
                    StatusCode::OK,
                    "batch post during the flood: {body}"
                );
                batches.push(body["id"].as_str().unwrap().to_owned());
            }
            let (status, body) = read(
                api.get(format!("{base}/api/v4.1/job/{job}"))
                    .send()
                    .unwrap(),
            );
            reads.push(status);
            assert_ne!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
            n += 1;
            std::thread::sleep(Duration::from_millis(20));
        }
        let counts = flood.join().unwrap();
        eprintln!("fairness flood answers: {counts:?}");
        (health_ms, reads, batches)
    });
    health_ms.sort_by(f64::total_cmp);
    let p50 = health_ms[health_ms.len() / 2];
    eprintln!(
        "during a 50-connection login flood: /health p50 {p50:.1} ms over {} probes, {} reads",
        health_ms.len(),
        reads.len()
    );
    assert!(health_ms.len() > 50);
    assert!(p50 < 50.0, "/health p50 {p50:.1} ms");
    assert!(reads.iter().all(|s| *s == StatusCode::OK));
    // The executor kept running: every batch posted during the flood completes.
    for batch in &batches {
        let body = completed_batch(
            &api,
            &format!("{base}/api/v4.1/job/{job}/batch/{batch}"),
            Duration::from_secs(20),
            Duration::from_millis(20),
        );
        assert_eq!(body["results"][0]["responseCode"], 200);
    }
}

backend_tests!(every_token_parameter_is_capped_and_nothing_long_is_stored);
fn every_token_parameter_is_capped_and_nothing_long_is_stored(backend: Backend) {
    let app = TestApp::spawn(backend);
    for (field, value) in [
        ("username", "u".repeat(3000)),
        ("username", "\u{1F600}".repeat(256)),
        ("password", "p".repeat(2000)),
        ("client_id", "c".repeat(300)),
        ("client_secret", "s".repeat(2000)),
        ("scope", "a".repeat(100)),
        ("grant_type", "g".repeat(100)),
    ] {
        let (status, body) = token_request(&app.base, &[(field, &value)]);
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{backend:?} {field}: {body}"
        );
        assert_eq!(
            body["error"], "invalid_request",
            "{backend:?} {field}: {body}"
        );
    }
    // A 15 MB username never reaches the database: the form body itself is too large.
    let huge = form(&"u".repeat(15 * 1024 * 1024), CLIENT_ID, CLIENT_SECRET);
    let response = reqwest::blocking::Client::new()
        .post(app.url("/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(huge)
        .send()
        .unwrap();
    let (status, body) = read(response);
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request")),
        "{backend:?}: {body}"
    );
    // A 255-character username is a normal failed login.
    let (status, body) = token_request(
        &app.base,
        &[("username", &"\u{4E2D}".repeat(255)), ("password", "x")],
    );
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let stored = numbers(
        app.db.url(),
        "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM login_failures",
    );
    assert_eq!(
        stored,
        vec![1],
        "{backend:?}: only the capped username is counted"
    );
}

backend_tests!(a_key_too_long_for_the_index_fails_only_its_own_record);
fn a_key_too_long_for_the_index_fails_only_its_own_record(backend: Backend) {
    let app = TestApp::spawn(backend);
    let retailer = "\u{4E2D}".repeat(255);
    let job = app.create_job(json!(retailer));
    let emoji = "\u{1F600}".repeat(255);
    let mut records: Vec<Value> = (0..100)
        .map(|i| record(&retailer, "L", &format!("SKU-{i}"), i))
        .collect();
    records.insert(50, record(&retailer, &emoji, &emoji, 1));
    let batch = app.post_batch(&job, json!(records));
    let done = app.wait_complete(&job, &batch, 200);
    let results = done["results"].as_array().unwrap();
    assert_eq!(results.len(), 101);
    for (i, result) in results.iter().enumerate() {
        let expected = if i == 50 { 400 } else { 200 };
        assert_eq!(
            result["responseCode"], expected,
            "{backend:?} record {i}: {result}"
        );
    }
    assert!(
        results[50]["message"]
            .as_str()
            .unwrap()
            .contains("at most 765 bytes"),
        "{}",
        results[50]
    );
}

/// A 5000-record batch of about 16.5 MB (each record carries ~3.3 KB of attributes); record
/// `i` sets quantity `i + shift`.
fn large_batch(shift: usize) -> Vec<u8> {
    let padding = "x".repeat(3200);
    let entities: Vec<Value> = (0..5000)
        .map(|i| {
            json!({"retailerId": "1", "locationRef": "L", "skuRef": format!("BIG-{i}"), "qty": i + shift,
                   "attributes": {"padding": padding}})
        })
        .collect();
    serde_json::to_vec(
        &json!({"action": "UPSERT", "entityType": "INVENTORY", "entities": entities}),
    )
    .unwrap()
}

#[test]
fn a_burst_of_large_uploads_is_bounded_and_memory_comes_back() {
    let _solo = solo();
    let db = TestDb::new(Backend::Sqlite);
    let service = Service::start("uploads", db.url(), "all", &[]);
    let (pid, base) = (service.child.id(), service.base());
    let token = login(&base, ADMIN, ADMIN_PASSWORD);
    let api = client_with_token(&token);
    let (_, job) = read(
        api.post(format!("{base}/api/v4.1/job"))
            .json(&json!({"name": "uploads", "retailerId": "1"}))
            .send()
            .unwrap(),
    );
    let job = job["id"].as_str().unwrap().to_owned();
    let body = Arc::new(large_batch(0));
    assert!(
        body.len() > 16_000_000 && body.len() < 16 * 1024 * 1024,
        "{}",
        body.len()
    );
    let post = |body: Vec<u8>| {
        reqwest::blocking::Client::new()
            .post(format!("{base}/api/v4.1/job/{job}/batch"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .unwrap()
    };
    let applied = |batch: &str| {
        let b = completed_batch(
            &api,
            &format!("{base}/api/v4.1/job/{job}/batch/{batch}?count=1"),
            Duration::from_secs(120),
            Duration::from_millis(100),
        );
        assert_eq!(b["results"][0]["responseCode"], 200, "{b}");
    };
    // One large batch first (other quantities, so the burst still writes): what a service
    // holds once it has applied one (SQLite's page caches, prepared statements) is the
    // baseline the burst is measured against.
    let (status, warm_up) = read(post(large_batch(1)));
    assert_eq!(status, StatusCode::OK, "{warm_up}");
    applied(warm_up["id"].as_str().unwrap());
    std::thread::sleep(Duration::from_millis(300));
    let start = rss_mib(pid);
    let watch = RssWatch::start(pid);

    let accepted = Mutex::new(Vec::new());
    let refused = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..40 {
            let (body, post) = (body.clone(), &post);
            let (accepted, refused) = (&accepted, &refused);
            scope.spawn(move || {
                let response = post(body.to_vec());
                let retry_after = response.headers().get("retry-after").is_some();
                let (status, answer) = read(response);
                match status {
                    StatusCode::OK => accepted
                        .lock()
                        .unwrap()
                        .push(answer["id"].as_str().unwrap().to_owned()),
                    StatusCode::SERVICE_UNAVAILABLE => {
                        assert!(retry_after, "503 says when to retry");
                        assert_errors(status, &answer, StatusCode::SERVICE_UNAVAILABLE);
                        refused.fetch_add(1, Ordering::SeqCst);
                    }
                    other => panic!("unexpected {other}: {answer}"),
                }
            });
        }
    });
    let accepted = accepted.into_inner().unwrap();
    for batch in &accepted {
        applied(batch);
    }
    let peak = watch.peak();
    drop(watch);
    let settled = settles_near(pid, start, 40.0, Duration::from_secs(10));
    eprintln!(
        "40 concurrent 16.5 MB uploads: {} accepted, {} refused with 503; RSS start {start:.1}, \
         peak {peak:.1}, after {settled:.1} MiB",
        accepted.len(),
        refused.load(Ordering::SeqCst)
    );
    assert!(!accepted.is_empty());
    assert!(
        refused.load(Ordering::SeqCst) > 0,
        "the in-flight budget refused some"
    );
    assert!(peak < 500.0, "peak RSS {peak:.1} MiB");
    assert!(
        settled <= start + 40.0,
        "RSS {settled:.1} MiB after, {start:.1} before"
    );
}

#[test]
fn a_body_that_trickles_in_is_cut_off_with_408() {
    let db = TestDb::new(Backend::Sqlite);
    let service = Service::start(
        "slow",
        db.url(),
        "all",
        &[("STOCKBATCH_BODY_TIMEOUT_SECS", "2")],
    );
    let token = login(&service.base(), ADMIN, ADMIN_PASSWORD);
    let mut conn = Conn::open(service.port.unwrap());
    let head = format!(
        "POST /api/v4.1/job HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    );
    conn.writer.write_all(head.as_bytes()).unwrap();
    let started = Instant::now();
    let writer = conn.writer.try_clone().unwrap();
    let trickle = std::thread::spawn(move || {
        let mut writer = writer;
        for _ in 0..10 {
            if writer.write_all(b" ").is_err() {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    let (status, body) = read_response(&mut conn.reader).expect("an answer");
    let waited = started.elapsed();
    assert_eq!(status, 408);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_errors(
        StatusCode::REQUEST_TIMEOUT,
        &body,
        StatusCode::REQUEST_TIMEOUT,
    );
    assert!(waited < Duration::from_secs(5), "answered after {waited:?}");
    trickle.join().unwrap();
}

#[test]
fn a_corrupt_compressed_body_gets_a_readable_400() {
    let app = TestApp::spawn(Backend::Sqlite);
    let response = app
        .client
        .post(app.url("/api/v4.1/job"))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(b"this is not gzip at all".to_vec())
        .send()
        .unwrap();
    let (status, body) = read(response);
    let messages = error_messages(Backend::Sqlite, status, &body, StatusCode::BAD_REQUEST);
    assert!(
        messages[0].contains("could not be decompressed") && !messages[0].contains('{'),
        "{messages:?}"
    );
}

#[test]
fn api_responses_are_not_sniffed_or_cached() {
    let app = TestApp::spawn(Backend::Sqlite);
    for path in ["/health", "/api/v4.1/inventory", "/no/such/route"] {
        let response = app.client.get(app.url(path)).send().unwrap();
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["cache-control"], "no-store", "{path}");
    }
}

/// Sends a raw request head and returns the status and the parsed errors body.
fn raw_error(port: u16, request: &[u8]) -> (u16, Value) {
    let mut conn = Conn::open(port);
    conn.writer.write_all(request).unwrap();
    let (status, body) = read_response(&mut conn.reader).expect("an answer");
    let body = serde_json::from_slice(&body)
        .unwrap_or_else(|_| panic!("{status}: not JSON: {}", String::from_utf8_lossy(&body)));
    (status, body)
}

#[test]
fn requests_the_http_parser_refuses_still_get_the_errors_body() {
    let db = TestDb::new(Backend::Sqlite);
    let service = Service::start("parser", db.url(), "api", &[]);
    let port = service.port.unwrap();
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(100_000));
    let many_headers = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..200)
            .map(|i| format!("x-h{i}: v\r\n"))
            .collect::<String>()
    );
    let huge_header = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nx-big: {}\r\n\r\n",
        "b".repeat(1024 * 1024)
    );
    for (request, status) in [(long_uri, 400), (many_headers, 431), (huge_header, 431)] {
        let (got, body) = raw_error(port, request.as_bytes());
        assert_eq!(got, status, "{body}");
        let code = StatusCode::from_u16(status).unwrap();
        assert_errors(code, &body, code);
    }
}

#[test]
#[cfg_attr(not(postgres_tests), ignore = "needs STOCKBATCH_TEST_POSTGRES_URL")]
#[cfg_attr(
    not(netns_tests),
    ignore = "needs root and iproute2 for a network namespace"
)]
fn a_silent_database_partition_answers_503_in_time_and_recovers_with_nothing_lost() {
    let net = netns::Partitionable::create("127.0.0.1:5432")
        .expect("this machine cannot create network namespaces");
    let db = TestDb::new(Backend::Postgres);
    let TestDb::Postgres { name, .. } = &db else {
        unreachable!()
    };
    let timeout = Duration::from_millis(2000);
    let service = Service::start_with(
        net.command(Service::binary()),
        &net.bind_addr(),
        "partitioned",
        &net.database_url(name),
        "all",
        &[
            ("STOCKBATCH_DB_TIMEOUT_MS", "2000"),
            ("STOCKBATCH_LEASE_SECS", "5"),
        ],
    );
    let base = format!("http://{}:{}", net.service_host(), service.port.unwrap());
    let api = client_with_token(&login(&base, ADMIN, ADMIN_PASSWORD));
    let post = |path: &str, body: &Value| {
        read(api.post(format!("{base}{path}")).json(body).send().unwrap())
    };
    let (_, job) = post(
        "/api/v4.1/job",
        &json!({"name": "partition", "retailerId": "5"}),
    );
    let job = job["id"].as_str().unwrap().to_owned();
    let batch_of = |n: i64| {
        let records: Vec<Value> = (0..2000)
            .map(|i| record("5", "L", &format!("S{i}"), n * 10_000 + i))
            .collect();
        json!({"action": "UPSERT", "entityType": "INVENTORY", "entities": records})
    };
    let batch_path = format!("/api/v4.1/job/{job}/batch");
    let mut accepted: Vec<String> = (0..3)
        .map(|n| {
            post(&batch_path, &batch_of(n)).1["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();

    net.drop_database_packets();
    let partition = Instant::now();
    let mut answered = Vec::new();
    while partition.elapsed() < Duration::from_secs(30) {
        let started = Instant::now();
        let response = api
            .get(format!("{base}/api/v4.1/job/{job}"))
            .send()
            .unwrap();
        let took = started.elapsed();
        let (status, body) = read(response);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_errors(status, &body, StatusCode::SERVICE_UNAVAILABLE);
        answered.push(took);
        let started = Instant::now();
        let (status, body) = post(&batch_path, &batch_of(9));
        let took_post = started.elapsed();
        match status {
            // Accepted just as the partition began: it must not be lost.
            StatusCode::OK => accepted.push(body["id"].as_str().unwrap().to_owned()),
            _ => assert_errors(status, &body, StatusCode::SERVICE_UNAVAILABLE),
        }
        answered.push(took_post);
        let health = reqwest::blocking::get(format!("{base}/health")).unwrap();
        assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    let slowest = answered.iter().max().unwrap();
    eprintln!(
        "silent partition: {} requests answered, slowest {slowest:?} (timeout {timeout:?})",
        answered.len()
    );
    assert!(
        *slowest < timeout + Duration::from_millis(1500),
        "slowest answer {slowest:?}"
    );

    net.heal();
    let healed = Instant::now();
    while reqwest::blocking::get(format!("{base}/health"))
        .unwrap()
        .status()
        != StatusCode::OK
    {
        assert!(
            healed.elapsed() < Duration::from_secs(30),
            "no recovery after the partition"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("healthy {:?} after the partition ended", healed.elapsed());
    accepted.push(
        post(&batch_path, &batch_of(10)).1["id"]
            .as_str()
            .unwrap()
            .to_owned(),
    );
    for batch in &accepted {
        let body = completed_batch(
            &api,
            &format!("{base}/api/v4.1/job/{job}/batch/{batch}?count=5000"),
            Duration::from_secs(60),
            Duration::from_millis(200),
        );
        let results = body["results"].as_array().unwrap();
        assert_eq!(results.len(), 2000);
        assert!(
            results.iter().all(|r| r["responseCode"] == 200),
            "batch {batch}"
        );
    }
    let results = numbers(
        db.url(),
        "SELECT CAST(COALESCE(SUM(results), 0) AS BIGINT) AS n FROM batch_result_chunks",
    );
    assert_eq!(
        results,
        vec![2000 * accepted.len() as i64],
        "one result per record, once"
    );
    let stock = numbers(
        db.url(),
        "SELECT qty AS n FROM inventory_positions WHERE sku_ref = 'S7'",
    );
    assert_eq!(stock, vec![10 * 10_000 + 7], "the last batch accepted wins");
}

backend_tests!(a_record_the_database_refuses_fails_alone);
fn a_record_the_database_refuses_fails_alone(backend: Backend) {
    let db = TestDb::new(backend);
    let service = Service::start(
        "refusing",
        db.url(),
        "all",
        &[("STOCKBATCH_FAULT_REFUSED_SKU", "POISON")],
    );
    let base = service.base();
    let api = client_with_token(&login(&base, ADMIN, ADMIN_PASSWORD));
    let (_, job) = read(
        api.post(format!("{base}/api/v4.1/job"))
            .json(&json!({"name": "refused", "retailerId": "1"}))
            .send()
            .unwrap(),
    );
    let job = job["id"].as_str().unwrap().to_owned();
    let mut records: Vec<Value> = (0..100)
        .map(|i| record("1", "L", &format!("SKU-{i}"), i))
        .collect();
    records.insert(50, record("1", "L", "POISON", 1));
    let (status, batch) = read(
        api.post(format!("{base}/api/v4.1/job/{job}/batch"))
            .json(&json!({"action": "UPSERT", "entityType": "INVENTORY", "entities": records}))
            .send()
            .unwrap(),
    );
    assert_eq!(status, StatusCode::OK, "{batch}");
    let batch = batch["id"].as_str().unwrap();
    let done = completed_batch(
        &api,
        &format!("{base}/api/v4.1/job/{job}/batch/{batch}?count=200"),
        Duration::from_secs(30),
        Duration::from_millis(20),
    );
    let results = done["results"].as_array().unwrap();
    assert_eq!(results.len(), 101);
    for (i, r) in results.iter().enumerate() {
        let expected = if i == 50 { 400 } else { 200 };
        assert_eq!(r["responseCode"], expected, "{backend:?} {i}: {r}");
    }
    assert!(results[50]["message"]
        .as_str()
        .unwrap()
        .starts_with("the database cannot store this record"));
    assert_eq!(
        numbers(db.url(), "SELECT COUNT(*) AS n FROM inventory_movements"),
        vec![100],
        "{backend:?}: the refused record moved nothing"
    );
}
