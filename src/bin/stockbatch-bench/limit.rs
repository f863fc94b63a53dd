//! The limit: the service's writes — each record's position read (its quantity before),
//! then created or updated in `inventory_positions`, one `inventory_movements` row (the
//! ledger) per record and the results in `batch_result_chunks` as the service stores them, a
//! `jobs` and a `batches` row, one transaction per batch — done straight from Rust on a
//! fresh database of the same backend, by several methods.

use std::time::{Duration, Instant};

use chrono::{NaiveDateTime, Utc};
use diesel::connection::SimpleConnection;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_query;
use diesel::sql_types::{Array, BigInt, Integer, Text, Timestamp, Untyped};
use diesel::sqlite::Sqlite;
use stockbatch::db::models::NewResult;
use stockbatch::db::models::FLUENT;
use stockbatch::db::results::{page_results, result_chunks, CHUNK_RESULTS};
use stockbatch::db::schema::{
    batch_result_chunks, batches, inventory_movements, inventory_positions, jobs,
};
use stockbatch::db::{build_pool, ladder_chunks, run_migrations, DbConnection};
use stockbatch::executor::VERSION_STRIDE;

use crate::args::{Args, Db};
use crate::service::FreshDb;
use crate::workload::{
    expected_message, Checks, Record, Space, CREATED, RETAILER, UPDATED, UPDATE_DELTA,
};

/// The columns a position write fills, in the order its values come.
const COLUMNS: &str = "retailer_id, location_ref, sku_ref, qty, corrected_qty, reserved_qty, \
    inventory_id, reference, inventory_type, status, attributes, version, created_version, \
    created_on, updated_on";

/// Optional fields a record leaves out keep their stored value; a write only lands over
/// an older version, so applying batches out of order still ends with the newest data.
const ON_CONFLICT: &str = "ON CONFLICT (retailer_id, location_ref, sku_ref) DO UPDATE SET \
    qty = excluded.qty, \
    corrected_qty = COALESCE(excluded.corrected_qty, inventory_positions.corrected_qty), \
    reserved_qty = COALESCE(excluded.reserved_qty, inventory_positions.reserved_qty), \
    inventory_id = COALESCE(excluded.inventory_id, inventory_positions.inventory_id), \
    reference = COALESCE(excluded.reference, inventory_positions.reference), \
    inventory_type = excluded.inventory_type, \
    status = COALESCE(excluded.status, inventory_positions.status), \
    attributes = COALESCE(excluded.attributes, inventory_positions.attributes), \
    version = excluded.version, updated_on = excluded.updated_on \
    WHERE inventory_positions.version < excluded.version";

/// What an update of an existing position sets (records leave the optional fields out).
const UPDATE_SET: &str = "qty = u.q, inventory_type = 'LAST_ON_HAND', version = u.v, updated_on = ";

/// The ledger's columns a Fluent UPSERT fills (`reason` and `reference` stay NULL).
const MOVEMENT_COLUMNS: &str =
    "position_id, batch_id, item_index, api, operation, previous_qty, new_qty, created_on";
/// How the ledger names a Fluent UPSERT.
const OPERATION: &str = "UPSERT";

const SQLITE_MAX_BINDS: usize = 32_766;
const PG_MAX_BINDS: usize = 65_535;

/// Each key `k.l, k.s`'s position (retailer `$1`) by one index probe, whatever the table's
/// statistics say: a plain join on a table never analyzed (autovacuum off) hashes all of it.
const PG_POSITION_OF_KEY: &str =
    "CROSS JOIN LATERAL (SELECT p.id, p.qty FROM inventory_positions p \
    WHERE p.retailer_id = $1 AND p.location_ref = k.l AND p.sku_ref = k.s LIMIT 1) p";

/// The optional columns records leave out, typed for PostgreSQL.
const NULLS: &str =
    "NULL::int8, NULL::int8, NULL::text, NULL::text, 'LAST_ON_HAND', NULL::text, NULL::text";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    SqliteMultiRow,
    SqliteMultiRowCached,
    SqliteReadWrite,
    SqlitePrepared,
    PgUnnest,
    PgReadWrite,
    PgValues,
    PgCopy,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::SqliteMultiRow => {
                "read, multi-row upsert; chunks under 32766 binds, prepared anew each time"
            }
            Method::SqliteMultiRowCached => {
                "read, multi-row upsert; 128-row prepared statements (cached)"
            }
            Method::SqliteReadWrite => {
                "read, INSERT new / UPDATE existing; 128-row prepared statements (cached)"
            }
            Method::SqlitePrepared => "read, upsert; single-row prepared statements (cached)",
            Method::PgUnnest => "UNNEST arrays: read, upsert, results, movements (4 statements)",
            Method::PgReadWrite => {
                "UNNEST arrays: read, INSERT new / UPDATE existing, results, movements (5 statements)"
            }
            Method::PgValues => {
                "multi-row VALUES: read, upsert, results, movements; chunks under 65535 binds"
            }
            Method::PgCopy => {
                "COPY to temp table, then read, upsert, results, movements in 1 statement"
            }
        }
    }

    fn for_db(db: Db) -> &'static [Method] {
        match db {
            Db::Sqlite => &[
                Method::SqliteMultiRow,
                Method::SqliteMultiRowCached,
                Method::SqliteReadWrite,
                Method::SqlitePrepared,
            ],
            Db::Postgres => &[
                Method::PgUnnest,
                Method::PgReadWrite,
                Method::PgValues,
                Method::PgCopy,
            ],
        }
    }
}

