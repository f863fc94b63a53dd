//! SQLite's WAL checkpoints on a thread of their own. By default the connection whose
//! commit grows the WAL past a threshold copies it into the database file inside that
//! commit, which on the executor means while it holds the write lock. A pool's connections
//! turn that off, and this thread checkpoints beside the writers instead: a PASSIVE
//! checkpoint waits for no reader or writer, so writes go on while it copies.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;

/// How often the WAL is copied into the database file. A busy executor adds a few MB to
/// the WAL per interval, about what SQLite's own threshold (1000 pages) would let it grow.
const INTERVAL: Duration = Duration::from_millis(100);

/// Checkpoints the WAL of one SQLite file until dropped.
#[derive(Debug)]
pub struct Checkpointer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub fn start(path: &str) -> std::io::Result<Checkpointer> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let (flag, path) = (stop.clone(), path.to_owned());
        let thread = std::thread::Builder::new()
            .name("wal-checkpoint".into())
            .spawn(move || run(&path, &flag))?;
        Ok(Checkpointer {
            stop,
            thread: Some(thread),
        })
    }
}

fn run(path: &str, stop: &(Mutex<bool>, Condvar)) {
    let mut conn = None;
    let (flag, wake) = stop;
    let mut stopped = flag.lock().unwrap_or_else(|e| e.into_inner());
    while !*stopped {
        stopped = wake
            .wait_timeout(stopped, INTERVAL)
            .unwrap_or_else(|e| e.into_inner())
            .0;
        if *stopped {
            break;
        }
        if conn.is_none() {
            conn = SqliteConnection::establish(path).ok();
        }
        if let Some(c) = conn.as_mut() {
            // Busy only while another checkpoint runs; the next interval catches up.
            if let Err(e) = c.batch_execute("PRAGMA wal_checkpoint(PASSIVE)") {
                log::debug!("WAL checkpoint of {path} deferred: {e}");
            }
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let (flag, wake) = &*self.stop;
        *flag.lock().unwrap_or_else(|e| e.into_inner()) = true;
        wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::sql_types::BigInt;

    #[derive(QueryableByName)]
    struct Frames {
        #[diesel(sql_type = BigInt)]
        log: i64,
        #[diesel(sql_type = BigInt)]
        checkpointed: i64,
    }

    fn frames(conn: &mut SqliteConnection) -> Frames {
        // A PASSIVE checkpoint of nothing new only reports the WAL's state.
        diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)")
            .get_result(conn)
            .unwrap()
    }

    #[test]
    fn the_thread_copies_what_writers_leave_in_the_wal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal.db");
        let path = path.to_str().unwrap();
        let mut writer = SqliteConnection::establish(path).unwrap();
        writer
            .batch_execute(
                "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0; \
                 CREATE TABLE t (x BLOB); \
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) \
                 INSERT INTO t SELECT randomblob(1000) FROM n;",
            )
            .unwrap();
        let mut reader = SqliteConnection::establish(path).unwrap();
        let size = |conn: &mut SqliteConnection| {
            #[derive(QueryableByName)]
            struct Pages {
                #[diesel(sql_type = BigInt)]
                page_count: i64,
            }
            diesel::sql_query("PRAGMA page_count")
                .get_result::<Pages>(conn)
                .unwrap()
                .page_count
        };
        let file_pages = || std::fs::metadata(path).unwrap().len() / 4096;
        assert!(size(&mut reader) > 400, "the table holds its rows");
        assert!(
            file_pages() < 10,
            "without a checkpoint the rows are only in the WAL"
        );
        let checkpointer = Checkpointer::start(path).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while file_pages() < 400 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(checkpointer);
        assert!(
            file_pages() >= 400,
            "the checkpointer copied the WAL into the file"
        );
        let f = frames(&mut reader);
        assert!(
            f.log > 0 && f.checkpointed == f.log,
            "every frame was checkpointed"
        );
    }
}
