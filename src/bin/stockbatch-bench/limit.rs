//! The limit: the service's writes — one upsert per record into `inventory_positions`, one
//! `batch_results` row per record, a `jobs` and a `batches` row, one transaction per batch —
//! done straight from Rust on a fresh database of the same backend, by several methods.

use std::time::{Duration, Instant};

use chrono::{NaiveDateTime, Utc};
use diesel::connection::SimpleConnection;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_query;
use diesel::sql_types::{BigInt, Integer, Text, Timestamp};
use diesel::sqlite::Sqlite;
use stockbatch::db::schema::{batch_results, batches, inventory_positions, jobs};
use stockbatch::db::{build_pool, ladder_chunks, run_migrations, DbConnection};
use stockbatch::executor::VERSION_STRIDE;

use crate::args::{Args, Db};
use crate::service::FreshDb;
use crate::workload::{expected_message, Checks, Record, Space, CREATED, RETAILER, UPDATED};

/// The columns an upsert writes, in the order its values come.
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

/// What an upsert reports of each write that landed.
const RETURNING: &str = " RETURNING id, version, created_version";

const SQLITE_MAX_BINDS: usize = 32_766;
const PG_MAX_BINDS: usize = 65_535;

/// The optional columns records leave out, typed for PostgreSQL.
const NULLS: &str =
    "NULL::int8, NULL::int8, NULL::text, NULL::text, 'LAST_ON_HAND', NULL::text, NULL::text";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    SqliteMultiRow,
    SqliteMultiRowCached,
    SqlitePrepared,
    PgUnnest,
    PgValues,
    PgCopy,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::SqliteMultiRow => "multi-row INSERT, chunks under 32766 binds",
            Method::SqliteMultiRowCached => {
                "multi-row INSERT, 128-row prepared statements (cached)"
            }
            Method::SqlitePrepared => "single-row prepared statements (cached)",
            Method::PgUnnest => "UNNEST arrays (2 statements)",
            Method::PgValues => "multi-row VALUES, chunks under 65535 binds",
            Method::PgCopy => "COPY to temp table, INSERT ... SELECT (1 statement)",
        }
    }

    fn for_db(db: Db) -> &'static [Method] {
        match db {
            Db::Sqlite => &[
                Method::SqliteMultiRow,
                Method::SqliteMultiRowCached,
                Method::SqlitePrepared,
            ],
            Db::Postgres => &[Method::PgUnnest, Method::PgValues, Method::PgCopy],
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
            for batch in 0..args.batches {
                let records: Vec<Record> = (0..args.records)
                    .map(|i| Record::new(Space::Main, batch, i, args.records, pass))
                    .collect();
                let started = Instant::now();
                write_batch(&mut conn, method, &records)?;
                busy += started.elapsed();
            }
            records_per_sec[pass as usize - 1] = args.total_records() as f64 / busy.as_secs_f64();
            verify(&mut conn, args, pass, method, checks)?;
        }
        runs.push(LimitRun {
            method,
            records_per_sec,
        });
    }
    Ok(runs)
}

/// After pass `pass`: one position per record, and one result per record of each pass.
fn verify(
    conn: &mut DbConnection,
    args: &Args,
    pass: u8,
    method: Method,
    checks: &Checks,
) -> QueryResult<()> {
    let expected = args.total_records() as i64;
    let positions: i64 = inventory_positions::table.count().get_result(conn)?;
    let results: i64 = batch_results::table
        .filter(batch_results::message.eq(expected_message(pass)))
        .filter(batch_results::response_code.eq(200))
        .count()
        .get_result(conn)?;
    checks.ensure(positions == expected && results == expected, || {
        format!(
            "limit, {}, pass {pass}: {positions} positions and {results} {:?} results, expected {expected}",
            method.name(),
            expected_message(pass)
        )
    });
    Ok(())
}

/// What an upsert did to a position.
#[derive(QueryableByName, Clone, Copy)]
struct Landed {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    version: i64,
    #[diesel(sql_type = BigInt)]
    created_version: i64,
}

/// One result row, as the executor writes it.
struct ResultRow {
    seq: i32,
    entity_id: i64,
    entity_ref: String,
    message: &'static str,
}