pub struct LimitRun {
    pub method: Method,
    /// Records per second of transaction time, pass 1 (creates) and pass 2 (updates).
    pub records_per_sec: [f64; 2],
}

/// Runs every method of the backend on a fresh database each: pass 1 creates the
/// positions, pass 2 updates them.
pub fn run(args: &Args, checks: &Checks) -> anyhow::Result<Vec<LimitRun>> {
    let mut runs = Vec::new();
    for &method in Method::for_db(args.db) {
        eprintln!("limit: {}", method.name());
        let db = FreshDb::create(args.db, &args.postgres_url)?;
        let pool = build_pool(db.url(), 1, Duration::from_secs(30))?;
        let mut conn = pool.get()?;
        run_migrations(&mut conn)?;
        if let DbConnection::Pg(c) = &mut *conn {
            c.batch_execute(
                "CREATE TEMP TABLE bench_stage (location_ref TEXT NOT NULL, sku_ref TEXT NOT NULL, \
                 qty BIGINT NOT NULL, version BIGINT NOT NULL) ON COMMIT DELETE ROWS",
            )?;
        }
        let mut records_per_sec = [0.0; 2];
        for pass in [1u8, 2] {
            let mut busy = Duration::ZERO;
            let mut first_batch = None;
            for batch in 0..args.batches {
                let records: Vec<Record> = (0..args.records)
                    .map(|i| Record::new(Space::Main, batch, i, args.records, pass))
                    .collect();
                let started = Instant::now();
                let id = write_batch(&mut conn, method, &records)?;
                busy += started.elapsed();
                first_batch.get_or_insert(id);
            }
            records_per_sec[pass as usize - 1] = args.total_records() as f64 / busy.as_secs_f64();
            let first_batch = first_batch.expect("at least one batch");
            verify(&mut conn, args, pass, first_batch, method, checks)?;
        }
        runs.push(LimitRun {
            method,
            records_per_sec,
        });
    }
    Ok(runs)
}

/// After pass `pass` (its batches have ids from `first_batch` on): one position per
/// record; one result per record of each pass, 200 with the pass's message; one movement
/// per record of each pass, and each of this pass's names its record's position (the one
/// its result names) with the quantity before (0 for a position created) and the one stored.
fn verify(
    conn: &mut DbConnection,
    args: &Args,
    pass: u8,
    first_batch: i64,
    method: Method,
    checks: &Checks,
) -> QueryResult<()> {
    let expected = args.total_records() as i64;
    let positions: i64 = inventory_positions::table.count().get_result(conn)?;
    let stored: Option<i64> = batch_result_chunks::table
        .select(diesel::dsl::sum(batch_result_chunks::results))
        .get_result(conn)?;
    // Each result of this pass by its batch and record index, as the position it names.
    let mut named: Vec<Vec<Option<i64>>> = Vec::new();
    let mut results = 0;
    for batch in first_batch..first_batch + args.batches as i64 {
        let rows = page_results(conn, batch, 0, args.records as i64)?;
        let mut ids = vec![None; args.records];
        for r in rows {
            if r.response_code == 200 && r.message == expected_message(pass) {
                results += 1;
                ids[r.seq as usize] = r.entity_id;
            }
        }
        named.push(ids);
    }
    checks.ensure(
        positions == expected && results == expected && stored == Some(expected * i64::from(pass)),
        || {
            format!(
                "limit, {}, pass {pass}: {positions} positions, {results} {:?} results of \
                 {stored:?} in all, expected {expected}",
                method.name(),
                expected_message(pass)
            )
        },
    );
    let movements: i64 = inventory_movements::table.count().get_result(conn)?;
    let previous = if pass == 1 {
        "0".to_owned()
    } else {
        format!("p.qty - {UPDATE_DELTA}")
    };
    let consistent = sql_query(format!(
        "SELECT m.batch_id, CAST(m.item_index AS BIGINT) AS item_index, m.position_id \
         FROM inventory_movements m JOIN inventory_positions p ON p.id = m.position_id \
         WHERE m.batch_id >= {first_batch} AND m.api = '{FLUENT}' AND m.operation = '{OPERATION}' \
           AND m.new_qty = p.qty AND m.previous_qty = {previous}"
    ));
    let consistent = match conn {
        DbConnection::Sqlite(c) => consistent.load::<Moved>(c)?,
        DbConnection::Pg(c) => consistent.load::<Moved>(c)?,
    }
    .into_iter()
    .filter(|m| {
        named
            .get((m.batch_id - first_batch) as usize)
            .and_then(|ids| ids.get(m.item_index as usize))
            .is_some_and(|id| *id == Some(m.position_id))
    })
    .count() as i64;
    checks.ensure(
        movements == expected * i64::from(pass) && consistent == expected,
        || {
            format!(
                "limit, {}, pass {pass}: {movements} movements in all, expected {}; {consistent} \
                 of this pass name their record's position and quantities, expected {expected}",
                method.name(),
                expected * i64::from(pass)
            )
        },
    );
    Ok(())
}

