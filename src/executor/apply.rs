//! Applying one claimed batch: every record checked, positions upserted, one result per
//! record, and the batch marked COMPLETE.
//!
//! A batch applies in one transaction unless an API write is waiting for SQLite's write
//! lock: then the executor commits the steps it has done (positions with their results)
//! and goes on in a new transaction after that write. A record with a result is never
//! applied again, so a batch interrupted between transactions resumes where it stopped.

use std::collections::{HashMap, HashSet};

use anyhow::Context;
use chrono::Utc;
use diesel::Connection;
use serde_json::value::RawValue;

use crate::db::models::{ClaimedBatch, NewResult, PositionWrite};
use crate::db::{batches, positions, results, DbConnection, WriteGate};
use crate::domain::inventory::{
    check_record, InventoryRecord, RecordError, CODE_FAILED, CODE_OK, CREATED, UPDATED,
};

/// Versions order writes to a position: batch id, then the record's index in the batch.
pub const VERSION_STRIDE: i64 = 8192;

/// Most records one step upserts where API writes share a write lock (SQLite): a waiting
/// write gets the lock after at most one step. Elsewhere a step is a whole pass.
const GATED_STEP_RECORDS: usize = 512;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchSummary {
    pub records: usize,
    pub applied: usize,
    pub rejected: usize,
    /// Transactions the batch took: more than one when it let API writes go first.
    pub transactions: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyOutcome {
    Completed(BatchSummary),
    /// Another executor took the batch over; nothing more was written.
    LeaseLost,
}

#[derive(Debug, thiserror::Error)]
enum TxError {
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
    #[error("lease lost")]
    LeaseLost,
}

type Checked = Result<InventoryRecord, RecordError>;

/// What is left to do for a batch: the records that failed their checks and the steps
/// of valid records, none of which has a result yet.
struct Plan {
    rejected: Vec<usize>,
    steps: Vec<Vec<usize>>,
}

impl Plan {
    fn new(checked: &[Checked], recorded: &HashSet<usize>, step_records: usize) -> Plan {
        let rejected = (0..checked.len())
            .filter(|i| checked[*i].is_err() && !recorded.contains(i))
            .collect();
        let steps = distinct_key_passes(checked)
            .into_iter()
            .flat_map(|pass| {
                let left: Vec<usize> = pass.into_iter().filter(|i| !recorded.contains(i)).collect();
                left.chunks(step_records)
                    .map(<[usize]>::to_vec)
                    .collect::<Vec<_>>()
            })
            .collect();
        Plan { rejected, steps }
    }
}

/// Applies `batch`, posted to a job of `job_retailer_id`, while `owner` holds its lease.
pub fn apply_batch(
    conn: &mut DbConnection,
    gate: &WriteGate,
    batch: &ClaimedBatch,
    job_retailer_id: &str,
    owner: &str,
) -> anyhow::Result<ApplyOutcome> {
    let checked = check_batch(batch, job_retailer_id)?;
    let recorded = recorded_records(conn, batch.id)?;
    let step_records = if gate.is_gated() {
        GATED_STEP_RECORDS
    } else {
        usize::MAX
    };
    let plan = Plan::new(&checked, &recorded, step_records);

    let mut summary = BatchSummary {
        records: checked.len(),
        ..BatchSummary::default()
    };
    let mut next_step = 0;
    loop {
        let step = apply_steps(conn, gate, batch, owner, &checked, &plan, next_step);
        match step {
            Ok(done) => {
                summary.applied += done.applied;
                summary.rejected += done.rejected;
                summary.transactions += 1;
                next_step = done.next_step;
                if next_step == plan.steps.len() {
                    return Ok(ApplyOutcome::Completed(summary));
                }
            }
            Err(TxError::LeaseLost) => return Ok(ApplyOutcome::LeaseLost),
            Err(TxError::Db(e)) => return Err(e).context("applying the batch failed"),
        }
    }
}

fn check_batch(batch: &ClaimedBatch, job_retailer_id: &str) -> anyhow::Result<Vec<Checked>> {
    let entities = batch
        .entities
        .as_deref()
        .context("the batch has no records stored")?;
    let raw: Vec<&RawValue> =
        serde_json::from_str(entities).context("stored records are not a JSON array")?;
    let checked: Vec<Checked> = raw
        .iter()
        .map(|r| check_record(r, job_retailer_id))
        .collect();
    #[cfg(feature = "fault-injection")]
    fault_injection::before_apply(&checked);
    Ok(checked)
}

/// What one transaction of a batch did.
struct StepsDone {
    next_step: usize,
    applied: usize,
    rejected: usize,
}

/// One transaction: the steps from `first` on, until the batch is done (and marked
/// COMPLETE) or an API write waits for the lock.
fn apply_steps(
    conn: &mut DbConnection,
    gate: &WriteGate,
    batch: &ClaimedBatch,
    owner: &str,
    checked: &[Checked],
    plan: &Plan,
    first: usize,
) -> Result<StepsDone, TxError> {
    let version_base = batch.id * VERSION_STRIDE;
    gate.executor(|| {
        conn.transaction::<_, TxError, _>(|conn| {
            let now = Utc::now().naive_utc();
            let mut rows: Vec<NewResult> = Vec::new();
            if first == 0 {
                rows.extend(
                    plan.rejected
                        .iter()
                        .map(|&i| result_row(i, &checked[i], None)),
                );
            }
            let mut next_step = first;
            while next_step < plan.steps.len() {
                let step = &plan.steps[next_step];
                let landed = upsert_step(conn, checked, step, version_base, now)?;
                rows.extend(
                    step.iter()
                        .zip(landed)
                        .map(|(&i, landed)| result_row(i, &checked[i], landed)),
                );
                next_step += 1;
                if gate.api_write_waiting() {
                    break;
                }
            }
            #[cfg(feature = "fault-injection")]
            fault_injection::inside_transaction();
            results::insert_results(conn, batch.id, &rows)?;
            let held = if next_step == plan.steps.len() {
                batches::complete_batch(conn, batch.id, owner, now)?
            } else {
                batches::lock_held_batch(conn, batch.id, owner)?
            };
            if !held {
                return Err(TxError::LeaseLost);
            }
            let applied = rows.iter().filter(|r| r.response_code == CODE_OK).count();
            Ok(StepsDone {
                next_step,
                applied,
                rejected: rows.len() - applied,
            })
        })
    })
}

/// Upserts one step's records (distinct keys). Per record: the position it landed on and
/// whether that position is new.
fn upsert_step(
    conn: &mut DbConnection,
    checked: &[Checked],
    step: &[usize],
    version_base: i64,
    now: chrono::NaiveDateTime,
) -> Result<Vec<Option<(i64, bool)>>, TxError> {
    let valid = |i: usize| checked[i].as_ref().expect("steps hold valid records");
    let writes: Vec<PositionWrite> = step
        .iter()
        .map(|&i| position_write(valid(i), version_base + i as i64))
        .collect();
    let mut landed: HashMap<i64, (i64, bool)> = positions::upsert_positions(conn, &writes, now)?
        .into_iter()
        .map(|p| (p.version, (p.id, p.created_version == p.version)))
        .collect();
    step.iter()
        .map(|&i| match landed.remove(&(version_base + i as i64)) {
            Some(l) => Ok(Some(l)),
            None => {
                // A newer batch already wrote this position: it stands, and this record
                // reports the position it would have updated.
                let r = valid(i);
                let id =
                    positions::find_position_id(conn, &r.retailer_id, &r.location_ref, &r.sku_ref)?;
                Ok(id.map(|id| (id, false)))
            }
        })
        .collect()
}

/// The records of a batch that already have a result (from an interrupted earlier run).
fn recorded_records(conn: &mut DbConnection, batch_id: i64) -> anyhow::Result<HashSet<usize>> {
    Ok(results::recorded_seqs(conn, batch_id)
        .context("reading the batch's results failed")?
        .into_iter()
        .map(|seq| seq as usize)
        .collect())
}

/// Completes a batch that cannot be applied: every record without a result gets a 500
/// result saying why.
pub fn fail_batch(
    conn: &mut DbConnection,
    gate: &WriteGate,
    batch: &ClaimedBatch,
    owner: &str,
    reason: &str,
) -> anyhow::Result<bool> {
    let recorded = recorded_records(conn, batch.id)?;
    let rows: Vec<NewResult> = (0..batch.record_count)
        .filter(|seq| !recorded.contains(&(*seq as usize)))
        .map(|seq| NewResult {
            seq,
            entity_id: None,
            entity_ref: None,
            response_code: CODE_FAILED,
            message: format!("not applied: {reason}"),
        })
        .collect();
    let completed = gate.executor(|| {
        conn.transaction::<_, TxError, _>(|conn| {
            results::insert_results(conn, batch.id, &rows)?;
            if batches::complete_batch(conn, batch.id, owner, Utc::now().naive_utc())? {
                Ok(())
            } else {
                Err(TxError::LeaseLost)
            }
        })
    });
    match completed {
        Ok(()) => Ok(true),
        Err(TxError::LeaseLost) => Ok(false),
        Err(TxError::Db(e)) => Err(e).context("recording the failed batch failed"),
    }
}

/// Splits the valid records into passes whose keys are all distinct: the n-th record for
/// a position goes in pass n, so duplicates apply in order and each statement touches a
/// position at most once (PostgreSQL refuses more). Each pass is sorted by key, so
/// executors writing overlapping positions lock them in the same order and never deadlock.
fn distinct_key_passes(checked: &[Checked]) -> Vec<Vec<usize>> {
    let mut seen: HashMap<(&str, &str, &str), usize> = HashMap::new();
    let mut passes: Vec<Vec<usize>> = Vec::new();
    for (i, record) in checked.iter().enumerate() {
        let Ok(r) = record else { continue };
        let occurrence = seen
            .entry((&r.retailer_id, &r.location_ref, &r.sku_ref))
            .and_modify(|n| *n += 1)
            .or_insert(0);
        if passes.len() <= *occurrence {
            passes.push(Vec::new());
        }
        passes[*occurrence].push(i);
    }
    let key = |i: &usize| {
        checked[*i]
            .as_ref()
            .map(|r| (&r.retailer_id, &r.location_ref, &r.sku_ref))
            .ok()
    };
    for pass in &mut passes {
        pass.sort_by(|a, b| key(a).cmp(&key(b)));
    }
    passes
}

fn position_write(r: &InventoryRecord, version: i64) -> PositionWrite<'_> {
    PositionWrite {
        retailer_id: &r.retailer_id,
        location_ref: &r.location_ref,
        sku_ref: &r.sku_ref,
        qty: r.qty,
        corrected_qty: r.corrected_qty,
        reserved_qty: r.reserved_qty,
        inventory_id: r.inventory_id.as_deref(),
        reference: r.reference.as_deref(),
        inventory_type: &r.inventory_type,
        status: r.status.as_deref(),
        attributes: r.attributes.as_deref(),
        version,
    }
}