fn result_rows(records: &[Record], base: i64, landed: &[Landed]) -> Vec<ResultRow> {
    let mut rows: Vec<Option<ResultRow>> = (0..records.len()).map(|_| None).collect();
    for l in landed {
        let seq = (l.version - base) as usize;
        rows[seq] = Some(ResultRow {
            seq: seq as i32,
            entity_id: l.id,
            entity_ref: records[seq].entity_ref(),
            message: if l.created_version == l.version {
                CREATED
            } else {
                UPDATED
            },
        });
    }
    // Every write lands (versions only grow); a missing one shows in `verify`'s counts.
    rows.into_iter().flatten().collect()
}

/// One transaction: a job, a COMPLETE batch, the upserts and the results.
fn write_batch(conn: &mut DbConnection, method: Method, records: &[Record]) -> QueryResult<()> {
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
        let batch_id: i64 = diesel::insert_into(batches::table)
            .values((
                batches::job_id.eq(job_id),
                batches::action.eq("UPSERT"),
                batches::entity_type.eq("INVENTORY"),
                batches::status.eq("COMPLETE"),
                batches::record_count.eq(records.len() as i32),
                batches::attempts.eq(1),
                batches::created_on.eq(now),
                batches::completed_on.eq(Some(now)),
            ))
            .returning(batches::id)
            .get_result(conn)?;
        let base = batch_id * VERSION_STRIDE;
        match (method, conn) {
            (Method::SqliteMultiRow, DbConnection::Sqlite(c)) => {
                sqlite_multi_row(c, batch_id, base, records, now)
            }
            (Method::SqliteMultiRowCached, DbConnection::Sqlite(c)) => {
                sqlite_multi_row_cached(c, batch_id, base, records, now)
            }
            (Method::SqlitePrepared, DbConnection::Sqlite(c)) => {
                sqlite_prepared(c, batch_id, base, records, now)
            }
            (Method::PgUnnest, DbConnection::Pg(c)) => pg_unnest(c, batch_id, base, records, now),
            (Method::PgValues, DbConnection::Pg(c)) => pg_values(c, batch_id, base, records, now),
            (Method::PgCopy, DbConnection::Pg(c)) => pg_copy(c, batch_id, base, records, now),
            _ => unreachable!("methods are chosen by backend"),
        }
    })
}

fn sqlite_multi_row(
    c: &mut SqliteConnection,
    batch_id: i64,
    base: i64,
    records: &[Record],
    now: NaiveDateTime,
) -> QueryResult<()> {
    const ROW: &str =
        "(?, ?, ?, ?, NULL, NULL, NULL, NULL, 'LAST_ON_HAND', NULL, NULL, ?, ?, ?, ?)";
    let per = SQLITE_MAX_BINDS / 8;
    let mut landed = Vec::with_capacity(records.len());
    for (k, chunk) in records.chunks(per).enumerate() {
        let sql = format!(
            "INSERT INTO inventory_positions ({COLUMNS}) VALUES {} {ON_CONFLICT}{RETURNING}",
            vec![ROW; chunk.len()].join(", ")
        );
        let mut query = sql_query(sql).into_boxed::<Sqlite>();
        for (j, r) in chunk.iter().enumerate() {
            let version = base + (k * per + j) as i64;
            query = query
                .bind::<Text, _>(RETAILER)
                .bind::<Text, _>(&r.location_ref)
                .bind::<Text, _>(&r.sku_ref)
                .bind::<BigInt, _>(r.qty)
                .bind::<BigInt, _>(version)
                .bind::<BigInt, _>(version)
                .bind::<Timestamp, _>(now)
                .bind::<Timestamp, _>(now);
        }
        landed.extend(query.load::<Landed>(c)?);
    }
    let rows = result_rows(records, base, &landed);
    for chunk in rows.chunks(SQLITE_MAX_BINDS / 5) {
        let sql = format!(
            "INSERT INTO batch_results (batch_id, seq, entity_id, entity_ref, response_code, message) \
             VALUES {}",
            vec!["(?, ?, ?, ?, 200, ?)"; chunk.len()].join(", ")
        );
        let mut query = sql_query(sql).into_boxed::<Sqlite>();
        for row in chunk {
            query = query
                .bind::<BigInt, _>(batch_id)
                .bind::<Integer, _>(row.seq)
                .bind::<BigInt, _>(row.entity_id)
                .bind::<Text, _>(&row.entity_ref)
                .bind::<Text, _>(row.message);
        }
        query.execute(c)?;
    }
    Ok(())
}