/// A movement of the pass verified, where it came from and the position it moved.
#[derive(QueryableByName)]
struct Moved {
    #[diesel(sql_type = BigInt)]
    batch_id: i64,
    #[diesel(sql_type = BigInt)]
    item_index: i64,
    #[diesel(sql_type = BigInt)]
    position_id: i64,
}

/// One batch being written.
struct Batch<'a> {
    id: i64,
    /// Record `seq` writes version `base + seq`.
    base: i64,
    records: &'a [Record],
    now: NaiveDateTime,
}

/// Record `seq`'s position as read before the write.
#[derive(QueryableByName)]
struct Before {
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    qty: i64,
}

/// A position written; its version names the record.
#[derive(QueryableByName)]
struct Written {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    version: i64,
}

/// What the batch did to one record: its result row and its movement.
struct Outcome {
    batch_id: i64,
    seq: i32,
    position_id: i64,
    entity_ref: String,
    message: &'static str,
    previous: i64,
    new: i64,
}

/// Inserts the results of `outcomes` of batch `b` on connection `c`, as the service stores
/// them.
macro_rules! insert_chunks {
    ($c:expr, $b:expr, $outcomes:expr) => {
        let rows: Vec<NewResult> = $outcomes.iter().map(Outcome::result).collect();
        for chunk in result_chunks($b.id, &rows) {
            diesel::insert_into(batch_result_chunks::table)
                .values(&chunk)
                .execute($c)?;
        }
    };
}

impl Outcome {
    fn result(&self) -> NewResult {
        NewResult {
            seq: self.seq,
            entity_id: Some(self.position_id),
            entity_ref: Some(self.entity_ref.clone()),
            response_code: 200,
            message: self.message.into(),
            data: None,
        }
    }
}

impl Batch<'_> {
    fn version(&self, seq: usize) -> i64 {
        self.base + seq as i64
    }

    /// Record by record, in order: the position id from the write and the quantity before
    /// from the read. A record whose write did not land gets none (`verify` counts them).
    fn outcomes(&self, before: &[Before], written: &[Written]) -> Vec<Outcome> {
        let mut previous = vec![None; self.records.len()];
        for b in before {
            previous[b.seq as usize] = Some(b.qty);
        }
        let mut ids = vec![None; self.records.len()];
        for w in written {
            ids[(w.version - self.base) as usize] = Some(w.id);
        }
        ids.iter()
            .zip(previous)
            .zip(self.records)
            .enumerate()
            .filter_map(|(seq, ((id, previous), record))| {
                Some(Outcome {
                    batch_id: self.id,
                    seq: seq as i32,
                    position_id: (*id)?,
                    entity_ref: record.entity_ref(),
                    message: if previous.is_some() { UPDATED } else { CREATED },
                    previous: previous.unwrap_or(0),
                    new: record.qty,
                })
            })
            .collect()
    }

    /// The records whose positions the read did not find.
    fn new_seqs(&self, before: &[Before]) -> Vec<usize> {
        let mut found = vec![false; self.records.len()];
        for b in before {
            found[b.seq as usize] = true;
        }
        (0..self.records.len()).filter(|&s| !found[s]).collect()
    }
}

