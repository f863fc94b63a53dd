//! Serial equivalence, tried hard: concurrent clients post random mixed batches of both APIs
//! (Fluent absolute upserts, with Batch Pre-Processing; StateSet relative and absolute
//! adjustments, transfers and cycle counts, some dry runs, some stopping at errors) over a few shared positions, retrying
//! some with the same Idempotency-Key, to real executor processes — two on PostgreSQL, one
//! on SQLite — one of which is killed with SIGKILL mid-run and replaced. Afterwards the
//! stock, every result and the ledger must equal a model that applies the accepted batches
//! one at a time in acceptance (id) order. The model is written here, apart from the
//! service's code. Set `STOCKBATCH_EXACTNESS_SEED` to replay a run.

mod common;
#[path = "support/process.rs"]
mod process;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use process::{numbers, Service};
use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::{json, Value};

const RETAILER: &str = "77";
const SKUS: [&str; 3] = ["P0", "P1", "P2"];
const LOCATIONS: [&str; 3] = ["L0", "L1", "L2"];
const CLIENTS: usize = 4;
const BATCHES_PER_CLIENT: usize = 25;

/// xorshift64*: small, seedable, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    fn pick<'a>(&mut self, of: &[&'a str]) -> &'a str {
        of[self.below(of.len() as u64) as usize]
    }
}

/// A batch as posted, to replay in the model.
#[derive(Debug, Clone)]
enum Posted {
    Fluent(Vec<(String, String, i64)>),
    StateSet {
        operation: String,
        items: Vec<Value>,
        continue_on_error: bool,
        validate_only: bool,
    },
}

fn random_batch(rng: &mut Rng) -> Posted {
    let n = rng.range(1, 6) as usize;
    if rng.below(3) == 0 {
        return Posted::Fluent(
            (0..n)
                .map(|_| {
                    (
                        rng.pick(&LOCATIONS).to_owned(),
                        rng.pick(&SKUS).to_owned(),
                        rng.range(0, 50),
                    )
                })
                .collect(),
        );
    }
    let operation = ["adjust", "adjust", "transfer", "cycle_count"][rng.below(4) as usize];
    let items = (0..n)
        .map(|_| {
            let sku = rng.pick(&SKUS);
            let data = match operation {
                "adjust" if rng.below(4) == 0 => {
                    json!({"adjustment_type": "absolute", "quantity": rng.range(0, 40), "location": rng.pick(&LOCATIONS)})
                }
                "adjust" => {
                    json!({"adjustment_type": "relative", "quantity": rng.range(-15, 15), "location": rng.pick(&LOCATIONS), "reason": "r"})
                }
                "transfer" => {
                    let from = rng.below(3) as usize;
                    let to = (from + 1 + rng.below(2) as usize) % 3;
                    json!({"from_location": LOCATIONS[from], "to_location": LOCATIONS[to], "quantity": rng.range(1, 20)})
                }
                _ => json!({"counted_quantity": rng.range(0, 40), "location": rng.pick(&LOCATIONS)}),
            };
            json!({"sku": sku, "data": data})
        })
        .collect();
    Posted::StateSet {
        operation: operation.to_owned(),
        items,
        continue_on_error: rng.below(2) == 0,
        validate_only: rng.below(8) == 0,
    }
}

/// What the model expects of one item.
#[derive(Debug, Clone, PartialEq)]
enum Expected {
    Created,
    Updated,
    /// Batch Pre-Processing: the record changes nothing.
    Unchanged,
    Success(Value),
    Error,
    Skipped,
}

/// Per position (location, SKU): its movements as (batch id, previous, new), in order.
type Ledger = BTreeMap<(String, String), Vec<(i64, i64, i64)>>;

#[derive(Default)]
struct Model {
    stock: BTreeMap<(String, String), i64>,
    /// Per position: (batch id, previous, new) in order.
    ledger: Ledger,
}

impl Model {
    fn qty(&self, key: &(String, String)) -> i64 {
        self.stock.get(key).copied().unwrap_or(0)
    }

    fn set(&mut self, batch: i64, key: (String, String), new: i64) {
        let previous = self.qty(&key);
        self.ledger
            .entry(key.clone())
            .or_default()
            .push((batch, previous, new));
        self.stock.insert(key, new);
    }