/// A statement with a static query id: diesel prepares it once per connection and
/// reuses it (`sql_query` is prepared anew on every call).
macro_rules! prepared {
    ($name:ident, $id:ident, $sql_type:ty, |$self:ident, $out:ident| $walk:block) => {
        struct $id;
        impl QueryId for $name<'_> {
            type QueryId = $id;
            const HAS_STATIC_QUERY_ID: bool = true;
        }
        impl Query for $name<'_> {
            type SqlType = $sql_type;
        }
        impl RunQueryDsl<SqliteConnection> for $name<'_> {}
        impl QueryFragment<Sqlite> for $name<'_> {
            fn walk_ast<'b>(&'b $self, mut $out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> $walk
        }
    };
}

struct UpsertOne<'a> {
    record: &'a Record,
    version: i64,
    now: NaiveDateTime,
}

prepared!(
    UpsertOne,
    UpsertOneId,
    (BigInt, BigInt, BigInt),
    |self, out| {
        out.push_sql("INSERT INTO inventory_positions (");
        out.push_sql(COLUMNS);
        out.push_sql(") VALUES (");
        out.push_bind_param::<Text, str>(RETAILER)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, String>(&self.record.location_ref)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, String>(&self.record.sku_ref)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, i64>(&self.record.qty)?;
        out.push_sql(", NULL, NULL, NULL, NULL, 'LAST_ON_HAND', NULL, NULL, ");
        out.push_bind_param::<BigInt, i64>(&self.version)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, i64>(&self.version)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamp, NaiveDateTime>(&self.now)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamp, NaiveDateTime>(&self.now)?;
        out.push_sql(") ");
        out.push_sql(ON_CONFLICT);
        out.push_sql(RETURNING);
        Ok(())
    }
);

struct ResultOne<'a> {
    batch_id: i64,
    row: &'a ResultRow,
}

prepared!(ResultOne, ResultOneId, (), |self, out| {
    out.push_sql(
        "INSERT INTO batch_results (batch_id, seq, entity_id, entity_ref, response_code, message) VALUES (",
    );
    out.push_bind_param::<BigInt, i64>(&self.batch_id)?;
    out.push_sql(", ");
    out.push_bind_param::<Integer, i32>(&self.row.seq)?;
    out.push_sql(", ");
    out.push_bind_param::<BigInt, i64>(&self.row.entity_id)?;
    out.push_sql(", ");
    out.push_bind_param::<Text, String>(&self.row.entity_ref)?;
    out.push_sql(", 200, ");
    out.push_bind_param::<Text, str>(self.row.message)?;
    out.push_sql(")");
    Ok(())
});

/// Multi-row statements in a few fixed sizes. Their text depends only on the row count,
/// so diesel caches each prepared statement by its text; the timestamp is bound once.
struct UpsertMany<'a> {
    records: &'a [Record],
    versions: Vec<i64>,
    now: NaiveDateTime,
}

impl QueryId for UpsertMany<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for UpsertMany<'_> {
    type SqlType = diesel::sql_types::Untyped;
}

impl RunQueryDsl<SqliteConnection> for UpsertMany<'_> {}

impl QueryFragment<Sqlite> for UpsertMany<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        out.push_sql("INSERT INTO inventory_positions (");
        out.push_sql(COLUMNS);
        out.push_sql(
            ") SELECT column1, column2, column3, column4, NULL, NULL, NULL, NULL, 'LAST_ON_HAND', \
             NULL, NULL, column5, column5, now.t, now.t FROM (SELECT ",
        );
        out.push_bind_param::<Timestamp, NaiveDateTime>(&self.now)?;
        out.push_sql(" AS t) AS now, (VALUES ");
        for (i, (r, version)) in self.records.iter().zip(&self.versions).enumerate() {
            out.push_sql(if i == 0 { "(" } else { ", (" });
            out.push_bind_param::<Text, str>(RETAILER)?;
            out.push_sql(", ");
            out.push_bind_param::<Text, String>(&r.location_ref)?;
            out.push_sql(", ");
            out.push_bind_param::<Text, String>(&r.sku_ref)?;
            out.push_sql(", ");
            out.push_bind_param::<BigInt, i64>(&r.qty)?;
            out.push_sql(", ");
            out.push_bind_param::<BigInt, i64>(version)?;
            out.push_sql(")");
        }
        out.push_sql(") WHERE true ");
        out.push_sql(ON_CONFLICT);
        out.push_sql(RETURNING);
        Ok(())
    }
}