/// One transaction: a job, a COMPLETE batch with its counts, the positions, results and
/// movements. Returns the batch id.
fn write_batch(conn: &mut DbConnection, method: Method, records: &[Record]) -> QueryResult<i64> {
    conn.transaction(|conn| {
        let now = Utc::now().naive_utc();
        let job_id: i64 = diesel::insert_into(jobs::table)
            .values((
                jobs::name.eq("limit"),
                jobs::retailer_id.eq(RETAILER),
                jobs::created_on.eq(now),
            ))
            .returning(jobs::id)
            .get_result(conn)?;
        let id: i64 = diesel::insert_into(batches::table)
            .values((
                batches::job_id.eq(Some(job_id)),
                batches::retailer_id.eq(RETAILER),
                batches::api.eq(FLUENT),
                batches::action.eq("UPSERT"),
                batches::entity_type.eq("INVENTORY"),
                batches::status.eq("COMPLETE"),
                batches::record_count.eq(records.len() as i32),
                batches::attempts.eq(1),
                batches::created_on.eq(now),
                batches::started_on.eq(Some(now)),
                batches::completed_on.eq(Some(now)),
                batches::processed_count.eq(records.len() as i32),
                batches::applied_count.eq(Some(records.len() as i32)),
                batches::rejected_count.eq(Some(0)),
                batches::unchanged_count.eq(Some(0)),
            ))
            .returning(batches::id)
            .get_result(conn)?;
        let b = Batch {
            id,
            base: id * VERSION_STRIDE,
            records,
            now,
        };
        match (method, conn) {
            (Method::SqliteMultiRow, DbConnection::Sqlite(c)) => {
                sqlite_upsert(c, Chunks::Uncached, &b)
            }
            (Method::SqliteMultiRowCached, DbConnection::Sqlite(c)) => {
                sqlite_upsert(c, Chunks::Cached(CACHED_SIZES), &b)
            }
            (Method::SqlitePrepared, DbConnection::Sqlite(c)) => {
                sqlite_upsert(c, Chunks::Cached(&[1]), &b)
            }
            (Method::SqliteReadWrite, DbConnection::Sqlite(c)) => sqlite_read_write(c, &b),
            (Method::PgUnnest, DbConnection::Pg(c)) => pg_unnest(c, &b),
            (Method::PgReadWrite, DbConnection::Pg(c)) => pg_read_write(c, &b),
            (Method::PgValues, DbConnection::Pg(c)) => pg_values(c, &b),
            (Method::PgCopy, DbConnection::Pg(c)) => pg_copy(c, &b),
            _ => unreachable!("methods are chosen by backend"),
        }?;
        Ok(id)
    })
}

/// The service's statement sizes: three statement texts per statement, each cached.
const CACHED_SIZES: &[usize] = &[128, 16, 1];

/// How a SQLite method splits rows into statements.
#[derive(Clone, Copy)]
enum Chunks {
    /// Fixed sizes (largest first, ending with 1): a few texts, each prepared once per
    /// connection (diesel caches by text) and reused.
    Cached(&'static [usize]),
    /// As many rows as the bind limit allows, prepared anew each time (as `sql_query` is).
    Uncached,
}

impl Chunks {
    fn split<T>(self, rows: &[T], binds: usize) -> Vec<&[T]> {
        match self {
            Chunks::Cached(sizes) => ladder_chunks(rows, sizes),
            Chunks::Uncached => rows.chunks((SQLITE_MAX_BINDS - 1) / binds).collect(),
        }
    }
}

type BindRow<R> = for<'b> fn(&'b R, &mut AstPass<'_, 'b, Sqlite>) -> QueryResult<()>;

/// A multi-row SQLite statement: `head [? now_then] (row), (row), ... tail`, where `?` is
/// the timestamp, bound once.
struct Shape<R> {
    head: String,
    now_then: Option<&'static str>,
    tail: String,
    /// Binds a row takes.
    binds: usize,
    bind: BindRow<R>,
}

impl<R> Shape<R> {
    fn load<T: QueryableByName<Sqlite> + 'static>(
        &self,
        c: &mut SqliteConnection,
        chunks: Chunks,
        rows: &[R],
        now: &NaiveDateTime,
    ) -> QueryResult<Vec<T>> {
        let mut out = Vec::with_capacity(rows.len());
        for chunk in chunks.split(rows, self.binds) {
            out.extend(self.statement(chunks, chunk, now).load::<T>(c)?);
        }
        Ok(out)
    }

    fn execute(
        &self,
        c: &mut SqliteConnection,
        chunks: Chunks,
        rows: &[R],
        now: &NaiveDateTime,
    ) -> QueryResult<()> {
        for chunk in chunks.split(rows, self.binds) {
            self.statement(chunks, chunk, now).execute(c)?;
        }
        Ok(())
    }

    fn statement<'a>(
        &'a self,
        chunks: Chunks,
        rows: &'a [R],
        now: &'a NaiveDateTime,
    ) -> Statement<'a, R> {
        Statement {
            shape: self,
            rows,
            now,
            cached: matches!(chunks, Chunks::Cached(_)),
        }
    }
}

struct Statement<'a, R> {
    shape: &'a Shape<R>,
    rows: &'a [R],
    now: &'a NaiveDateTime,
    cached: bool,
}

impl<R> QueryId for Statement<'_, R> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<R> Query for Statement<'_, R> {
    type SqlType = Untyped;
}

impl<R> RunQueryDsl<SqliteConnection> for Statement<'_, R> {}

