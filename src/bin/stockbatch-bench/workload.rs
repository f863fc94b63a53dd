//! What the benchmark posts, and the checks on what comes back.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::api::RecordResult;

/// Every job and record belongs to this retailer.
pub const RETAILER: &str = "1001";

pub const CREATED: &str = "Inventory created";
pub const UPDATED: &str = "Inventory updated";
/// The message of an applied StateSet adjustment.
pub const ADJUSTED: &str = "Inventory adjusted successfully";

/// Locations per SKU: position `n` is SKU `n / LOCATIONS` at location `n % LOCATIONS`.
pub const LOCATIONS: usize = 20;
/// What pass 2 adds to each position's pass-1 quantity.
pub const UPDATE_DELTA: i64 = 7;

/// Pass 3 re-posts pass 2's records as they are: Batch Pre-Processing answers each so.
pub const UNCHANGED: &str = "Inventory unchanged";

/// The message every record gets in pass 1 (positions created), pass 2 (updated) and
/// pass 3 (the same snapshot again: unchanged).
pub fn expected_message(pass: u8) -> &'static str {
    match pass {
        1 => CREATED,
        2 => UPDATED,
        _ => UNCHANGED,
    }
}

/// The positions a batch writes: the measured batches, or the idle-latency probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Space {
    Main,
    Probe,
}

pub struct Record {
    pub location_ref: String,
    pub sku_ref: String,
    pub qty: i64,
}

impl Record {
    /// Record `i` of batch `batch` (of `records` each) in `pass`: every (batch, i) is its
    /// own position; pass 2 writes the same positions, other qty.
    pub fn new(space: Space, batch: usize, i: usize, records: usize, pass: u8) -> Record {
        Record::at(space, batch * records + i, pass)
    }

    /// The record of position `n` in `pass`.
    pub fn at(space: Space, n: usize, pass: u8) -> Record {
        let prefix = match space {
            Space::Main => "SKU",
            Space::Probe => "PROBE",
        };
        Record {
            sku_ref: format!("{prefix}-{:07}", n / LOCATIONS),
            location_ref: format!("LOC-{:02}", n % LOCATIONS),
            qty: (n % 1000) as i64 + if pass == 1 { 0 } else { UPDATE_DELTA },
        }
    }

    /// How the service names a record without `ref` in its result.
    pub fn entity_ref(&self) -> String {
        format!("{}:{}", self.sku_ref, self.location_ref)
    }
}

/// The JSON body of a batch post.
pub fn batch_body(space: Space, batch: usize, records: usize, pass: u8) -> Vec<u8> {
    let mut body = String::with_capacity(records * 90 + 64);
    body.push_str(r#"{"action":"UPSERT","entityType":"INVENTORY","entities":["#);
    for i in 0..records {
        let r = Record::new(space, batch, i, records, pass);
        if i > 0 {
            body.push(',');
        }
        let _ = write!(
            body,
            r#"{{"retailerId":"{RETAILER}","locationRef":"{}","skuRef":"{}","qty":{}}}"#,
            r.location_ref, r.sku_ref, r.qty
        );
    }
    body.push_str("]}");
    body.into_bytes()
}

/// One relative StateSet adjustment: measured position `n` changes by `delta` from
/// `previous` (what the model expects it holds).
#[derive(Clone, Copy, Debug)]
pub struct Adjustment {
    pub n: usize,
    pub previous: i64,
    pub delta: i64,
}

/// The JSON body of a StateSet batch of relative adjustments.
pub fn adjust_body(items: &[Adjustment]) -> Vec<u8> {
    let mut body = String::with_capacity(items.len() * 110 + 96);
    body.push_str(r#"{"operation":"adjust","items":["#);
    for (i, a) in items.iter().enumerate() {
        let r = Record::at(Space::Main, a.n, 2);
        if i > 0 {
            body.push(',');
        }
        let _ = write!(
            body,
            r#"{{"sku":"{}","data":{{"adjustment_type":"relative","quantity":{},"location":"{}"}}}}"#,
            r.sku_ref, a.delta, r.location_ref
        );
    }
    body.push_str(r#"],"options":{"continue_on_error":true}}"#);
    body.into_bytes()
}

/// Failed checks: counted, the first few kept to show.
#[derive(Default)]
pub struct Checks {
    failures: AtomicUsize,
    first: Mutex<Vec<String>>,
}

impl Checks {
    pub fn fail(&self, message: String) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first.lock().unwrap();
        if first.len() < 10 {
            first.push(message);
        }
    }

    pub fn ensure(&self, ok: bool, message: impl FnOnce() -> String) {
        if !ok {
            self.fail(message());
        }
    }

    pub fn count(&self) -> usize {
        self.failures.load(Ordering::Relaxed)
    }

    pub fn first(&self) -> Vec<String> {
        self.first.lock().unwrap().clone()
    }
}

/// The position id each record got in pass 1, so pass 2 can check it updates the same one.
pub struct EntityIds(Vec<AtomicI64>);

impl EntityIds {
    pub fn new(len: usize) -> EntityIds {
        EntityIds((0..len).map(|_| AtomicI64::new(0)).collect())
    }
}

/// Checks the results of records `first..` of a batch, in order.
#[allow(clippy::too_many_arguments)]
pub fn check_results(
    checks: &Checks,
    ids: &EntityIds,
    space: Space,
    batch: usize,
    records: usize,
    pass: u8,
    first: usize,
    results: &[RecordResult],
) {
    for (k, result) in results.iter().enumerate() {
        let i = first + k;
        let record = Record::new(space, batch, i, records, pass);
        let what = || format!("pass {pass}, {space:?} batch {batch}, record {i}: {result:?}");
        let entity_ref = record.entity_ref();
        if result.response_code != 200
            || result.message != expected_message(pass)
            || result.entity_ref.as_deref() != Some(entity_ref.as_str())
        {
            checks.fail(format!(
                "{} (expected 200 {:?} {entity_ref:?})",
                what(),
                expected_message(pass)
            ));
            continue;
        }
        let Some(id) = result
            .entity_id
            .as_deref()
            .and_then(|id| id.parse::<i64>().ok())
        else {
            checks.fail(format!("{}: no numeric entityId", what()));
            continue;
        };
        let slot = &ids.0[batch * records + i];
        if pass == 1 {
            slot.store(id, Ordering::Relaxed);
        } else {
            let before = slot.load(Ordering::Relaxed);
            checks.ensure(before == id, || {
                format!("{}: entityId {id}, but pass 1 gave {before}", what())
            });
        }
    }
}