    fn apply(&mut self, batch: i64, posted: &Posted) -> Vec<Expected> {
        match posted {
            Posted::Fluent(records) => records
                .iter()
                .map(|(loc, sku, qty)| {
                    let key = (loc.clone(), sku.clone());
                    match self.stock.get(&key) {
                        None => {
                            self.set(batch, key, *qty);
                            Expected::Created
                        }
                        Some(stored) if stored == qty => Expected::Unchanged,
                        Some(_) => {
                            self.set(batch, key, *qty);
                            Expected::Updated
                        }
                    }
                })
                .collect(),
            Posted::StateSet {
                operation,
                items,
                continue_on_error,
                validate_only,
            } => {
                // A dry run sees the same stock but changes a scratch copy.
                let saved = (*validate_only).then(|| (self.stock.clone(), self.ledger.clone()));
                let mut stopped = false;
                let out = items
                    .iter()
                    .map(|item| {
                        if stopped {
                            return Expected::Skipped;
                        }
                        let expected = self.item(batch, operation, item);
                        if expected == Expected::Error && !continue_on_error {
                            stopped = true;
                        }
                        expected
                    })
                    .collect();
                if let Some((stock, ledger)) = saved {
                    self.stock = stock;
                    self.ledger = ledger;
                }
                out
            }
        }
    }

    fn item(&mut self, batch: i64, operation: &str, item: &Value) -> Expected {
        let sku = item["sku"].as_str().unwrap().to_owned();
        let d = &item["data"];
        let at = |l: &Value| (l.as_str().unwrap().to_owned(), sku.clone());
        match operation {
            "adjust" => {
                let key = at(&d["location"]);
                let previous = self.qty(&key);
                let q = d["quantity"].as_i64().unwrap();
                let new = if d["adjustment_type"] == "absolute" {
                    q
                } else {
                    previous + q
                };
                if new < 0 {
                    return Expected::Error;
                }
                self.set(batch, key, new);
                Expected::Success(json!({"previous_quantity": previous, "new_quantity": new}))
            }
            "transfer" => {
                let (from, to) = (at(&d["from_location"]), at(&d["to_location"]));
                let q = d["quantity"].as_i64().unwrap();
                let (fp, tp) = (self.qty(&from), self.qty(&to));
                if fp < q {
                    return Expected::Error;
                }
                self.set(batch, from, fp - q);
                self.set(batch, to, tp + q);
                Expected::Success(json!({"from": fp - q, "to": tp + q}))
            }
            _ => {
                let key = at(&d["location"]);
                let previous = self.qty(&key);
                let counted = d["counted_quantity"].as_i64().unwrap();
                self.set(batch, key, counted);
                Expected::Success(json!({"previous_quantity": previous, "new_quantity": counted}))
            }
        }
    }
}

/// The answer of a POST with `key`, retried on 503 (the service may be busy or restarting).
fn post(client: &Client, url: &str, key: &str, body: &Value) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = client
            .post(url)
            .header("Idempotency-Key", key)
            .json(body)
            .send();
        if let Ok(response) = response {
            let (status, answer) = read(response);
            match status {
                StatusCode::OK | StatusCode::ACCEPTED => return answer,
                StatusCode::SERVICE_UNAVAILABLE => {}
                other => panic!("POST {url}: {other} {answer}"),
            }
        }
        assert!(Instant::now() < deadline, "POST {url} kept failing");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn batch_id(answer: &Value) -> i64 {
    let id = answer["id"]
        .as_str()
        .or(answer["batch_id"].as_str())
        .unwrap();
    id.trim_start_matches("batch_").parse().unwrap()
}