impl<R> QueryFragment<Sqlite> for Statement<'_, R> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        if !self.cached {
            out.unsafe_to_cache_prepared();
        }
        out.push_sql(&self.shape.head);
        if let Some(then) = self.shape.now_then {
            out.push_bind_param::<Timestamp, _>(self.now)?;
            out.push_sql(then);
        }
        for (i, row) in self.rows.iter().enumerate() {
            out.push_sql(if i == 0 { " (" } else { ", (" });
            (self.shape.bind)(row, &mut out)?;
            out.push_sql(")");
        }
        out.push_sql(&self.shape.tail);
        Ok(())
    }
}

/// Binds a row's values, separated by `, `: `bind_row!(out, BigInt => &k.seq, ...)`.
macro_rules! bind_row {
    ($out:ident, $ty:ty => $value:expr $(, $rest_ty:ty => $rest:expr)* $(,)?) => {{
        $out.push_bind_param::<$ty, _>($value)?;
        $(
            $out.push_sql(", ");
            $out.push_bind_param::<$rest_ty, _>($rest)?;
        )*
        Ok(())
    }};
}

/// A record's key, to read its position.
struct Key<'a> {
    seq: i64,
    record: &'a Record,
}

/// A record's position to insert (or upsert).
struct Write<'a> {
    /// The id the position gets should it be created.
    id: i64,
    record: &'a Record,
    version: i64,
}

/// An existing position's new quantity.
struct Update {
    id: i64,
    qty: i64,
    version: i64,
}

fn read_shape<'a>() -> Shape<Key<'a>> {
    Shape {
        head: "SELECT k.column1 AS seq, p.id, p.qty FROM (VALUES".into(),
        now_then: None,
        tail: ") AS k JOIN inventory_positions p ON p.retailer_id = k.column2 \
               AND p.location_ref = k.column3 AND p.sku_ref = k.column4"
            .into(),
        binds: 4,
        bind: |k, out| {
            bind_row!(out,
                BigInt => &k.seq,
                Text => RETAILER,
                Text => &k.record.location_ref,
                Text => &k.record.sku_ref,
            )
        },
    }
}

/// Inserts positions, or upserts them with `on_conflict`; returns id and version of each.
fn write_shape<'a>(on_conflict: &str) -> Shape<Write<'a>> {
    Shape {
        head: format!(
            "INSERT INTO inventory_positions (id, {COLUMNS}) SELECT column1, column2, column3, \
             column4, column5, NULL, NULL, NULL, NULL, 'LAST_ON_HAND', NULL, NULL, column6, \
             column6, now.t, now.t FROM (SELECT "
        ),
        now_then: Some(" AS t) AS now, (VALUES"),
        // `WHERE true` tells SQLite's parser the ON CONFLICT belongs to the INSERT.
        tail: format!(") WHERE true {on_conflict} RETURNING id, version"),
        binds: 6,
        bind: |w, out| {
            bind_row!(out,
                BigInt => &w.id,
                Text => RETAILER,
                Text => &w.record.location_ref,
                Text => &w.record.sku_ref,
                BigInt => &w.record.qty,
                BigInt => &w.version,
            )
        },
    }
}

fn update_shape() -> Shape<Update> {
    Shape {
        head: "WITH now(t) AS (SELECT ".into(),
        now_then: Some("), v(id, q, v) AS (VALUES"),
        tail: format!(
            ") UPDATE inventory_positions AS p SET {UPDATE_SET}(SELECT t FROM now) \
             FROM (SELECT id, q, v FROM v) AS u WHERE p.id = u.id"
        ),
        binds: 3,
        bind: |u, out| bind_row!(out, BigInt => &u.id, BigInt => &u.qty, BigInt => &u.version),
    }
}

fn movements_shape() -> Shape<Outcome> {
    Shape {
        head: format!(
            "INSERT INTO inventory_movements ({MOVEMENT_COLUMNS}) SELECT column1, column2, \
             column3, '{FLUENT}', '{OPERATION}', column4, column5, now.t FROM (SELECT "
        ),
        now_then: Some(" AS t) AS now, (VALUES"),
        tail: ")".into(),
        binds: 5,
        bind: |o, out| {
            bind_row!(out,
                BigInt => &o.position_id,
                BigInt => &o.batch_id,
                Integer => &o.seq,
                BigInt => &o.previous,
                BigInt => &o.new,
            )
        },
    }
}

/// The first of `n` position ids never given, as the service reserves them on SQLite.
fn sqlite_reserve_ids(c: &mut SqliteConnection, n: usize) -> QueryResult<i64> {
    #[derive(QueryableByName)]
    struct Last {
        #[diesel(sql_type = BigInt)]
        last_id: i64,
    }
    let last: Last = sql_query("UPDATE position_ids SET last_id = last_id + ? RETURNING last_id")
        .bind::<BigInt, _>(n as i64)
        .get_result(c)?;
    Ok(last.last_id - n as i64 + 1)
}

