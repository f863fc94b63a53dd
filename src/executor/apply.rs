//! Applying one claimed batch of either API: every item checked, then applied in order on a
//! view of the stock it touches (read once: the queue runs no other batch touching it
//! meanwhile), and what changed written — positions, item properties, one ledger movement
//! per quantity change and one result per item — with the batch marked COMPLETE.
//!
//! A batch applies in one transaction unless an API write is waiting for SQLite's write
//! lock: then the executor commits the steps it has done (their positions, movements and
//! results together) and goes on in a new transaction after that write. An item with a
//! result is never applied again, so a batch interrupted between transactions resumes where
//! it stopped, and a movement is never written twice. A dry run (`validate_only`) computes
//! everything and writes only the results.
//!
//! Should the database refuse a step's writes for what a record holds (a value it cannot
//! store), the step is applied again one item at a time, each in its own savepoint, and only
//! the refused item gets an error result.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap, VecDeque};

use anyhow::Context;
use chrono::{NaiveDateTime, TimeDelta, Utc};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::Connection;
use serde_json::value::{to_raw_value, RawValue};
use serde_json::{Map, Value};

use crate::db::batches::Counts;
use crate::db::models::{ClaimedBatch, NewResult, FLUENT};
use crate::db::movements::{self, NewMovement};
use crate::db::positions::{self, StockWrite};
use crate::db::{batches, items, results, DbConnection, WriteGate};
use crate::domain::inventory::{check_record, InventoryRecord, CODE_FAILED, CODE_OK};
use crate::domain::keys::ITEM_LOCATION;
use crate::domain::operations::{
    apply_item, upsert, Applied, KeyId, PositionKey, Refusal, Stock, View, CODE_SKIPPED, UNCHANGED,
};
use crate::domain::stateset::{item_sku, parse_item, Item, Op, Operation, Options};
use crate::notify::Outbox;

/// Versions name a position's last write: batch id, then the item's index in the batch.
pub const VERSION_STRIDE: i64 = 8192;

/// Most items one step applies where API writes share a write lock (SQLite): a waiting
/// write gets the lock after at most one step. Elsewhere a step is the whole batch.
const GATED_STEP_ITEMS: usize = 512;

const SKIPPED: &str = "skipped: an earlier item failed and continue_on_error is false";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchSummary {
    pub records: usize,
    /// Of this run's items: applied (unchanged ones included), rejected, skipped.
    pub applied: usize,
    pub unchanged: usize,
    pub rejected: usize,
    pub skipped: usize,
    /// Transactions the batch took: more than one when it let API writes go first.
    pub transactions: usize,
}

#[derive(Debug)]
pub enum ApplyOutcome {
    /// Applied; with the batch the completing transaction claimed next, when asked to.
    Completed(BatchSummary, Option<Box<ClaimedBatch>>),
    /// Another executor took the batch over; nothing more was written.
    LeaseLost,
}

#[derive(Debug, thiserror::Error)]
enum TxError {
    #[error(transparent)]
    Db(#[from] DieselError),
    #[error("lease lost")]
    LeaseLost,
}

/// An item after its checks.
#[derive(Debug, Clone)]
enum Checked {
    Record(InventoryRecord),
    Item(Item),
    Invalid {
        refusal: Refusal,
        entity_ref: Option<String>,
    },
}

impl Checked {
    /// The positions the item touches, as (location, SKU).
    fn add_keys<'a>(&'a self, keys: &mut Vec<(&'a str, &'a str)>) {
        match self {
            Checked::Record(r) => keys.push((&r.location_ref, &r.sku_ref)),
            Checked::Item(item) => keys.extend(
                item.keys()
                    .into_iter()
                    .filter(|(loc, _)| *loc != ITEM_LOCATION),
            ),
            Checked::Invalid { .. } => {}
        }
    }

    /// How results name the item: Fluent's entityRef, StateSet's sku.
    fn entity_ref(&self) -> Option<String> {
        match self {
            Checked::Record(r) => Some(r.entity_ref()),
            Checked::Item(item) => Some(item.sku.clone()),
            Checked::Invalid { entity_ref, .. } => entity_ref.clone(),
        }
    }
}

/// A claimed batch, checked and ready to apply.
struct Plan<'a> {
    batch: &'a ClaimedBatch,
    checked: Vec<Checked>,
    options: Options,
    /// Items still to apply, in order (those without a result).
    pending: Vec<usize>,
    /// Set once an item fails in a batch that stops at errors.
    stopped: bool,
    /// The batch's counts so far.
    counts: Counts,
}

/// What one item came to.
enum Outcome {
    Applied(Applied),
    Refused(Refusal),
    Skipped,
}

