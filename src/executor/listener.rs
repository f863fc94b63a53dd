//! PostgreSQL `LISTEN`: wakes this node's executor when a batch is accepted on any node.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};

use super::wakeup::Wakeup;
use crate::db::batches::BATCH_CHANNEL;
use crate::db::with_network_timeouts;

/// How long the listening connection waits for PostgreSQL before it reconnects.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the listening connection is read. Reading is local (no round trip), so a
/// short interval costs nothing and keeps the wake-up latency low.
const READ_INTERVAL: Duration = Duration::from_millis(10);
/// How often the connection is pinged, to notice a server that went away silently.
const PING_INTERVAL: Duration = Duration::from_secs(10);

pub fn spawn_listener(url: String, wakeup: Wakeup, stopping: Arc<AtomicBool>) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("listener".into())
        .spawn(move || {
            let mut backoff = Duration::from_millis(100);
            while !stopping.load(Ordering::SeqCst) {
                match listen(&url, &wakeup, &stopping) {
                    Ok(()) => return,
                    Err(e) => {
                        log::warn!(
                            "LISTEN connection lost: {e}; reconnecting in {} ms",
                            backoff.as_millis()
                        );
                        // The poll fallback covers the gap; wake once in case a notice was missed.
                        wakeup.notify();
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        })
        .expect("can spawn the listener thread")
}

fn listen(url: &str, wakeup: &Wakeup, stopping: &AtomicBool) -> anyhow::Result<()> {
    let mut conn = PgConnection::establish(&with_network_timeouts(url, CONNECT_TIMEOUT))?;
    conn.batch_execute(&format!("LISTEN {BATCH_CHANNEL}"))?;
    log::info!("listening for new batches on channel {BATCH_CHANNEL}");
    let mut last_ping = Instant::now();
    while !stopping.load(Ordering::SeqCst) {
        let mut woken = false;
        for notification in conn.notifications_iter() {
            notification?;
            woken = true;
        }
        if woken {
            wakeup.notify();
        }
        if last_ping.elapsed() >= PING_INTERVAL {
            conn.batch_execute("SELECT 1")?;
            last_ping = Instant::now();
        }
        std::thread::sleep(READ_INTERVAL);
    }
    Ok(())
}