fn sqlite_read(c: &mut SqliteConnection, chunks: Chunks, b: &Batch) -> QueryResult<Vec<Before>> {
    let keys: Vec<Key> = b
        .records
        .iter()
        .enumerate()
        .map(|(seq, record)| Key {
            seq: seq as i64,
            record,
        })
        .collect();
    read_shape().load(c, chunks, &keys, &b.now)
}

fn sqlite_results_and_movements(
    c: &mut SqliteConnection,
    chunks: Chunks,
    b: &Batch,
    before: &[Before],
    written: &[Written],
) -> QueryResult<()> {
    let outcomes = b.outcomes(before, written);
    insert_chunks!(c, b, &outcomes);
    movements_shape().execute(c, chunks, &outcomes, &b.now)
}

fn sqlite_upsert(c: &mut SqliteConnection, chunks: Chunks, b: &Batch) -> QueryResult<()> {
    let before = sqlite_read(c, chunks, b)?;
    let first_id = sqlite_reserve_ids(c, b.records.len())?;
    let writes: Vec<Write> = b
        .records
        .iter()
        .enumerate()
        .map(|(seq, record)| Write {
            id: first_id + seq as i64,
            record,
            version: b.version(seq),
        })
        .collect();
    let written = write_shape(ON_CONFLICT).load(c, chunks, &writes, &b.now)?;
    sqlite_results_and_movements(c, chunks, b, &before, &written)
}

/// The service's write path: what the read did not find is inserted, the rest updated.
fn sqlite_read_write(c: &mut SqliteConnection, b: &Batch) -> QueryResult<()> {
    let chunks = Chunks::Cached(CACHED_SIZES);
    let before = sqlite_read(c, chunks, b)?;
    let new_seqs = b.new_seqs(&before);
    let first_id = sqlite_reserve_ids(c, new_seqs.len())?;
    let inserts: Vec<Write> = new_seqs
        .into_iter()
        .enumerate()
        .map(|(n, seq)| Write {
            id: first_id + n as i64,
            record: &b.records[seq],
            version: b.version(seq),
        })
        .collect();
    let mut written: Vec<Written> = write_shape("").load(c, chunks, &inserts, &b.now)?;
    let updates: Vec<Update> = before
        .iter()
        .map(|x| Update {
            id: x.id,
            qty: b.records[x.seq as usize].qty,
            version: b.version(x.seq as usize),
        })
        .collect();
    update_shape().execute(c, chunks, &updates, &b.now)?;
    written.extend(updates.iter().map(|u| Written {
        id: u.id,
        version: u.version,
    }));
    sqlite_results_and_movements(c, chunks, b, &before, &written)
}

