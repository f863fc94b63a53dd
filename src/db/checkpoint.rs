//! SQLite WAL checkpoints on a background thread.
//!
//! Left to SQLite, the writer whose commit pushes the WAL past its threshold copies the
//! WAL into the database file before its commit returns: an executor transaction or a
//! POST now and then takes a checkpoint's time longer, while API writes wait behind it.
//! Here a thread checkpoints passively (never blocking readers or writers) a few times a
//! second, so the WAL rarely reaches the threshold that would make a writer do it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_query;
use diesel::sql_types::Integer;

use super::{DbConnection, DbPool};

/// How often the WAL is copied into the database file.
const INTERVAL: Duration = Duration::from_millis(100);

/// The running checkpoint thread; dropping this stops it.
pub struct Checkpointer {
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub fn spawn(pool: DbPool) -> Checkpointer {
        let stopping = Arc::new(AtomicBool::new(false));
        let stop = stopping.clone();
        let thread = std::thread::Builder::new()
            .name("wal-checkpoint".into())
            .spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(INTERVAL);
                    checkpoint(&pool);
                }
            })
            .expect("can spawn the checkpoint thread");
        Checkpointer {
            stopping,
            thread: Some(thread),
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                log::error!("the WAL checkpoint thread panicked");
            }
        }
    }
}

#[derive(QueryableByName, Debug)]
struct CheckpointRow {
    #[diesel(sql_type = Integer)]
    log: i32,
    #[diesel(sql_type = Integer)]
    checkpointed: i32,
}

/// Copies what it can of the WAL into the database file. Returns the WAL's frames and
/// how many of them are now in the database file.
fn checkpoint(pool: &DbPool) -> Option<(i32, i32)> {
    let mut conn = pool.get().ok()?;
    let DbConnection::Sqlite(c) = &mut *conn else {
        return None;
    };
    match sql_query("PRAGMA wal_checkpoint(PASSIVE)").get_result::<CheckpointRow>(c) {
        Ok(row) => Some((row.log, row.checkpointed)),
        Err(e) => {
            log::warn!("WAL checkpoint failed: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{build_pool, run_migrations};

    #[test]
    fn a_checkpoint_copies_the_whole_wal_and_dropping_the_thread_stops_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stockbatch.db");
        let pool = build_pool(path.to_str().unwrap(), 2, Duration::from_secs(5)).unwrap();
        run_migrations(&mut pool.get().unwrap()).unwrap();
        let (log, checkpointed) = checkpoint(&pool).unwrap();
        assert!(log > 0, "migrations wrote to the WAL");
        assert_eq!(log, checkpointed);

        let thread = Checkpointer::spawn(pool.clone());
        std::thread::sleep(INTERVAL * 2);
        let started = std::time::Instant::now();
        drop(thread);
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