/// Applies `batch`, posted with `records` (a JSON array), while `owner` holds its lease. With `claim_next` (a lease), the
/// transaction that completes it also claims `owner`'s next batch: where writers take turns
/// at one lock (SQLite), a claim of its own would wait for another worker's whole batch
/// before this worker could read and decide its next one.
pub fn apply_batch(
    conn: &mut DbConnection,
    gate: &WriteGate,
    outbox: &Outbox,
    batch: &ClaimedBatch,
    records: &str,
    owner: &str,
    claim_next: Option<TimeDelta>,
) -> anyhow::Result<ApplyOutcome> {
    let mut plan = plan(conn, batch, records)?;
    let mut view = load_view(conn, &plan).context("reading the batch's stock failed")?;
    let step_items = if gate.is_gated() {
        GATED_STEP_ITEMS
    } else {
        usize::MAX
    };
    let mut ids = NewIds::default();
    // Every step is decided before the write lock is taken; the lock is held for writing.
    let mut steps: VecDeque<Prepared> = plan
        .pending
        .clone()
        .chunks(step_items.max(1))
        .map(|step| prepare(&mut plan, &mut view, step, &mut ids))
        .collect();
    let mut summary = BatchSummary {
        records: plan.checked.len(),
        ..BatchSummary::default()
    };
    loop {
        let done = gate.executor(|| {
            conn.transaction::<_, TxError, _>(|conn| {
                let Some(cancel) = batches::lock_held_batch(conn, batch.id, owner)? else {
                    return Err(TxError::LeaseLost);
                };
                let mut rows = Vec::new();
                if cancel {
                    // A safe point: what is applied stays, the rest is not applied at all.
                    rows = steps
                        .drain(..)
                        .flat_map(|step| step.items)
                        .map(cancelled_row)
                        .collect();
                    plan.counts.cancelled = true;
                }
                while !steps.is_empty() {
                    #[cfg(feature = "fault-injection")]
                    fault_injection::inside_transaction();
                    rows.extend(write_next_step(
                        conn, &mut plan, &mut view, &mut steps, &mut ids,
                    )?);
                    if gate.api_write_waiting() {
                        break;
                    }
                }
                results::insert_results(conn, batch.id, &rows)?;
                let mut counts = plan.counts;
                rows.iter()
                    .for_each(|row| count(&mut counts, row.response_code, &row.message));
                let mut next = None;
                if !steps.is_empty() {
                    batches::add_processed(conn, batch.id, rows.len() as i32)?;
                } else if batches::complete_batch(conn, batch.id, owner, now(), counts)? {
                    batches::notify_queue_changed(conn)?;
                    outbox.batch_completed(conn, batch.id, now())?;
                    if let Some(lease) = claim_next {
                        let at = now();
                        next = batches::claim_next_batch(conn, owner, at, at + lease)?;
                    }
                } else {
                    return Err(TxError::LeaseLost);
                }
                Ok((rows, counts, next))
            })
        });
        match done {
            Ok((rows, counts, next)) => {
                plan.counts = counts;
                for row in &rows {
                    match row.response_code {
                        CODE_OK => summary.applied += 1,
                        CODE_SKIPPED => summary.skipped += 1,
                        _ => summary.rejected += 1,
                    }
                    summary.unchanged += usize::from(row.message == UNCHANGED);
                }
                summary.transactions += 1;
                if steps.is_empty() {
                    return Ok(ApplyOutcome::Completed(summary, next.map(Box::new)));
                }
            }
            Err(TxError::LeaseLost) => return Ok(ApplyOutcome::LeaseLost),
            Err(TxError::Db(e)) => return Err(e).context("applying the batch failed"),
        }
    }
}

fn now() -> NaiveDateTime {
    Utc::now().naive_utc()
}

/// What a cancel says of an item it kept from being applied.
pub const CANCELLED: &str = "not applied: the batch was cancelled before it was applied";
/// The code of such an item's result.
pub const CODE_CANCELLED: i32 = 409;

/// The result of item `i`, kept from being applied by a cancel.
pub fn cancelled_row(i: usize) -> NewResult {
    NewResult {
        seq: i as i32,
        entity_id: None,
        entity_ref: None,
        response_code: CODE_CANCELLED,
        message: Cow::Borrowed(CANCELLED),
        data: None,
    }
}

/// Adds one result to a batch's counts.
fn count(counts: &mut Counts, code: i32, message: &str) {
    if code == CODE_OK {
        counts.applied += 1;
        counts.unchanged += i32::from(message == UNCHANGED);
    } else {
        counts.rejected += 1;
    }
}

/// The results a batch already has (an interrupted earlier run), by item, and their counts.
fn recorded(
    conn: &mut DbConnection,
    batch_id: i64,
) -> anyhow::Result<(HashMap<usize, i32>, Counts)> {
    recorded_results(conn, batch_id).context("reading the batch's results failed")
}

/// The results a batch has (code by item index), and their counts.
pub(super) fn recorded_results(
    conn: &mut DbConnection,
    batch_id: i64,
) -> diesel::QueryResult<(HashMap<usize, i32>, Counts)> {
    let mut counts = Counts::default();
    let recorded = results::recorded_seqs(conn, batch_id)?
        .into_iter()
        .map(|(seq, code, message)| {
            count(&mut counts, code, &message);
            (seq as usize, code)
        })
        .collect();
    Ok((recorded, counts))
}