fn pg_read(c: &mut PgConnection, b: &Batch) -> QueryResult<Vec<Before>> {
    sql_query(format!(
        "SELECT k.i - 1 AS seq, p.id, p.qty \
         FROM UNNEST($2::text[], $3::text[]) WITH ORDINALITY AS k(l, s, i) {PG_POSITION_OF_KEY}"
    ))
    .bind::<Text, _>(RETAILER)
    .bind::<Array<Text>, _>(
        b.records
            .iter()
            .map(|r| r.location_ref.as_str())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Text>, _>(
        b.records
            .iter()
            .map(|r| r.sku_ref.as_str())
            .collect::<Vec<_>>(),
    )
    .load(c)
}

/// Inserts the positions of records `seqs` (or upserts them with `on_conflict`).
fn pg_unnest_write(
    c: &mut PgConnection,
    b: &Batch,
    seqs: &[usize],
    on_conflict: &str,
) -> QueryResult<Vec<Written>> {
    if seqs.is_empty() {
        return Ok(Vec::new());
    }
    let records = || seqs.iter().map(|&s| &b.records[s]);
    sql_query(format!(
        "INSERT INTO inventory_positions ({COLUMNS}) \
         SELECT $1, l, s, q, {NULLS}, v, v, $6, $6 \
         FROM UNNEST($2::text[], $3::text[], $4::int8[], $5::int8[]) AS t(l, s, q, v) \
         {on_conflict} RETURNING id, version"
    ))
    .bind::<Text, _>(RETAILER)
    .bind::<Array<Text>, _>(
        records()
            .map(|r| r.location_ref.as_str())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Text>, _>(records().map(|r| r.sku_ref.as_str()).collect::<Vec<_>>())
    .bind::<Array<BigInt>, _>(records().map(|r| r.qty).collect::<Vec<_>>())
    .bind::<Array<BigInt>, _>(seqs.iter().map(|&s| b.version(s)).collect::<Vec<_>>())
    .bind::<Timestamp, _>(b.now)
    .load(c)
}

fn pg_unnest_results_and_movements(
    c: &mut PgConnection,
    b: &Batch,
    before: &[Before],
    written: &[Written],
) -> QueryResult<()> {
    let outcomes = b.outcomes(before, written);
    insert_chunks!(c, b, &outcomes);
    sql_query(format!(
        "INSERT INTO inventory_movements ({MOVEMENT_COLUMNS}) \
         SELECT p, $1, i, '{FLUENT}', '{OPERATION}', pq, nq, $2 \
         FROM UNNEST($3::int8[], $4::int4[], $5::int8[], $6::int8[]) AS t(p, i, pq, nq)"
    ))
    .bind::<BigInt, _>(b.id)
    .bind::<Timestamp, _>(b.now)
    .bind::<Array<BigInt>, _>(outcomes.iter().map(|o| o.position_id).collect::<Vec<_>>())
    .bind::<Array<Integer>, _>(outcomes.iter().map(|o| o.seq).collect::<Vec<_>>())
    .bind::<Array<BigInt>, _>(outcomes.iter().map(|o| o.previous).collect::<Vec<_>>())
    .bind::<Array<BigInt>, _>(outcomes.iter().map(|o| o.new).collect::<Vec<_>>())
    .execute(c)?;
    Ok(())
}

fn pg_unnest(c: &mut PgConnection, b: &Batch) -> QueryResult<()> {
    let before = pg_read(c, b)?;
    let all: Vec<usize> = (0..b.records.len()).collect();
    let written = pg_unnest_write(c, b, &all, ON_CONFLICT)?;
    pg_unnest_results_and_movements(c, b, &before, &written)
}

/// The service's write path: what the read did not find is inserted, the rest updated.
fn pg_read_write(c: &mut PgConnection, b: &Batch) -> QueryResult<()> {
    let before = pg_read(c, b)?;
    let mut written = pg_unnest_write(c, b, &b.new_seqs(&before), "")?;
    let updates: Vec<Update> = before
        .iter()
        .map(|x| Update {
            id: x.id,
            qty: b.records[x.seq as usize].qty,
            version: b.version(x.seq as usize),
        })
        .collect();
    if !updates.is_empty() {
        sql_query(format!(
            "UPDATE inventory_positions AS p SET {UPDATE_SET}$4 \
             FROM UNNEST($1::int8[], $2::int8[], $3::int8[]) AS u(id, q, v) WHERE p.id = u.id"
        ))
        .bind::<Array<BigInt>, _>(updates.iter().map(|u| u.id).collect::<Vec<_>>())
        .bind::<Array<BigInt>, _>(updates.iter().map(|u| u.qty).collect::<Vec<_>>())
        .bind::<Array<BigInt>, _>(updates.iter().map(|u| u.version).collect::<Vec<_>>())
        .bind::<Timestamp, _>(b.now)
        .execute(c)?;
    }
    written.extend(updates.iter().map(|u| Written {
        id: u.id,
        version: u.version,
    }));
    pg_unnest_results_and_movements(c, b, &before, &written)
}

/// `($first, $first+1, ...)` rows of `per_row` placeholders, `shared` placeholders first.
fn pg_rows(rows: usize, shared: usize, per_row: usize, row: impl Fn(&[usize]) -> String) -> String {
    (0..rows)
        .map(|j| {
            let p: Vec<usize> = (0..per_row).map(|k| shared + 1 + per_row * j + k).collect();
            format!("({})", row(&p))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn pg_values(c: &mut PgConnection, b: &Batch) -> QueryResult<()> {
    // $1 (the retailer) is shared by every row; seq, location, SKU per row.
    let per = (PG_MAX_BINDS - 1) / 3;
    let mut before = Vec::with_capacity(b.records.len());
    for (k, chunk) in b.records.chunks(per).enumerate() {
        let sql = format!(
            "SELECT k.i AS seq, p.id, p.qty FROM (VALUES {}) AS k(i, l, s) {PG_POSITION_OF_KEY}",
            pg_rows(chunk.len(), 1, 3, |p| format!(
                "${}, ${}, ${}",
                p[0], p[1], p[2]
            ))
        );
        let mut query = sql_query(sql).into_boxed::<Pg>().bind::<Text, _>(RETAILER);
        for (j, r) in chunk.iter().enumerate() {
            query = query
                .bind::<BigInt, _>((k * per + j) as i64)
                .bind::<Text, _>(&r.location_ref)
                .bind::<Text, _>(&r.sku_ref);
        }
        before.extend(query.load::<Before>(c)?);
    }
    // $1 and $2 (retailer, now) are shared by every row; 4 binds per row.
    let per = (PG_MAX_BINDS - 2) / 4;
    let mut written = Vec::with_capacity(b.records.len());
    for (k, chunk) in b.records.chunks(per).enumerate() {
        let values = pg_rows(chunk.len(), 2, 4, |p| {
            format!(
                "$1, ${}, ${}, ${}, {NULLS}, ${v}, ${v}, $2, $2",
                p[0],
                p[1],
                p[2],
                v = p[3]
            )
        });
        let sql = format!(
            "INSERT INTO inventory_positions ({COLUMNS}) VALUES {values} {ON_CONFLICT} \
             RETURNING id, version"
        );
        let mut query = sql_query(sql)
            .into_boxed::<Pg>()
            .bind::<Text, _>(RETAILER)
            .bind::<Timestamp, _>(b.now);
        for (j, r) in chunk.iter().enumerate() {
            query = query
                .bind::<Text, _>(&r.location_ref)
                .bind::<Text, _>(&r.sku_ref)
                .bind::<BigInt, _>(r.qty)
                .bind::<BigInt, _>(b.version(k * per + j));
        }
        written.extend(query.load::<Written>(c)?);
    }
    let outcomes = b.outcomes(&before, &written);
    insert_chunks!(c, b, &outcomes);
    // $1 and $2 (batch, now) are shared by every row; 4 binds per row.
    for chunk in outcomes.chunks((PG_MAX_BINDS - 2) / 4) {
        let values = pg_rows(chunk.len(), 2, 4, |p| {
            format!(
                "${}, $1, ${}, '{FLUENT}', '{OPERATION}', ${}, ${}, $2",
                p[0], p[1], p[2], p[3]
            )
        });
        let sql = format!("INSERT INTO inventory_movements ({MOVEMENT_COLUMNS}) VALUES {values}");
        let mut query = sql_query(sql)
            .into_boxed::<Pg>()
            .bind::<BigInt, _>(b.id)
            .bind::<Timestamp, _>(b.now);
        for o in chunk {
            query = query
                .bind::<BigInt, _>(o.position_id)
                .bind::<Integer, _>(o.seq)
                .bind::<BigInt, _>(o.previous)
                .bind::<BigInt, _>(o.new);
        }
        query.execute(c)?;
    }
    Ok(())
}

diesel::table! {
    /// Per connection: `CREATE TEMP TABLE ... ON COMMIT DELETE ROWS` in [`run`].
    bench_stage (version) {
        location_ref -> Text,
        sku_ref -> Text,
        qty -> BigInt,
        version -> BigInt,
    }
}

#[derive(Insertable)]
#[diesel(table_name = bench_stage, treat_none_as_default_value = false)]
struct StageRow<'a> {
    location_ref: &'a str,
    sku_ref: &'a str,
    qty: i64,
    version: i64,
}

fn pg_copy(c: &mut PgConnection, b: &Batch) -> QueryResult<()> {
    let stage: Vec<StageRow> = b
        .records
        .iter()
        .enumerate()
        .map(|(seq, r)| StageRow {
            location_ref: &r.location_ref,
            sku_ref: &r.sku_ref,
            qty: r.qty,
            version: b.version(seq),
        })
        .collect();
    diesel::copy_from(bench_stage::table)
        .from_insertable(&stage)
        .execute(c)?;
    // Every part sees the positions as they were before the statement (one snapshot), so
    // `old` holds the quantities before; nothing leaves the server.
    sql_query(format!(
        "WITH old AS (\
           SELECT p.id, p.qty FROM (SELECT location_ref AS l, sku_ref AS s FROM bench_stage) AS k \
           {PG_POSITION_OF_KEY}), \
         up AS (\
           INSERT INTO inventory_positions ({COLUMNS}) \
           SELECT $1, location_ref, sku_ref, qty, {NULLS}, version, version, $2, $2 FROM bench_stage \
           {ON_CONFLICT} RETURNING id, version, qty, sku_ref, location_ref), \
         done AS (SELECT up.*, old.qty AS previous FROM up LEFT JOIN old ON old.id = up.id), \
         results AS (\
           INSERT INTO batch_result_chunks (batch_id, first_seq, last_seq, results, failed, body) \
           SELECT $3, MIN(s), MAX(s), COUNT(*), 0, json_build_object('messages', \
             json_build_array(), 'rows', json_agg(json_build_array(s, id, r, 200, m, NULL) \
             ORDER BY s))::text \
           FROM (SELECT (version - $4)::int4 AS s, id, sku_ref || ':' || location_ref AS r, \
             CASE WHEN previous IS NULL THEN '{CREATED}' ELSE '{UPDATED}' END AS m FROM done) d \
           GROUP BY s / {CHUNK_RESULTS}) \
         INSERT INTO inventory_movements ({MOVEMENT_COLUMNS}) \
         SELECT id, $3, (version - $4)::int4, '{FLUENT}', '{OPERATION}', COALESCE(previous, 0), \
           qty, $2 FROM done"
    ))
    .bind::<Text, _>(RETAILER)
    .bind::<Timestamp, _>(b.now)
    .bind::<BigInt, _>(b.id)
    .bind::<BigInt, _>(b.base)
    .execute(c)?;
    Ok(())
}