struct ResultsMany<'a> {
    batch_id: i64,
    rows: &'a [ResultRow],
}

impl QueryId for ResultsMany<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl RunQueryDsl<SqliteConnection> for ResultsMany<'_> {}

impl QueryFragment<Sqlite> for ResultsMany<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        out.push_sql(
            "INSERT INTO batch_results (batch_id, seq, entity_id, entity_ref, response_code, message) VALUES ",
        );
        for (i, row) in self.rows.iter().enumerate() {
            out.push_sql(if i == 0 { "(" } else { ", (" });
            out.push_bind_param::<BigInt, i64>(&self.batch_id)?;
            out.push_sql(", ");
            out.push_bind_param::<Integer, i32>(&row.seq)?;
            out.push_sql(", ");
            out.push_bind_param::<BigInt, i64>(&row.entity_id)?;
            out.push_sql(", ");
            out.push_bind_param::<Text, String>(&row.entity_ref)?;
            out.push_sql(", 200, ");
            out.push_bind_param::<Text, str>(row.message)?;
            out.push_sql(")");
        }
        Ok(())
    }
}

/// The service's statement sizes: three statement texts in all, each cached.
const CACHED_SIZES: &[usize] = &[128, 16, 1];

fn sqlite_multi_row_cached(
    c: &mut SqliteConnection,
    batch_id: i64,
    base: i64,
    records: &[Record],
    now: NaiveDateTime,
) -> QueryResult<()> {
    let mut landed = Vec::with_capacity(records.len());
    let mut first = 0;
    for chunk in ladder_chunks(records, CACHED_SIZES) {
        let versions = (first..first + chunk.len())
            .map(|i| base + i as i64)
            .collect();
        first += chunk.len();
        let upsert = UpsertMany {
            records: chunk,
            versions,
            now,
        };
        landed.extend(upsert.load::<Landed>(c)?);
    }
    let rows = result_rows(records, base, &landed);
    for chunk in ladder_chunks(&rows, CACHED_SIZES) {
        ResultsMany {
            batch_id,
            rows: chunk,
        }
        .execute(c)?;
    }
    Ok(())
}

fn sqlite_prepared(
    c: &mut SqliteConnection,
    batch_id: i64,
    base: i64,
    records: &[Record],
    now: NaiveDateTime,
) -> QueryResult<()> {
    let mut landed = Vec::with_capacity(records.len());
    for (i, record) in records.iter().enumerate() {
        let upsert = UpsertOne {
            record,
            version: base + i as i64,
            now,
        };
        let (id, version, created_version) = upsert.get_result::<(i64, i64, i64)>(c)?;
        landed.push(Landed {
            id,
            version,
            created_version,
        });
    }
    for row in &result_rows(records, base, &landed) {
        ResultOne { batch_id, row }.execute(c)?;
    }
    Ok(())
}