fn result_row(index: usize, record: &Checked, landed: Option<(i64, bool)>) -> NewResult {
    let seq = index as i32;
    match (record, landed) {
        (Ok(r), Some((id, created))) => NewResult {
            seq,
            entity_id: Some(id),
            entity_ref: Some(r.entity_ref()),
            response_code: CODE_OK,
            message: if created { CREATED } else { UPDATED }.to_owned(),
        },
        (Ok(r), None) => NewResult {
            seq,
            entity_id: None,
            entity_ref: Some(r.entity_ref()),
            response_code: CODE_FAILED,
            message: "not applied: the position could not be written".to_owned(),
        },
        (Err(e), _) => NewResult {
            seq,
            entity_id: None,
            entity_ref: e.entity_ref.clone(),
            response_code: e.response_code,
            message: e.message.clone(),
        },
    }
}

/// Test aids, compiled only with the `fault-injection` feature.
#[cfg(feature = "fault-injection")]
mod fault_injection {
    use super::{InventoryRecord, RecordError};

    /// Panics when a record's skuRef equals `STOCKBATCH_FAULT_PANIC_SKU`.
    pub fn before_apply(checked: &[Result<InventoryRecord, RecordError>]) {
        if let Ok(sku) = std::env::var("STOCKBATCH_FAULT_PANIC_SKU") {
            if checked.iter().flatten().any(|r| r.sku_ref == sku) {
                panic!("fault injected for skuRef {sku}");
            }
        }
    }