fn run_and_compare(backend: Backend, seed: u64) {
    let db = TestDb::new(backend);
    let quick = [("STOCKBATCH_STATESET_WAIT_MS", "0")];
    let api = Service::start("api", db.url(), "api", &quick);
    let base = api.base();
    let admin = client_with_token(&login(&base, ADMIN, ADMIN_PASSWORD));
    let key = {
        let output = std::process::Command::new(Service::binary())
            .args([
                "api-key",
                "create",
                "exactness",
                "--retailer",
                RETAILER,
                "--database-url",
                db.url(),
            ])
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .last()
            .unwrap()
            .trim()
            .to_owned()
    };
    let shop = client_with_token(&key);
    let job = read(
        admin
            .post(format!("{base}/api/v4.1/job"))
            .json(&json!({"name": "exact", "retailerId": RETAILER}))
            .send()
            .unwrap(),
    )
    .1;
    let job = job["id"].as_str().unwrap().to_owned();

    // Executors slow enough that batches overlap and a kill lands inside one.
    let executor_env = [
        ("STOCKBATCH_FAULT_APPLY_DELAY_MS", "40"),
        ("STOCKBATCH_LEASE_SECS", "2"),
        ("STOCKBATCH_EXECUTOR_WORKERS", "2"),
    ];
    let executors = if backend == Backend::Postgres { 2 } else { 1 };
    let mut running: Vec<Service> = (0..executors)
        .map(|n| {
            Service::start(
                &format!("executor-{n}"),
                db.url(),
                "executor",
                &executor_env,
            )
        })
        .collect();

    let accepted: Mutex<Vec<(i64, Posted)>> = Mutex::default();
    std::thread::scope(|scope| {
        for c in 0..CLIENTS {
            let (accepted, admin, shop, base, job) = (&accepted, &admin, &shop, &base, &job);
            scope.spawn(move || {
                let mut rng = Rng(seed ^ (0x9E37_79B9_7F4A_7C15_u64.wrapping_mul(c as u64 + 1)));
                for b in 0..BATCHES_PER_CLIENT {
                    let posted = random_batch(&mut rng);
                    let idempotency = format!("c{c}-b{b}");
                    let (client, url, body) = match &posted {
                        Posted::Fluent(records) => (
                            admin,
                            format!("{base}/api/v4.1/job/{job}/batch"),
                            json!({"action": "UPSERT", "entityType": "INVENTORY", "entities":
                                records.iter().map(|(l, s, q)| record(RETAILER, l, s, *q)).collect::<Vec<_>>()}),
                        ),
                        Posted::StateSet { operation, items, continue_on_error, validate_only } => (
                            shop,
                            format!("{base}/api/v1/inventory/batch"),
                            json!({"operation": operation, "items": items,
                                   "options": {"continue_on_error": continue_on_error, "validate_only": validate_only}}),
                        ),
                    };
                    let id = batch_id(&post(client, &url, &idempotency, &body));
                    // Some clients retry a request they already got an answer to.
                    if rng.below(4) == 0 {
                        let again = batch_id(&post(client, &url, &idempotency, &body));
                        assert_eq!(again, id, "a retry with the same key names the same batch");
                    }
                    accepted.lock().unwrap().push((id, posted));
                }
            });
        }
        // Mid-run: kill an executor with SIGKILL while it holds a batch, and start another.
        let victim = running[0].child.id();
        let holding = format!(
            "SELECT COUNT(*) AS n FROM batches WHERE status = 'RUNNING' \
             AND lease_owner LIKE 'executor-{victim}-%'"
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while numbers(db.url(), &holding) == vec![0] {
            assert!(
                Instant::now() < deadline,
                "{backend:?}: the executor never ran a batch"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        running[0].kill9();
        running[0] = Service::start("executor-replacement", db.url(), "executor", &executor_env);
    });

    let mut accepted = accepted.into_inner().unwrap();
    accepted.sort_by_key(|(id, _)| *id);
    let ids: Vec<i64> = accepted.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        numbers(db.url(), "SELECT id AS n FROM batches ORDER BY id"),
        ids,
        "{backend:?}: every accepted batch stored once, and nothing else"
    );

    // Wait for every batch.
    let deadline = Instant::now() + Duration::from_secs(120);
    while numbers(
        db.url(),
        "SELECT COUNT(*) AS n FROM batches WHERE status <> 'COMPLETE'",
    ) != vec![0]
    {
        assert!(
            Instant::now() < deadline,
            "{backend:?}: batches left unfinished"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let (_, movements) = read(
        admin
            .get(format!(
                "{base}/api/v4.1/inventory/movements?retailerId={RETAILER}&count=5000"
            ))
            .send()
            .unwrap(),
    );
    let mut ledger: Ledger = BTreeMap::new();
    for m in movements["results"].as_array().unwrap() {
        let key = (
            m["locationRef"].as_str().unwrap().to_owned(),
            m["skuRef"].as_str().unwrap().to_owned(),
        );
        ledger.entry(key).or_default().push((
            m["batchId"].as_str().unwrap().parse().unwrap(),
            m["previousQty"].as_i64().unwrap(),
            m["newQty"].as_i64().unwrap(),
        ));
    }
    let mut model = Model::default();
    for (id, posted) in &accepted {
        let expected = model.apply(*id, posted);
        let actual: Vec<Value> = match posted {
            Posted::Fluent(_) => {
                let (_, b) = read(
                    admin
                        .get(format!("{base}/api/v4.1/job/{job}/batch/{id}?count=100"))
                        .send()
                        .unwrap(),
                );
                b["results"].as_array().unwrap().clone()
            }
            Posted::StateSet { .. } => {
                let (_, b) = read(
                    shop.get(format!("{base}/api/v1/inventory/batch/batch_{id}"))
                        .send()
                        .unwrap(),
                );
                b["results"].as_array().unwrap().clone()
            }
        };
        assert_eq!(
            actual.len(),
            expected.len(),
            "{backend:?} batch {id}: {actual:?}"
        );
        for (i, (got, want)) in actual.iter().zip(&expected).enumerate() {
            let ok = match want {
                Expected::Created => got["message"] == "Inventory created",
                Expected::Updated => got["message"] == "Inventory updated",
                Expected::Unchanged => got["message"] == "Inventory unchanged",
                Expected::Error => {
                    got["status"] == "error"
                        && got["message"]
                            .as_str()
                            .unwrap()
                            .starts_with("insufficient stock")
                }
                Expected::Skipped => got["status"] == "skipped",
                Expected::Success(data) => {
                    got["status"] == "success"
                        && match (data.get("from"), data.get("previous_quantity")) {
                            (Some(from), _) => {
                                got["data"]["from"]["new_quantity"] == *from
                                    && got["data"]["to"]["new_quantity"] == data["to"]
                            }
                            _ => {
                                got["data"]["previous_quantity"] == data["previous_quantity"]
                                    && got["data"]["new_quantity"] == data["new_quantity"]
                            }
                        }
                }
            };
            if !ok {
                let sku = got["sku"]
                    .as_str()
                    .or(got["entityRef"].as_str())
                    .unwrap_or("");
                let sku = sku.split(':').next().unwrap_or("");
                let of_sku = |l: &Ledger| {
                    l.iter()
                        .filter(|(k, _)| k.1 == sku)
                        .map(|(k, v)| format!("{}: {v:?}", k.0))
                        .collect::<Vec<_>>()
                };
                panic!(
                    "{backend:?} seed {seed}: batch {id} item {i}: expected {want:?}, got {got}\n\
                     service ledger of {sku}: {:#?}\nmodel ledger so far: {:#?}",
                    of_sku(&ledger),
                    of_sku(&model.ledger)
                );
            }
        }
    }

    // Stock and ledger, position by position.
    let (_, positions) = read(
        admin
            .get(format!(
                "{base}/api/v4.1/inventory?retailerId={RETAILER}&count=100"
            ))
            .send()
            .unwrap(),
    );
    let stock: BTreeMap<(String, String), i64> = positions["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                (
                    p["locationRef"].as_str().unwrap().to_owned(),
                    p["skuRef"].as_str().unwrap().to_owned(),
                ),
                p["qty"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(stock, model.stock, "{backend:?} seed {seed}: final stock");
    assert_eq!(ledger, model.ledger, "{backend:?} seed {seed}: the ledger");
    let attempts = numbers(
        db.url(),
        "SELECT CAST(MAX(attempts) AS BIGINT) AS n FROM batches",
    );
    eprintln!(
        "{backend:?} seed {seed}: {} batches, {} movements, most attempts {attempts:?}",
        accepted.len(),
        movements["total"]
    );
    assert!(
        attempts[0] >= 2,
        "{backend:?}: the kill interrupted a batch, which ran again"
    );
}

fn seed() -> u64 {
    std::env::var("STOCKBATCH_EXACTNESS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        })
}

#[test]
fn one_sqlite_executor_killed_mid_run_applies_both_apis_as_if_one_at_a_time() {
    run_and_compare(Backend::Sqlite, seed());
}

#[test]
#[cfg_attr(not(postgres_tests), ignore = "needs STOCKBATCH_TEST_POSTGRES_URL")]
fn two_postgresql_executors_one_killed_apply_both_apis_as_if_one_at_a_time() {
    run_and_compare(Backend::Postgres, seed());
}
