//! Connections and pools for both backends, and the embedded migrations.

use std::time::Duration;

use anyhow::Context;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{self, R2D2Connection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::checkpointer::Checkpointer;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// A connection to whichever backend `DATABASE_URL` names.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Pg(PgConnection),
    Sqlite(SqliteConnection),
}

pub type DbPool = r2d2::Pool<ConnectionManager>;
pub type PooledConn = r2d2::PooledConnection<ConnectionManager>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// `postgres://` and `postgresql://` URLs select PostgreSQL; anything else is a SQLite path.
    pub fn of_url(url: &str) -> Self {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

/// Opens connections of the backend the URL names (never guessing by trial). A SQLite
/// file's pool checkpoints its WAL on a thread of its own ([`Checkpointer`]), not in the
/// commits of its connections.
#[derive(Debug)]
pub struct ConnectionManager {
    url: String,
    backend: Backend,
    checkpointer: Option<Checkpointer>,
}

impl ConnectionManager {
    /// Connections that give up after `timeout` when PostgreSQL goes silent (see
    /// [`with_network_timeouts`]).
    pub fn new(url: &str, timeout: Duration) -> Self {
        let backend = Backend::of_url(url);
        let url = match backend {
            Backend::Postgres => with_network_timeouts(url, timeout),
            Backend::Sqlite => Self::sqlite_path(url).to_owned(),
        };
        let in_memory = url == ":memory:" || url.is_empty();
        let checkpointer = match backend {
            Backend::Sqlite if !in_memory => match Checkpointer::start(&url) {
                Ok(checkpointer) => Some(checkpointer),
                Err(e) => {
                    log::warn!("SQLite checkpoints in its commits: no thread for them ({e})");
                    None
                }
            },
            _ => None,
        };
        ConnectionManager {
            url,
            backend,
            checkpointer,
        }
    }

    /// The file a SQLite URL (`sqlite://PATH`, `sqlite:PATH` or a bare path) names.
    pub fn sqlite_path(url: &str) -> &str {
        url.strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url)
    }
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<DbConnection, r2d2::Error> {
        match self.backend {
            Backend::Postgres => PgConnection::establish(&self.url)
                .map(DbConnection::Pg)
                .map_err(r2d2::Error::ConnectionError),
            Backend::Sqlite => {
                let mut conn =
                    SqliteConnection::establish(&self.url).map_err(r2d2::Error::ConnectionError)?;
                // WAL so readers never wait for the executor; FULL so an accepted batch
                // survives a power cut; a busy timeout rather than `database is locked`;
                // statement journals (an upsert's undo) in memory rather than temp files.
                conn.batch_execute(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                     PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; \
                     PRAGMA temp_store = MEMORY;",
                )
                .map_err(r2d2::Error::QueryError)?;
                if self.checkpointer.is_some() {
                    conn.batch_execute("PRAGMA wal_autocheckpoint = 0;")
                        .map_err(r2d2::Error::QueryError)?;
                }
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), r2d2::Error> {
        conn.ping().map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        conn.is_broken()
    }
}

/// Sets SQLite up for the pool: multi-thread mode, as a pooled connection is only ever used
/// by the one thread holding it, so the default serialized mode's lock around every call
/// (each bind, each step) buys nothing; and no memory statistics, which take a global lock
/// on every allocation. Call it first thing in `main`, before any other thread starts:
/// `sqlite3_config` must not run beside other SQLite calls. Once SQLite is initialized it
/// refuses, and SQLite keeps its defaults, which are only slower.
pub fn configure_sqlite() {
    use libsqlite3_sys::{sqlite3_config, SQLITE_CONFIG_MEMSTATUS, SQLITE_CONFIG_MULTITHREAD};
    // SAFETY: called before other threads exist (see above); each call only sets an option,
    // and returns SQLITE_MISUSE when SQLite is already initialized.
    let rc = unsafe {
        sqlite3_config(SQLITE_CONFIG_MULTITHREAD) | sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0)
    };
    if rc != libsqlite3_sys::SQLITE_OK {
        log::debug!("SQLite keeps its default threading mode (sqlite3_config returned {rc})");
    }
}

/// Adds libpq settings so a PostgreSQL that stops answering — packets dropped, not
/// refused — turns into errors within about `timeout` instead of hangs: a connect timeout,
/// `tcp_user_timeout` for unacknowledged data, keepalives for idle connections, and on the
/// server side its own keepalives and a limit on sessions idle inside a transaction, so a
/// vanished client's locks are released. Settings already in the URL are kept.
pub fn with_network_timeouts(url: &str, timeout: Duration) -> String {
    let ms = timeout.as_millis().max(1000);
    let server_side = format!(
        "-c tcp_keepalives_idle=5 -c tcp_keepalives_interval=2 -c tcp_keepalives_count=3 \
         -c tcp_user_timeout={ms} -c idle_in_transaction_session_timeout={}",
        (ms * 4).max(10_000)
    );
    let settings = [
        ("connect_timeout", (ms / 1000).max(2).to_string()),
        ("tcp_user_timeout", ms.to_string()),
        ("keepalives", "1".to_owned()),
        ("keepalives_idle", (ms / 1000).max(1).to_string()),
        ("keepalives_interval", "1".to_owned()),
        ("keepalives_count", "3".to_owned()),
        ("options", server_side),
    ];
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let given = |name: &str| {
        query
            .split('&')
            .any(|pair| pair.split('=').next() == Some(name))
    };
    let mut url = url.to_owned();
    for (name, value) in settings {
        if given(name) {
            continue;
        }
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(name);
        url.push('=');
        url.push_str(&url_encode(&value));
    }
    url
}

fn url_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Builds a pool of `size` connections. Checkouts give up after `timeout`, so a
/// missing database turns into a prompt error rather than a hang.
pub fn build_pool(url: &str, size: u32, timeout: Duration) -> anyhow::Result<DbPool> {
    let backend = Backend::of_url(url);
    r2d2::Pool::builder()
        .max_size(size)
        .min_idle(Some(1))
        .connection_timeout(timeout)
        .test_on_check_out(true)
        .build(ConnectionManager::new(url, timeout))
        .with_context(|| format!("cannot open the {} database", backend.name()))
}

/// A transaction that will write. On SQLite it takes the write lock at its start (`BEGIN
/// IMMEDIATE`, waiting up to the busy timeout): a deferred transaction that reads first
/// fails at once with "database is locked" when it comes to write after another connection
/// wrote meanwhile. PostgreSQL needs nothing special.
pub fn write_transaction<T, E, F>(conn: &mut DbConnection, work: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    let DbConnection::Sqlite(sqlite) = conn else {
        return conn.transaction(work);
    };
    AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE")?;
    match work(conn) {
        Ok(value) => {
            <DbConnection as Connection>::TransactionManager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(e) => {
            <DbConnection as Connection>::TransactionManager::rollback_transaction(conn)?;
            Err(e)
        }
    }
}

/// Applies every pending migration of the connection's backend.
pub fn run_migrations(conn: &mut DbConnection) -> anyhow::Result<()> {
    let applied = match conn {
        DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS),
        DbConnection::Pg(c) => c.run_pending_migrations(POSTGRES_MIGRATIONS),
    }
    .map_err(|e| anyhow::anyhow!("migrations failed: {e}"))?;
    for migration in applied {
        log::info!("applied migration {migration}");
    }
    Ok(())
}

/// Refuses a database stockbatch has not set up, or set up by an older version, without
/// writing to it: management commands must not create schemas in the wrong database.
pub fn check_schema(conn: &mut DbConnection) -> anyhow::Result<()> {
    use diesel::sql_types::BigInt;
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let tables = match conn {
        DbConnection::Sqlite(c) => diesel::sql_query(
            "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = '__diesel_schema_migrations'",
        )
        .get_result::<Count>(c),
        DbConnection::Pg(c) => diesel::sql_query(
            "SELECT COUNT(*) AS n FROM pg_tables WHERE tablename = '__diesel_schema_migrations' AND schemaname = current_schema()",
        )
        .get_result::<Count>(c),
    }?;
    if tables.n == 0 {
        anyhow::bail!("this database has no stockbatch tables");
    }
    let pending = match conn {
        DbConnection::Sqlite(c) => c.has_pending_migration(SQLITE_MIGRATIONS),
        DbConnection::Pg(c) => c.has_pending_migration(POSTGRES_MIGRATIONS),
    }
    .map_err(|e| anyhow::anyhow!("cannot read the migrations applied: {e}"))?;
    if pending {
        anyhow::bail!("this database was set up by an older stockbatch: start `stockbatch serve` on it once to migrate it");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_urls_gain_network_timeouts_but_keep_their_own() {
        let url = with_network_timeouts(
            "postgres://u@h/db?connect_timeout=9",
            Duration::from_millis(3000),
        );
        assert!(url.starts_with("postgres://u@h/db?connect_timeout=9&tcp_user_timeout=3000&"));
        assert!(!url.contains("connect_timeout=3"));
        assert!(url.contains("&keepalives=1&"));
        assert!(url.contains("&options=-c%20tcp_keepalives_idle%3D5%20"));
        let bare = with_network_timeouts("postgres://u@h/db", Duration::from_millis(500));
        assert!(bare.starts_with("postgres://u@h/db?connect_timeout=2&tcp_user_timeout=1000&"));
    }

    /// Applies SQLite's migrations up to and including the one whose version ends in `last`.
    fn migrate_sqlite_to(conn: &mut SqliteConnection, last: &str) {
        while !conn
            .applied_migrations()
            .unwrap()
            .iter()
            .any(|v| v.to_string().ends_with(last))
        {
            conn.run_next_migration(SQLITE_MIGRATIONS).unwrap();
        }
    }

    /// Batches queued while their records sat in the batches row keep them, and their
    /// state, once the records have a table of their own.
    #[test]
    fn queued_batches_keep_their_records_in_a_table_of_their_own() {
        use diesel::sql_types::Text;
        #[derive(QueryableByName)]
        struct Name {
            #[diesel(sql_type = Text)]
            name: String,
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
        migrate_sqlite_to(&mut conn, "000012");
        conn.batch_execute(
            "INSERT INTO batches (retailer_id, action, entity_type, status, record_count, \
             entities, created_on) VALUES \
             ('R', 'UPSERT', 'INVENTORY', 'PENDING', 1, '[{\"skuRef\":\"A\"}]', '2026-01-01 00:00:00'), \
             ('R', 'UPSERT', 'INVENTORY', 'COMPLETE', 2, '[{},{}]', '2026-01-01 00:00:00');",
        )
        .unwrap();
        conn.run_pending_migrations(SQLITE_MIGRATIONS).unwrap();
        let mut conn = DbConnection::Sqlite(conn);
        let records = |conn: &mut DbConnection, id| crate::db::batches::find_entities(conn, id);
        assert_eq!(
            records(&mut conn, 1).unwrap().as_deref(),
            Some("[{\"skuRef\":\"A\"}]")
        );
        assert_eq!(records(&mut conn, 2).unwrap().as_deref(), Some("[{},{}]"));
        assert_eq!(records(&mut conn, 3).unwrap(), None);
        let pending = crate::db::batches::find_batch_by_id(&mut conn, 1)
            .unwrap()
            .unwrap();
        assert_eq!(
            (pending.status.as_str(), pending.record_count),
            ("PENDING", 1)
        );
        let DbConnection::Sqlite(c) = &mut conn else {
            unreachable!()
        };
        let columns: Vec<Name> = diesel::sql_query("SELECT name FROM pragma_table_info('batches')")
            .load(c)
            .unwrap();
        assert!(
            columns.iter().all(|c| c.name != "entities"),
            "the batches row no longer holds records"
        );
    }

    /// Results stored a row each read back the same from the chunks they become, and the
    /// way back restores the rows.
    #[test]
    fn results_stored_a_row_each_read_back_from_their_chunks() {
        use crate::db::models::BatchResult;
        use crate::db::results::{failed_seqs, first_errors, page_results};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
        migrate_sqlite_to(&mut conn, "000013");
        let rows: Vec<String> = (0..2100)
            .map(|seq| match seq {
                7 => format!("(1, {seq}, NULL, 'X', 400, 'bad \"qty\"', NULL)"),
                2050 => format!("(1, {seq}, 9, 'S', 200, 'adjusted', '{{\"n\":[1,2]}}')"),
                _ => format!(
                    "(1, {seq}, {}, 'S{seq}:L', 200, 'Inventory created', NULL)",
                    seq + 1
                ),
            })
            .chain(["(2, 0, NULL, NULL, 500, 'failed', NULL)".to_owned()])
            .collect();
        conn.batch_execute(&format!(
            "INSERT INTO batch_results (batch_id, seq, entity_id, entity_ref, response_code, \
             message, data) VALUES {}",
            rows.join(", ")
        ))
        .unwrap();
        conn.run_pending_migrations(SQLITE_MIGRATIONS).unwrap();
        let mut db = DbConnection::Sqlite(conn);
        let got = page_results(&mut db, 1, 0, 5000).unwrap();
        assert_eq!(got.len(), 2100);
        let expected =
            |seq: i32, id: Option<i64>, r: Option<&str>, code, m: &str, data| BatchResult {
                seq,
                entity_id: id,
                entity_ref: r.map(str::to_owned),
                response_code: code,
                message: m.to_owned(),
                data,
            };
        assert_eq!(
            got[7],
            expected(7, None, Some("X"), 400, "bad \"qty\"", None)
        );
        assert_eq!(
            got[1999],
            expected(
                1999,
                Some(2000),
                Some("S1999:L"),
                200,
                "Inventory created",
                None
            )
        );
        assert_eq!(got[2050].data.as_deref(), Some("{\"n\":[1,2]}"));
        assert_eq!(failed_seqs(&mut db, 1).unwrap(), [7]);
        assert_eq!(
            first_errors(&mut db, 2, 5).unwrap(),
            [(500, "failed".to_owned())]
        );

        let DbConnection::Sqlite(mut conn) = db else {
            unreachable!()
        };
        while conn
            .applied_migrations()
            .unwrap()
            .iter()
            .any(|v| v.to_string().ends_with("000014"))
        {
            conn.revert_last_migration(SQLITE_MIGRATIONS).unwrap();
        }
        #[derive(QueryableByName, Debug, PartialEq)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Integer)]
            seq: i32,
            #[diesel(sql_type = diesel::sql_types::Text)]
            message: String,
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
            data: Option<String>,
        }
        let back: Vec<Row> = diesel::sql_query(
            "SELECT seq, message, data FROM batch_results WHERE batch_id = 1 \
             AND seq IN (0, 7, 2050) ORDER BY seq",
        )
        .load(&mut conn)
        .unwrap();
        assert_eq!(
            back,
            [
                Row {
                    seq: 0,
                    message: "Inventory created".into(),
                    data: None
                },
                Row {
                    seq: 7,
                    message: "bad \"qty\"".into(),
                    data: None
                },
                Row {
                    seq: 2050,
                    message: "adjusted".into(),
                    data: Some("{\"n\":[1,2]}".into())
                },
            ]
        );
    }

    /// Positions stored before their key led with the SKU, and before they were stored in
    /// its order, keep their ids and fields; no id is given twice, and key and id stay
    /// unique.
    #[test]
    fn positions_keep_their_ids_and_keys_through_each_rebuild() {
        use diesel::sql_types::{BigInt, Text};
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = BigInt)]
            id: i64,
            #[diesel(sql_type = Text)]
            sku_ref: String,
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
        migrate_sqlite_to(&mut conn, "000011");
        let insert = |sku: &str| {
            format!(
                "INSERT INTO inventory_positions (retailer_id, location_ref, sku_ref, qty, \
                 inventory_type, version, created_version, created_on, updated_on, extra) \
                 VALUES ('R', 'L', '{sku}', 5, 'DEFAULT', 1, 1, '2026-01-01 00:00:00', \
                 '2026-01-01 00:00:00', '{{\"uom\":\"EA\"}}')"
            )
        };
        conn.batch_execute(&format!(
            "{}; {}; DELETE FROM inventory_positions WHERE sku_ref = 'B';",
            insert("A"),
            insert("B")
        ))
        .unwrap();
        conn.run_pending_migrations(SQLITE_MIGRATIONS).unwrap();
        let mut db = DbConnection::Sqlite(conn);
        let ids = crate::db::positions::reserve_ids(&mut db, 2).unwrap();
        assert_eq!(ids, [3, 4], "id 2 is not given again");
        let DbConnection::Sqlite(mut conn) = db else {
            unreachable!()
        };
        let insert = |sku: &str, id: i64| {
            format!(
                "INSERT INTO inventory_positions (id, retailer_id, location_ref, sku_ref, qty, \
                 inventory_type, version, created_version, created_on, updated_on, extra) \
                 VALUES ({id}, 'R', 'L', '{sku}', 5, 'DEFAULT', 1, 1, '2026-01-01 00:00:00', \
                 '2026-01-01 00:00:00', '{{\"uom\":\"EA\"}}')"
            )
        };
        conn.batch_execute(&insert("C", 3)).unwrap();
        assert!(
            conn.batch_execute(&insert("C", 4)).is_err(),
            "the key is unique"
        );
        assert!(
            conn.batch_execute(&insert("D", 3)).is_err(),
            "the id is unique"
        );
        let rows: Vec<Row> = diesel::sql_query(
            "SELECT id, sku_ref FROM inventory_positions WHERE extra = '{\"uom\":\"EA\"}' \
             ORDER BY id",
        )
        .load(&mut conn)
        .unwrap();
        let rows: Vec<(i64, &str)> = rows.iter().map(|r| (r.id, r.sku_ref.as_str())).collect();
        assert_eq!(rows, [(1, "A"), (3, "C")]);
        #[derive(QueryableByName)]
        struct Name {
            #[diesel(sql_type = Text)]
            name: String,
        }
        let indexes: Vec<Name> = diesel::sql_query(
            "SELECT name FROM sqlite_master WHERE type = 'index' \
             AND tbl_name = 'inventory_positions' ORDER BY name",
        )
        .load(&mut conn)
        .unwrap();
        let names: Vec<&str> = indexes.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(
            names,
            ["inventory_positions_id"],
            "the key's is the table itself"
        );
        #[derive(QueryableByName)]
        struct KeyOrdered {
            #[diesel(sql_type = BigInt)]
            wr: i64,
        }
        let table: KeyOrdered = diesel::sql_query(
            "SELECT wr FROM pragma_table_list WHERE name = 'inventory_positions'",
        )
        .get_result(&mut conn)
        .unwrap();
        assert_eq!(table.wr, 1, "stored in key order, without a rowid");
    }
}