fn pg_unnest(
    c: &mut PgConnection,
    batch_id: i64,
    base: i64,
    records: &[Record],
    now: NaiveDateTime,
) -> QueryResult<()> {
    use diesel::sql_types::Array;
    let landed: Vec<Landed> = sql_query(format!(
        "INSERT INTO inventory_positions ({COLUMNS}) \
         SELECT $1, l, s, q, {NULLS}, v, v, $6, $6 \
         FROM UNNEST($2::text[], $3::text[], $4::int8[], $5::int8[]) AS t(l, s, q, v) \
         {ON_CONFLICT}{RETURNING}"
    ))
    .bind::<Text, _>(RETAILER)
    .bind::<Array<Text>, _>(
        records
            .iter()
            .map(|r| r.location_ref.as_str())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Text>, _>(
        records
            .iter()
            .map(|r| r.sku_ref.as_str())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<BigInt>, _>(records.iter().map(|r| r.qty).collect::<Vec<_>>())
    .bind::<Array<BigInt>, _>(
        (0..records.len() as i64)
            .map(|i| base + i)
            .collect::<Vec<_>>(),
    )
    .bind::<Timestamp, _>(now)
    .load(c)?;
    let rows = result_rows(records, base, &landed);
    sql_query(
        "INSERT INTO batch_results (batch_id, seq, entity_id, entity_ref, response_code, message) \
         SELECT $1, s, e, r, 200, m FROM UNNEST($2::int4[], $3::int8[], $4::text[], $5::text[]) AS t(s, e, r, m)",
    )
    .bind::<BigInt, _>(batch_id)
    .bind::<Array<Integer>, _>(rows.iter().map(|r| r.seq).collect::<Vec<_>>())
    .bind::<Array<BigInt>, _>(rows.iter().map(|r| r.entity_id).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(rows.iter().map(|r| r.entity_ref.as_str()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(rows.iter().map(|r| r.message).collect::<Vec<_>>())
    .execute(c)?;
    Ok(())
}

fn pg_values(
    c: &mut PgConnection,
    batch_id: i64,
    base: i64,
    records: &[Record],
    now: NaiveDateTime,
) -> QueryResult<()> {
    // $1 and $2 (retailer, now) are shared by every row; 4 binds per row.
    let per = (PG_MAX_BINDS - 2) / 4;
    let mut landed = Vec::with_capacity(records.len());
    for (k, chunk) in records.chunks(per).enumerate() {
        let values: Vec<String> = (0..chunk.len())
            .map(|j| {
                let p = 3 + 4 * j;
                format!(
                    "($1, ${}, ${}, ${}, {NULLS}, ${v}, ${v}, $2, $2)",
                    p,
                    p + 1,
                    p + 2,
                    v = p + 3
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO inventory_positions ({COLUMNS}) VALUES {} {ON_CONFLICT}{RETURNING}",
            values.join(", ")
        );
        let mut query = sql_query(sql)
            .into_boxed::<Pg>()
            .bind::<Text, _>(RETAILER)
            .bind::<Timestamp, _>(now);
        for (j, r) in chunk.iter().enumerate() {
            query = query
                .bind::<Text, _>(&r.location_ref)
                .bind::<Text, _>(&r.sku_ref)
                .bind::<BigInt, _>(r.qty)
                .bind::<BigInt, _>(base + (k * per + j) as i64);
        }
        landed.extend(query.load::<Landed>(c)?);
    }
    let rows = result_rows(records, base, &landed);
    for chunk in rows.chunks((PG_MAX_BINDS - 1) / 4) {
        let values: Vec<String> = (0..chunk.len())
            .map(|j| {
                let p = 2 + 4 * j;
                format!("($1, ${}, ${}, ${}, 200, ${})", p, p + 1, p + 2, p + 3)
            })
            .collect();
        let sql = format!(
            "INSERT INTO batch_results (batch_id, seq, entity_id, entity_ref, response_code, message) \
             VALUES {}",
            values.join(", ")
        );
        let mut query = sql_query(sql)
            .into_boxed::<Pg>()
            .bind::<BigInt, _>(batch_id);
        for row in chunk {
            query = query
                .bind::<Integer, _>(row.seq)
                .bind::<BigInt, _>(row.entity_id)
                .bind::<Text, _>(&row.entity_ref)
                .bind::<Text, _>(row.message);
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

fn pg_copy(
    c: &mut PgConnection,
    batch_id: i64,
    base: i64,
    records: &[Record],
    now: NaiveDateTime,
) -> QueryResult<()> {
    let stage: Vec<StageRow> = records
        .iter()
        .enumerate()
        .map(|(i, r)| StageRow {
            location_ref: &r.location_ref,
            sku_ref: &r.sku_ref,
            qty: r.qty,
            version: base + i as i64,
        })
        .collect();
    diesel::copy_from(bench_stage::table)
        .from_insertable(&stage)
        .execute(c)?;
    // The upsert and the results in one statement: the results never leave the server.
    sql_query(format!(
        "WITH up AS (\
           INSERT INTO inventory_positions ({COLUMNS}) \
           SELECT $1, location_ref, sku_ref, qty, {NULLS}, version, version, $2, $2 FROM bench_stage \
           {ON_CONFLICT} RETURNING id, version, created_version, sku_ref, location_ref) \
         INSERT INTO batch_results (batch_id, seq, entity_id, entity_ref, response_code, message) \
         SELECT $3, (version - $4)::int4, id, sku_ref || ':' || location_ref, 200, \
           CASE WHEN created_version = version THEN '{CREATED}' ELSE '{UPDATED}' END FROM up"
    ))
    .bind::<Text, _>(RETAILER)
    .bind::<Timestamp, _>(now)
    .bind::<BigInt, _>(batch_id)
    .bind::<BigInt, _>(base)
    .execute(c)?;
    Ok(())
}