/// Checks every item and finds those still to apply.
fn plan<'a>(
    conn: &mut DbConnection,
    batch: &'a ClaimedBatch,
    records: &str,
) -> anyhow::Result<Plan<'a>> {
    let raw: Vec<&RawValue> =
        serde_json::from_str(records).context("stored records are not a JSON array")?;
    let (checked, options) = if batch.api == FLUENT {
        let checked = check_in_parallel(&raw, |r| check_fluent(r, &batch.retailer_id));
        let options = Options {
            validate_only: false,
            continue_on_error: true,
            notification_email: None,
            default_location: String::new(),
        };
        (checked, options)
    } else {
        let operation = Operation::parse(&batch.action).context("unknown operation")?;
        let options: Options = serde_json::from_str(batch.options.as_deref().unwrap_or("{}"))
            .context("stored options are not valid")?;
        let checked = check_in_parallel(&raw, |r| {
            match parse_item(operation, r, &options.default_location) {
                Ok(item) => Checked::Item(item),
                Err(message) => Checked::Invalid {
                    refusal: Refusal { code: 400, message },
                    entity_ref: item_sku(r),
                },
            }
        });
        (checked, options)
    };
    #[cfg(feature = "fault-injection")]
    fault_injection::before_apply(&checked);
    let (recorded, counts) = recorded(conn, batch.id)?;
    let stopped = !options.continue_on_error
        && recorded
            .values()
            .any(|code| *code != CODE_OK && *code != CODE_SKIPPED);
    let pending = (0..checked.len())
        .filter(|i| !recorded.contains_key(i))
        .collect();
    Ok(Plan {
        batch,
        checked,
        options,
        pending,
        stopped,
        counts,
    })
}

/// A Fluent record of a batch of `retailer`, after its checks.
fn check_fluent(raw: &RawValue, retailer: &str) -> Checked {
    match check_record(raw, retailer) {
        Ok(record) => Checked::Record(record),
        Err(e) => Checked::Invalid {
            refusal: Refusal {
                code: e.response_code,
                message: e.message,
            },
            entity_ref: e.entity_ref,
        },
    }
}

/// Batches with at least this many items are checked on two threads: checking is a tenth
/// of a large batch's time, and it delays the batch's turn at SQLite's write lock.
const PARALLEL_CHECK_ITEMS: usize = 1000;

/// `check` of every item, in order; the second half on a thread of its own when the batch
/// is large (and on this one should no thread be available).
fn check_in_parallel<F>(raw: &[&RawValue], check: F) -> Vec<Checked>
where
    F: Fn(&RawValue) -> Checked + Sync,
{
    if raw.len() < PARALLEL_CHECK_ITEMS {
        return raw.iter().map(|r| check(r)).collect();
    }
    let (first, second) = raw.split_at(raw.len() / 2);
    let check = &check;
    std::thread::scope(|scope| {
        let helper = std::thread::Builder::new()
            .name("executor-check".into())
            .spawn_scoped(scope, move || {
                second.iter().map(|r| check(r)).collect::<Vec<_>>()
            });
        let mut checked: Vec<Checked> = Vec::with_capacity(raw.len());
        checked.extend(first.iter().map(|r| check(r)));
        match helper {
            Ok(helper) => checked.extend(
                helper
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p)),
            ),
            Err(_) => checked.extend(second.iter().map(|r| check(r))),
        }
        checked
    })
}