    /// Sleeps `STOCKBATCH_FAULT_APPLY_DELAY_MS` inside the apply transaction, so tests can
    /// kill or stop an executor in the middle of a batch.
    pub fn inside_transaction() {
        if let Some(ms) = std::env::var("STOCKBATCH_FAULT_APPLY_DELAY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(sku: &str) -> Result<InventoryRecord, RecordError> {
        Ok(InventoryRecord {
            retailer_id: "1".into(),
            location_ref: "L".into(),
            sku_ref: sku.into(),
            qty: 1,
            corrected_qty: None,
            reserved_qty: None,
            inventory_id: None,
            reference: None,
            inventory_type: "LAST_ON_HAND".into(),
            status: None,
            attributes: None,
        })
    }

    #[test]
    fn duplicates_go_to_later_passes_in_order_and_passes_are_sorted_by_key() {
        let invalid = Err(RecordError {
            response_code: 400,
            message: "x".into(),
            entity_ref: None,
        });
        let checked = vec![
            record("a"),
            record("b"),
            record("a"),
            invalid,
            record("a"),
            record("c"),
        ];
        assert_eq!(
            distinct_key_passes(&checked),
            vec![vec![0, 1, 5], vec![2], vec![4]]
        );
    }

    mod on_sqlite {
        use std::time::Duration;

        use chrono::TimeDelta;
        use serde_json::{json, Value};

        use super::super::*;
        use crate::db::models::{BatchResult, NewBatch, NewJob, PENDING};
        use crate::db::{build_pool, jobs, run_migrations, PooledConn};

        const OWNER: &str = "executor-test";

        /// 1200 records: 1100 distinct positions, 99 repeats of earlier ones, 1 invalid.
        fn records() -> Vec<Value> {
            (0..1200)
                .map(|i| match i {
                    600 => json!({"retailerId": "1", "locationRef": "L", "qty": 1}),
                    _ => json!({
                        "retailerId": "1",
                        "locationRef": "L",
                        "skuRef": format!("SKU-{}", if i > 1100 { i - 1100 } else { i }),
                        "qty": i,
                    }),
                })
                .collect()
        }

        /// A fresh database holding one batch of `records()`, claimed by `OWNER`.
        fn claimed() -> (tempfile::TempDir, PooledConn, ClaimedBatch) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("stockbatch.db");
            let pool = build_pool(path.to_str().unwrap(), 1, Duration::from_secs(5)).unwrap();
            let mut conn = pool.get().unwrap();
            run_migrations(&mut conn).unwrap();
            let now = Utc::now().naive_utc();
            let job = NewJob {
                name: "feed",
                retailer_id: "1",
                meta: None,
                created_on: now,
            };
            let job_id = jobs::insert_job(&mut conn, &job).unwrap();
            let entities = serde_json::to_string(&records()).unwrap();
            let batch = NewBatch {
                job_id,
                action: "UPSERT",
                entity_type: "INVENTORY",
                status: PENDING,
                record_count: 1200,
                entities: &entities,
                attempts: 0,
                created_on: now,
            };
            batches::insert_batch(&mut conn, &batch).unwrap();
            let lease = now + TimeDelta::minutes(5);
            let claimed = batches::claim_next_batch(&mut conn, OWNER, now, lease)
                .unwrap()
                .unwrap();
            (dir, conn, claimed)
        }

        fn all_results(conn: &mut DbConnection, batch_id: i64) -> Vec<BatchResult> {
            results::page_results(conn, batch_id, 0, 5000).unwrap()
        }

        /// A gate on which an API write always seems to wait: every transaction of a
        /// batch stops after one step.
        fn contended_gate() -> WriteGate {
            let gate = WriteGate::for_backend(crate::db::Backend::Sqlite);
            gate.pretend_api_write_waiting();
            gate
        }

        fn apply(conn: &mut DbConnection, gate: &WriteGate, batch: &ClaimedBatch) -> BatchSummary {
            match apply_batch(conn, gate, batch, "1", OWNER).unwrap() {
                ApplyOutcome::Completed(summary) => summary,
                ApplyOutcome::LeaseLost => panic!("lease lost"),
            }
        }

        /// Runs only the batch's first transaction, as an executor that then stops would.
        fn commit_first_transaction(conn: &mut DbConnection, batch: &ClaimedBatch) -> StepsDone {
            let checked = check_batch(batch, "1").unwrap();
            let plan = Plan::new(&checked, &HashSet::new(), GATED_STEP_RECORDS);
            apply_steps(conn, &contended_gate(), batch, OWNER, &checked, &plan, 0)
                .unwrap_or_else(|e| panic!("{e}"))
        }

        fn uncontended_results() -> Vec<BatchResult> {
            let (_dir, mut conn, batch) = claimed();
            let summary = apply(&mut conn, &WriteGate::default(), &batch);
            assert_eq!(summary.transactions, 1);
            assert_eq!((summary.applied, summary.rejected), (1199, 1));
            all_results(&mut conn, batch.id)
        }

        #[test]
        fn a_waiting_api_write_splits_the_batch_but_not_its_results() {
            let expected = uncontended_results();
            assert_eq!(expected.len(), 1200);
            assert_eq!(expected[1101].message, UPDATED, "a repeat updates");

            let (_dir, mut conn, batch) = claimed();
            let summary = apply(&mut conn, &contended_gate(), &batch);
            // Steps: 512 + 512 + 76 distinct keys, then the 99 repeats.
            assert_eq!(summary.transactions, 4);
            assert_eq!((summary.applied, summary.rejected), (1199, 1));
            assert_eq!(all_results(&mut conn, batch.id), expected);
        }

        #[test]
        fn a_batch_stopped_between_transactions_resumes_where_it_stopped() {
            let expected = uncontended_results();

            let (_dir, mut conn, batch) = claimed();
            let first = commit_first_transaction(&mut conn, &batch);
            assert_eq!(
                (first.next_step, first.applied, first.rejected),
                (1, 512, 1)
            );
            assert_eq!(all_results(&mut conn, batch.id).len(), 513);
            // The executor stops here; the next attempt starts from what was committed.
            let summary = apply(&mut conn, &WriteGate::default(), &batch);
            assert_eq!((summary.applied, summary.rejected), (1199 - 512, 0));
            assert_eq!(all_results(&mut conn, batch.id), expected);
        }

        #[test]
        fn a_failed_batch_keeps_the_results_it_committed() {
            let (_dir, mut conn, batch) = claimed();
            commit_first_transaction(&mut conn, &batch);
            assert!(fail_batch(&mut conn, &WriteGate::default(), &batch, OWNER, "test").unwrap());
            let results = all_results(&mut conn, batch.id);
            let codes = |code| results.iter().filter(|r| r.response_code == code).count();
            assert_eq!(
                (codes(CODE_OK), codes(400), codes(CODE_FAILED)),
                (512, 1, 687)
            );
        }
    }

    #[test]
    fn versions_of_one_batch_fit_under_the_next() {
        assert!(crate::domain::batch::MAX_BATCH_RECORDS as i64 <= VERSION_STRIDE);
    }
}
