//! Applying one claimed batch: every record checked, positions upserted, one result per
//! record, and the batch marked COMPLETE — all in one transaction.

use std::collections::HashMap;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSummary {
    pub records: usize,
    pub applied: usize,
    pub rejected: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyOutcome {
    Completed(BatchSummary),
    /// Another executor took the batch over; nothing was written.
    LeaseLost,
}

#[derive(Debug, thiserror::Error)]
enum TxError {
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
    #[error("lease lost")]
    LeaseLost,
}

/// Applies `batch`, posted to a job of `job_retailer_id`, while `owner` holds its lease.
pub fn apply_batch(
    conn: &mut DbConnection,
    gate: &WriteGate,
    batch: &ClaimedBatch,
    job_retailer_id: &str,
    owner: &str,
) -> anyhow::Result<ApplyOutcome> {
    let entities = batch
        .entities
        .as_deref()
        .context("the batch has no records stored")?;
    let raw: Vec<&RawValue> =
        serde_json::from_str(entities).context("stored records are not a JSON array")?;
    let checked: Vec<Result<InventoryRecord, RecordError>> = raw
        .iter()
        .map(|r| check_record(r, job_retailer_id))
        .collect();
    #[cfg(feature = "fault-injection")]
    fault_injection::before_apply(&checked);
    let passes = distinct_key_passes(&checked);
    let version_base = batch.id * VERSION_STRIDE;

    let outcome = gate.executor(|| {
        conn.transaction::<_, TxError, _>(|conn| {
            let now = Utc::now().naive_utc();
            // Per record: the position it landed on and whether that position is new.
            let mut landed: Vec<Option<(i64, bool)>> = vec![None; checked.len()];
            for pass in &passes {
                let writes: Vec<PositionWrite> = pass
                    .iter()
                    .map(|&i| {
                        position_write(
                            checked[i].as_ref().expect("passes hold valid records"),
                            version_base + i as i64,
                        )
                    })
                    .collect();
                for upserted in positions::upsert_positions(conn, &writes, now)? {
                    let index = (upserted.version - version_base) as usize;
                    landed[index] =
                        Some((upserted.id, upserted.created_version == upserted.version));
                }
                let superseded: Vec<usize> = pass
                    .iter()
                    .copied()
                    .filter(|&i| landed[i].is_none())
                    .collect();
                for i in superseded {
                    // A newer batch already wrote this position: it stands, and this record
                    // reports the position it would have updated.
                    let r = checked[i].as_ref().expect("passes hold valid records");
                    let id = positions::find_position_id(
                        conn,
                        &r.retailer_id,
                        &r.location_ref,
                        &r.sku_ref,
                    )?;
                    landed[i] = id.map(|id| (id, false));
                }
            }
            #[cfg(feature = "fault-injection")]
            fault_injection::inside_transaction();
            let rows = result_rows(&checked, &landed);
            results::insert_results(conn, batch.id, &rows)?;
            if !batches::complete_batch(conn, batch.id, owner, now)? {
                return Err(TxError::LeaseLost);
            }
            let applied = rows.iter().filter(|r| r.response_code == CODE_OK).count();
            Ok(BatchSummary {
                records: rows.len(),
                applied,
                rejected: rows.len() - applied,
            })
        })
    });
    match outcome {
        Ok(summary) => Ok(ApplyOutcome::Completed(summary)),
        Err(TxError::LeaseLost) => Ok(ApplyOutcome::LeaseLost),
        Err(TxError::Db(e)) => Err(e).context("applying the batch failed"),
    }
}

/// Completes a batch that cannot be applied: every record gets a 500 result saying why.
pub fn fail_batch(
    conn: &mut DbConnection,
    gate: &WriteGate,
    batch: &ClaimedBatch,
    owner: &str,
    reason: &str,
) -> anyhow::Result<bool> {
    let rows: Vec<NewResult> = (0..batch.record_count)
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
fn distinct_key_passes(checked: &[Result<InventoryRecord, RecordError>]) -> Vec<Vec<usize>> {
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

fn result_rows(
    checked: &[Result<InventoryRecord, RecordError>],
    landed: &[Option<(i64, bool)>],
) -> Vec<NewResult> {
    checked
        .iter()
        .zip(landed)
        .enumerate()
        .map(|(seq, (record, landed))| {
            let seq = seq as i32;
            match (record, landed) {
                (Ok(r), Some((id, created))) => NewResult {
                    seq,
                    entity_id: Some(*id),
                    entity_ref: Some(r.entity_ref()),
                    response_code: CODE_OK,
                    message: if *created { CREATED } else { UPDATED }.to_owned(),
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
        })
        .collect()
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

    #[test]
    fn versions_of_one_batch_fit_under_the_next() {
        assert!(crate::domain::batch::MAX_BATCH_RECORDS as i64 <= VERSION_STRIDE);
    }
}