/// Reads the positions and items the pending items touch.
fn load_view(conn: &mut DbConnection, plan: &Plan) -> diesel::QueryResult<View> {
    let retailer = &plan.batch.retailer_id;
    let pending = || plan.pending.iter().map(|&i| &plan.checked[i]);
    let mut touched = Vec::with_capacity(plan.pending.len());
    pending().for_each(|c| c.add_keys(&mut touched));
    // In the index's order (SKU, then location): each lookup starts near the last.
    touched.sort_unstable_by(|a, b| (a.1, a.0).cmp(&(b.1, b.0)));
    touched.dedup();
    let keys: Vec<PositionKey> = touched
        .into_iter()
        .map(|(location, sku)| (location.to_owned(), sku.to_owned()))
        .collect();
    let item_skus: Vec<String> = pending()
        .filter_map(|c| match c {
            Checked::Item(i) if matches!(i.op, Op::Update { .. } | Op::Import { .. }) => {
                Some(i.sku.clone())
            }
            _ => None,
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let found = positions::load_positions(conn, retailer, &keys)?;
    let (found_items, skus_with_positions) = if item_skus.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        (
            items::load_items(conn, retailer, &item_skus)?,
            positions::skus_with_positions(conn, retailer, &item_skus)?,
        )
    };
    Ok(View::new(
        keys,
        found,
        item_skus,
        found_items,
        skus_with_positions,
    ))
}

/// Ids of the positions a batch run creates. Until it is written, the n-th new position
/// carries the provisional id -(n + 1); writing it reserves real ids, in the same order.
#[derive(Default)]
struct NewIds {
    provisional: usize,
    real: Vec<i64>,
}

impl NewIds {
    fn next_provisional(&mut self) -> i64 {
        self.provisional += 1;
        -(self.provisional as i64)
    }

    /// The id a position is stored under; a provisional one's position must be written.
    fn resolve(&self, id: i64) -> i64 {
        match usize::try_from(-id - 1) {
            Ok(n) => self.real[n],
            Err(_) => id,
        }
    }

    /// Forgets the ids given from the `n`-th new position on (their writes rolled back).
    fn truncate(&mut self, n: usize) {
        self.provisional = n;
        self.real.truncate(n);
    }
}

/// A step decided on the view: what it writes and its results, but for the real ids of
/// the positions it creates.
struct Prepared {
    items: Vec<usize>,
    /// The view, the plan and the new ids before it, to undo it should the database
    /// refuse its writes.
    mark: usize,
    stopped: bool,
    new_ids_before: usize,
    outcomes: Vec<(usize, Outcome)>,
    /// Positions to insert, and to update, with their (maybe provisional) ids.
    inserts: Vec<(KeyId, Stock)>,
    updates: Vec<(KeyId, Stock)>,
    changed_items: Vec<(String, Map<String, Value>)>,
    /// The position id of each movement of `outcomes`, in order.
    movement_positions: Vec<i64>,
    rows: Vec<NewResult>,
}

/// Decides `step`'s items in order on the view, and what writing them takes.
fn prepare(plan: &mut Plan, view: &mut View, step: &[usize], ids: &mut NewIds) -> Prepared {
    let mark = view.mark();
    let stopped = plan.stopped;
    let new_ids_before = ids.provisional;
    let outcomes: Vec<(usize, Outcome)> =
        step.iter().map(|&i| (i, decide(plan, view, i))).collect();
    let (changed, changed_items) = view.take_changes();
    let writes = plan.batch.dry_run == 0;
    let (mut inserts, updates): (Vec<_>, Vec<_>) =
        changed.into_iter().partition(|(_, s)| s.id.is_none());
    if writes {
        for (key, stock) in &mut inserts {
            let id = ids.next_provisional();
            stock.id = Some(id);
            view.set_id(*key, id);
        }
    }
    let movement_positions = if writes {
        applied(&outcomes)
            .flat_map(|(_, applied)| &applied.movements)
            .map(|m| {
                view.position(m.key)
                    .and_then(|s| s.id)
                    .expect("moved positions have ids")
            })
            .collect()
    } else {
        Vec::new()
    };
    let rows = outcomes
        .iter()
        .map(|(i, outcome)| result_row(plan, *i, outcome, view))
        .collect();
    Prepared {
        items: step.to_vec(),
        mark,
        stopped,
        new_ids_before,
        outcomes,
        inserts,
        updates,
        changed_items,
        movement_positions,
        rows,
    }
}

/// The items of `outcomes` that were applied.
fn applied(outcomes: &[(usize, Outcome)]) -> impl Iterator<Item = (usize, &Applied)> {
    outcomes.iter().filter_map(|(i, outcome)| match outcome {
        Outcome::Applied(applied) => Some((*i, applied)),
        _ => None,
    })
}

/// Writes the first of `steps`; returns its results (written by the caller with the rest
/// of the transaction's). Should the database refuse the step for what an item holds, its
/// items are applied one by one and the steps after it decided again.
fn write_next_step(
    conn: &mut DbConnection,
    plan: &mut Plan,
    view: &mut View,
    steps: &mut VecDeque<Prepared>,
    ids: &mut NewIds,
) -> Result<Vec<NewResult>, TxError> {
    let mut step = steps.pop_front().expect("a step to write");
    match conn.transaction(|conn| write(conn, plan, view, &mut step, ids)) {
        Ok(rows) => Ok(rows),
        Err(TxError::Db(e)) if refused_for_its_data(&e) => {
            log::warn!(
                "batch {}: the database refused a step ({e}); applying its items one by one",
                plan.batch.id
            );
            view.undo_to(step.mark);
            plan.stopped = step.stopped;
            ids.truncate(step.new_ids_before);
            let later: Vec<Vec<usize>> = steps.drain(..).map(|s| s.items).collect();
            let rows = isolate(conn, plan, view, &step.items, ids)?;
            steps.extend(later.iter().map(|items| prepare(plan, view, items, ids)));
            Ok(rows)
        }
        Err(e) => Err(e),
    }
}

/// Applies items one at a time, each in its own savepoint: an item whose writes the
/// database refuses gets an error result and changes nothing.
fn isolate(
    conn: &mut DbConnection,
    plan: &mut Plan,
    view: &mut View,
    items: &[usize],
    ids: &mut NewIds,
) -> Result<Vec<NewResult>, TxError> {
    let mut rows = Vec::with_capacity(items.len());
    for &i in items {
        let mut one = prepare(plan, view, &[i], ids);
        match conn.transaction(|conn| write(conn, plan, view, &mut one, ids)) {
            Ok(written) => rows.extend(written),
            Err(TxError::Db(e)) if refused_for_its_data(&e) => {
                view.undo_to(one.mark);
                ids.truncate(one.new_ids_before);
                let refusal = Refusal {
                    code: 400,
                    message: format!("the database cannot store this record: {e}"),
                };
                rows.push(result_row(plan, i, &Outcome::Refused(refusal), view));
                if !plan.options.continue_on_error {
                    plan.stopped = true;
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(rows)
}

/// What item `i` comes to, applied on the view.
fn decide(plan: &mut Plan, view: &mut View, i: usize) -> Outcome {
    if plan.stopped {
        return Outcome::Skipped;
    }
    let outcome = match &plan.checked[i] {
        Checked::Record(record) => {
            Outcome::Applied(upsert(view, record, plan.batch.preprocessing != 0))
        }
        Checked::Item(item) => match apply_item(view, item) {
            Ok(applied) => Outcome::Applied(applied),
            Err(refusal) => Outcome::Refused(refusal),
        },
        Checked::Invalid { refusal, .. } => Outcome::Refused(refusal.clone()),
    };
    if matches!(outcome, Outcome::Refused(_)) && !plan.options.continue_on_error {
        plan.stopped = true;
    }
    outcome
}

/// Writes a prepared step (unless a dry run): its positions, items and movements, under
/// ids reserved now for the positions it creates; returns its result rows.
fn write(
    conn: &mut DbConnection,
    plan: &Plan,
    view: &View,
    step: &mut Prepared,
    ids: &mut NewIds,
) -> Result<Vec<NewResult>, TxError> {
    let batch = plan.batch;
    if batch.dry_run == 0 {
        #[cfg(feature = "fault-injection")]
        fault_injection::refuse_write(&plan.checked, step.items.iter().copied())?;
        let now = now();
        let version = batch.id * VERSION_STRIDE + step.items.last().map_or(0, |&i| i as i64);
        let retailer = &batch.retailer_id;
        if !step.inserts.is_empty() {
            assert_eq!(
                ids.real.len(),
                step.new_ids_before,
                "steps are written in order"
            );
            ids.real
                .extend(positions::reserve_ids(conn, step.inserts.len())?);
            let rows = stock_writes(&step.inserts, view, ids, retailer, version);
            positions::insert_positions(conn, &rows, now)?;
        }
        if !step.updates.is_empty() {
            let rows = stock_writes(&step.updates, view, ids, retailer, version);
            positions::update_positions(conn, &rows, now)?;
        }
        if !step.changed_items.is_empty() {
            items::save_items(conn, &batch.retailer_id, &step.changed_items, now)?;
        }
        let movements: Vec<NewMovement> = applied(&step.outcomes)
            .flat_map(|(i, applied)| applied.movements.iter().map(move |m| (i, m)))
            .zip(&step.movement_positions)
            .map(|((i, m), &position)| NewMovement {
                position_id: ids.resolve(position),
                batch_id: batch.id,
                item_index: i as i32,
                api: &batch.api,
                operation: m.operation,
                previous_qty: m.previous,
                new_qty: m.new,
                reason: m.reason.as_deref(),
                reference: m.reference.as_deref(),
            })
            .collect();
        movements::insert_movements(conn, &movements, now)?;
    }
    let mut rows = std::mem::take(&mut step.rows);
    for row in &mut rows {
        row.entity_id = row.entity_id.map(|id| ids.resolve(id));
    }
    Ok(rows)
}

fn stock_writes<'a>(
    changed: &'a [(KeyId, Stock)],
    view: &'a View,
    ids: &NewIds,
    retailer: &'a str,
    version: i64,
) -> Vec<StockWrite<'a>> {
    changed
        .iter()
        .map(|(key, stock)| StockWrite {
            id: ids.resolve(stock.id.expect("written positions have ids")),
            retailer,
            key: view.key(*key),
            stock,
            version,
        })
        .collect()
}

/// Item `i`'s result; a position it names that this batch creates has a provisional id.
fn result_row(plan: &Plan, i: usize, outcome: &Outcome, view: &View) -> NewResult {
    let entity_ref = plan.checked[i].entity_ref();
    let (response_code, message, data, entity_id) = match outcome {
        Outcome::Applied(applied) => (
            CODE_OK,
            applied.message.clone(),
            applied
                .data
                .as_ref()
                .map(|d| to_raw_value(d).expect("a JSON value serializes")),
            applied
                .position
                .as_ref()
                .and_then(|k| view.position(*k))
                .and_then(|s| s.id),
        ),
        Outcome::Refused(refusal) => (
            refusal.code,
            Cow::Owned(refusal.message.clone()),
            None,
            None,
        ),
        Outcome::Skipped => (CODE_SKIPPED, Cow::Borrowed(SKIPPED), None, None),
    };
    NewResult {
        seq: i as i32,
        entity_id,
        entity_ref,
        response_code,
        message,
        data,
    }
}

/// Whether the database refused a write for what it holds, not for its own state: such a
/// record can never be stored, so retrying would fail the same way.
fn refused_for_its_data(e: &DieselError) -> bool {
    const DATA_ERRORS: [&str; 7] = [
        "index row size",
        "index row requires",
        "invalid byte sequence",
        "value too long",
        "out of range",
        "string or blob too big",
        "character with byte sequence",
    ];
    match e {
        DieselError::DatabaseError(
            DatabaseErrorKind::NotNullViolation | DatabaseErrorKind::CheckViolation,
            _,
        ) => true,
        DieselError::DatabaseError(DatabaseErrorKind::Unknown, info) => {
            let message = info.message().to_ascii_lowercase();
            DATA_ERRORS.iter().any(|d| message.contains(d))
        }
        _ => false,
    }
}

/// Completes a batch that cannot be applied: every item without a result gets a 500
/// result saying why.
pub fn fail_batch(
    conn: &mut DbConnection,
    gate: &WriteGate,
    outbox: &Outbox,
    batch: &ClaimedBatch,
    owner: &str,
    reason: &str,
) -> anyhow::Result<bool> {
    let (recorded, mut counts) = recorded(conn, batch.id)?;
    let rows: Vec<NewResult> = (0..batch.record_count)
        .filter(|seq| !recorded.contains_key(&(*seq as usize)))
        .map(|seq| NewResult {
            seq,
            entity_id: None,
            entity_ref: None,
            response_code: CODE_FAILED,
            message: Cow::Owned(format!("not applied: {reason}")),
            data: None,
        })
        .collect();
    let completed = gate.executor(|| {
        conn.transaction::<_, TxError, _>(|conn| {
            results::insert_results(conn, batch.id, &rows)?;
            counts.rejected += rows.len() as i32;
            if batches::complete_batch(conn, batch.id, owner, now(), counts)? {
                batches::notify_queue_changed(conn)?;
                outbox.batch_completed(conn, batch.id, now())?;
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

/// Test aids, compiled only with the `fault-injection` feature.
#[cfg(feature = "fault-injection")]
mod fault_injection {
    use super::Checked;
    use diesel::result::{DatabaseErrorKind, Error as DieselError};

    fn sku(checked: &Checked) -> Option<&str> {
        match checked {
            Checked::Record(r) => Some(&r.sku_ref),
            Checked::Item(i) => Some(&i.sku),
            Checked::Invalid { .. } => None,
        }
    }

    /// Panics when a record's skuRef equals `STOCKBATCH_FAULT_PANIC_SKU`.
    pub fn before_apply(checked: &[Checked]) {
        if let Ok(panic_sku) = std::env::var("STOCKBATCH_FAULT_PANIC_SKU") {
            if checked.iter().any(|c| sku(c) == Some(panic_sku.as_str())) {
                panic!("fault injected for skuRef {panic_sku}");
            }
        }
    }

    /// Sleeps `STOCKBATCH_FAULT_APPLY_DELAY_MS` inside the apply transaction before each
    /// step, so tests can kill, stop or cancel an executor in the middle of a batch.
    pub fn inside_transaction() {
        if let Some(ms) = std::env::var("STOCKBATCH_FAULT_APPLY_DELAY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
    }

    /// Fails a write that includes the item whose SKU is `STOCKBATCH_FAULT_REFUSED_SKU` as
    /// the database does for a value it cannot store.
    pub fn refuse_write(
        checked: &[Checked],
        items: impl Iterator<Item = usize>,
    ) -> Result<(), DieselError> {
        let Ok(refused) = std::env::var("STOCKBATCH_FAULT_REFUSED_SKU") else {
            return Ok(());
        };
        let mut items = items;
        if items.any(|i| sku(&checked[i]) == Some(refused.as_str())) {
            return Err(DieselError::DatabaseError(
                DatabaseErrorKind::Unknown,
                Box::new(format!(
                    "index row size 3072 exceeds btree version 4 maximum 2704 (fault injected for {refused})"
                )),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_of_one_batch_fit_under_the_next() {
        assert!(crate::domain::batch::MAX_BATCH_RECORDS as i64 <= VERSION_STRIDE);
    }

    #[test]
    fn only_data_errors_isolate_records() {
        let unknown = |m: &str| {
            DieselError::DatabaseError(DatabaseErrorKind::Unknown, Box::new(m.to_owned()))
        };
        assert!(refused_for_its_data(&unknown(
            "index row size 3072 exceeds btree version 4 maximum 2704 for index \"x\""
        )));
        assert!(!refused_for_its_data(&unknown(
            "could not extend file: No space left on device"
        )));
        assert!(!refused_for_its_data(&DieselError::DatabaseError(
            DatabaseErrorKind::UniqueViolation,
            Box::new("duplicate key".to_owned())
        )));
    }

    #[test]
    fn large_batches_are_checked_on_two_threads_in_item_order() {
        let texts: Vec<String> = (0..2501)
            .map(|i| match i {
                1800 => r#"{"retailerId":"1","locationRef":"L","qty":1}"#.to_owned(),
                _ => format!(r#"{{"retailerId":"1","locationRef":"L","skuRef":"S{i}","qty":{i}}}"#),
            })
            .collect();
        let raw: Vec<&RawValue> = texts
            .iter()
            .map(|t| serde_json::from_str(t).unwrap())
            .collect();
        let checked = check_in_parallel(&raw, |r| check_fluent(r, "1"));
        assert_eq!(checked.len(), 2501);
        for (i, item) in checked.iter().enumerate() {
            match item {
                Checked::Invalid { .. } => assert_eq!(i, 1800),
                Checked::Record(r) => {
                    assert_eq!((r.sku_ref.as_str(), r.qty), (&*format!("S{i}"), i as i64))
                }
                Checked::Item(_) => panic!("a Fluent record checked as a StateSet item"),
            }
        }
    }

    mod on_sqlite {
        use std::time::Duration;

        use chrono::TimeDelta;
        use serde_json::{json, Value};

        use super::super::*;
        use crate::db::models::{BatchResult, NewBatch, NewJob, PENDING};
        use crate::db::{build_pool, jobs, run_migrations, PooledConn};
        use crate::domain::inventory::{CREATED, UPDATED};

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
            claimed_with(&records())
        }

        /// Queues a batch of `records` on the positions `records()` touch.
        fn queue(conn: &mut DbConnection, records: &[Value]) -> i64 {
            let now = Utc::now().naive_utc();
            let job = NewJob {
                name: "feed",
                retailer_id: "1",
                meta: None,
                created_on: now,
            };
            let job_id = jobs::insert_job(conn, &job).unwrap();
            let entities = serde_json::to_string(records).unwrap();
            let batch = NewBatch {
                job_id: Some(job_id),
                retailer_id: "1",
                api: FLUENT,
                action: "UPSERT",
                entity_type: "INVENTORY",
                status: PENDING,
                record_count: records.len() as i32,
                entities: &entities,
                options: None,
                dry_run: 0,
                sku_min: Some(""),
                sku_max: Some("~"),
                loc_min: Some("L"),
                loc_max: Some("L"),
                meta: None,
                preprocessing: 1,
                attempts: 0,
                created_on: now,
            };
            batches::insert_batch(conn, &batch).unwrap()
        }

        /// A fresh database holding one batch of `records`, claimed by `OWNER`.
        fn claimed_with(records: &[Value]) -> (tempfile::TempDir, PooledConn, ClaimedBatch) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("stockbatch.db");
            let pool = build_pool(path.to_str().unwrap(), 1, Duration::from_secs(5)).unwrap();
            let mut conn = pool.get().unwrap();
            run_migrations(&mut conn).unwrap();
            queue(&mut conn, records);
            let now = Utc::now().naive_utc();
            let lease = now + TimeDelta::minutes(5);
            let claimed = batches::claim_next_batch(&mut conn, OWNER, now, lease)
                .unwrap()
                .unwrap();
            (dir, conn, claimed)
        }

        /// A batch's results without position ids (which depend on the order positions were
        /// first written in), after checking that every result names its position's id.
        fn all_results(conn: &mut DbConnection, batch_id: i64) -> Vec<BatchResult> {
            use crate::db::schema::inventory_positions as p;
            use diesel::prelude::*;
            let ids: HashMap<String, i64> = p::table
                .select((p::sku_ref, p::id))
                .load::<(String, i64)>(conn)
                .unwrap()
                .into_iter()
                .collect();
            let mut rows = results::page_results(conn, batch_id, 0, 5000).unwrap();
            for row in &mut rows {
                let sku = row.entity_ref.as_deref().and_then(|r| r.strip_suffix(":L"));
                assert_eq!(
                    row.entity_id,
                    sku.and_then(|s| ids.get(s).copied()),
                    "{row:?}"
                );
                row.entity_id = None;
            }
            rows
        }

        /// A gate on which an API write always seems to wait: every transaction of a
        /// batch stops after one step.
        fn contended_gate() -> WriteGate {
            let gate = WriteGate::for_backend(crate::db::Backend::Sqlite);
            gate.pretend_api_write_waiting();
            gate
        }

        /// The records `batch` was queued with.
        fn records_of(conn: &mut DbConnection, batch: &ClaimedBatch) -> String {
            batches::find_entities(conn, batch.id).unwrap().unwrap()
        }

        fn apply(conn: &mut DbConnection, gate: &WriteGate, batch: &ClaimedBatch) -> BatchSummary {
            let records = records_of(conn, batch);
            match apply_batch(conn, gate, &Outbox::default(), batch, &records, OWNER, None).unwrap()
            {
                ApplyOutcome::Completed(summary, _) => summary,
                ApplyOutcome::LeaseLost => panic!("lease lost"),
            }
        }

        fn movements_count(conn: &mut DbConnection) -> usize {
            use crate::db::schema::inventory_movements::dsl::*;
            use diesel::prelude::*;
            inventory_movements.count().get_result::<i64>(conn).unwrap() as usize
        }

        fn uncontended_results() -> Vec<BatchResult> {
            let (_dir, mut conn, batch) = claimed();
            let summary = apply(&mut conn, &WriteGate::default(), &batch);
            assert_eq!(summary.transactions, 1);
            assert_eq!((summary.applied, summary.rejected), (1199, 1));
            assert_eq!(movements_count(&mut conn), 1199);
            all_results(&mut conn, batch.id)
        }

        #[test]
        fn a_waiting_api_write_splits_the_batch_but_not_its_results() {
            let expected = uncontended_results();
            assert_eq!(expected.len(), 1200);
            assert_eq!(expected[1].message, CREATED);
            assert_eq!(expected[1101].message, UPDATED, "a repeat updates");

            let (_dir, mut conn, batch) = claimed();
            let summary = apply(&mut conn, &contended_gate(), &batch);
            // Steps of 512, 512 and 176 items.
            assert_eq!(summary.transactions, 3);
            assert_eq!((summary.applied, summary.rejected), (1199, 1));
            assert_eq!(all_results(&mut conn, batch.id), expected);
            assert_eq!(movements_count(&mut conn), 1199);
        }

        /// Commits the first step of `batch` alone, as an attempt that stopped after its
        /// first transaction would have.
        fn apply_first_step(conn: &mut DbConnection, batch: &ClaimedBatch) {
            let records = records_of(conn, batch);
            let mut plan = plan(conn, batch, &records).unwrap();
            let mut view = load_view(conn, &plan).unwrap();
            let first: Vec<usize> = plan.pending[..GATED_STEP_ITEMS].to_vec();
            let mut ids = NewIds::default();
            let mut step = prepare(&mut plan, &mut view, &first, &mut ids);
            conn.transaction::<_, TxError, _>(|conn| {
                let rows = write(conn, &plan, &view, &mut step, &mut ids)?;
                results::insert_results(conn, batch.id, &rows)?;
                Ok(())
            })
            .unwrap();
        }

        #[test]
        fn a_batch_stopped_between_transactions_resumes_where_it_stopped() {
            let expected = uncontended_results();

            let (_dir, mut conn, batch) = claimed();
            apply_first_step(&mut conn, &batch);
            assert_eq!(all_results(&mut conn, batch.id).len(), 512);
            let summary = apply(&mut conn, &WriteGate::default(), &batch);

            assert_eq!((summary.applied, summary.rejected), (1199 - 512, 1));
            assert_eq!(all_results(&mut conn, batch.id), expected);
            assert_eq!(movements_count(&mut conn), 1199, "no movement twice");
        }

        #[test]
        fn a_batch_released_part_applied_and_then_cancelled_keeps_what_it_applied() {
            let (_dir, mut conn, batch) = claimed();
            apply_first_step(&mut conn, &batch);
            assert!(batches::release_batch(&mut conn, batch.id, OWNER).unwrap());
            let pending = batches::find_batch_by_id(&mut conn, batch.id)
                .unwrap()
                .unwrap();
            let cancelled = conn
                .transaction(|conn| {
                    crate::executor::cancel_batch(
                        conn,
                        &Outbox::default(),
                        &pending,
                        Utc::now().naive_utc(),
                    )
                })
                .unwrap();
            assert_eq!(cancelled, crate::executor::Cancelled::Now);
            let rows = all_results(&mut conn, batch.id);
            assert_eq!(rows.len(), 1200);
            assert!(rows[..512].iter().all(|r| r.message == CREATED), "kept");
            assert!(rows[512..]
                .iter()
                .all(|r| r.response_code == CODE_CANCELLED));
            let done = batches::find_batch_by_id(&mut conn, batch.id)
                .unwrap()
                .unwrap();
            assert_eq!(
                (done.status.as_str(), done.cancelled, done.applied_count),
                ("COMPLETE", 1, Some(512))
            );
            assert_eq!(done.rejected_count, Some(1200 - 512));
            assert_eq!(movements_count(&mut conn), 512);
        }

        /// With the feature on, the database refuses any write holding this SKU.
        #[cfg(feature = "fault-injection")]
        const POISON: &str = "POISON-IN-STEP-2";

        #[cfg(feature = "fault-injection")]
        #[test]
        fn a_refused_step_isolates_its_records_and_the_steps_after_it_still_apply() {
            let record = |sku: &str, qty: i64| json!({"retailerId": "1", "locationRef": "L", "skuRef": sku, "qty": qty});
            let mut poisoned = records();
            // The third step of 512 repeats a position the second creates after the poison.
            poisoned[1150] = record("SKU-800", 1150);
            let mut clean = poisoned.clone();
            // In the second step; without it, a record that changes nothing.
            poisoned[700] = record(POISON, 7);
            clean[700] = record("SKU-0", 0);
            let (mut expected, expected_stock) = {
                let (_dir, mut conn, batch) = claimed_with(&clean);
                apply(&mut conn, &WriteGate::default(), &batch);
                (all_results(&mut conn, batch.id), stock(&mut conn))
            };
            std::env::set_var("STOCKBATCH_FAULT_REFUSED_SKU", POISON);
            let (_dir, mut conn, batch) = claimed_with(&poisoned);
            let summary = apply(&mut conn, &contended_gate(), &batch);
            assert_eq!(summary.transactions, 3);
            assert_eq!((summary.applied, summary.rejected), (1198, 2));
            let got = all_results(&mut conn, batch.id);
            assert_eq!(got[700].response_code, 400, "{:?}", got[700]);
            assert!(got[700]
                .message
                .starts_with("the database cannot store this record"));
            expected[700] = got[700].clone();
            assert_eq!(got, expected);
            assert_eq!(stock(&mut conn), expected_stock);
            assert_eq!(movements_count(&mut conn), 1198);
        }

        fn stock(conn: &mut DbConnection) -> Vec<(String, i64)> {
            use crate::db::schema::inventory_positions as p;
            use diesel::prelude::*;
            p::table
                .select((p::sku_ref, p::qty))
                .order(p::sku_ref)
                .load(conn)
                .unwrap()
        }

        #[test]
        fn the_transaction_completing_a_batch_claims_the_next_and_can_hand_it_back() {
            let (_dir, mut conn, batch) = claimed();
            let next_id = queue(&mut conn, &records()[..10]);
            let lease = Some(TimeDelta::minutes(5));
            let records = records_of(&mut conn, &batch);
            let outcome = apply_batch(
                &mut conn,
                &WriteGate::default(),
                &Outbox::default(),
                &batch,
                &records,
                OWNER,
                lease,
            );
            let next = match outcome.unwrap() {
                ApplyOutcome::Completed(_, Some(next)) => next,
                other => panic!("{other:?}"),
            };
            assert_eq!((next.id, next.attempts), (next_id, 1));
            let held = batches::find_batch_by_id(&mut conn, next_id)
                .unwrap()
                .unwrap();
            assert_eq!(held.status, "RUNNING");
            assert!(held.started_on.is_some());
            assert!(batches::unclaim_batch(&mut conn, next_id, OWNER).unwrap());
            let pending = batches::find_batch_by_id(&mut conn, next_id)
                .unwrap()
                .unwrap();
            assert_eq!(
                (pending.status.as_str(), pending.started_on),
                ("PENDING", None),
                "no attempt of it ran"
            );
            let now = Utc::now().naive_utc();
            let again =
                batches::claim_next_batch(&mut conn, "another", now, now + TimeDelta::minutes(5))
                    .unwrap()
                    .unwrap();
            assert_eq!(
                (again.id, again.attempts),
                (next_id, 1),
                "handed back unattempted"
            );
            // An attempt ran and was released; a claim after it handed back keeps its start.
            assert!(batches::release_batch(&mut conn, next_id, "another").unwrap());
            let ahead =
                batches::claim_next_batch(&mut conn, OWNER, now, now + TimeDelta::minutes(5))
                    .unwrap()
                    .unwrap();
            assert_eq!((ahead.id, ahead.attempts), (next_id, 2));
            assert!(batches::unclaim_batch(&mut conn, next_id, OWNER).unwrap());
            let pending = batches::find_batch_by_id(&mut conn, next_id)
                .unwrap()
                .unwrap();
            assert_eq!(pending.attempts, 1);
            assert!(pending.started_on.is_some(), "an attempt of it ran");
        }
    }
}
