//! Fair turns at SQLite's single write lock for the writers of one process.
//!
//! An executor transaction holds SQLite's write lock for tens of milliseconds and, left
//! alone, takes it again the instant it commits; SQLite's busy handler sleeps in coarse
//! steps and loses those races, so API writes (a POSTed batch) could wait for seconds.
//! The gate queues this process's writers on one mutex and lets waiting API writes go
//! before the executor's next transaction. PostgreSQL has row locks and needs no gate.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Backend;

/// How long the executor defers to API writers before it takes its turn anyway.
const MAX_DEFERRAL: Duration = Duration::from_millis(100);

#[derive(Clone, Default)]
pub struct WriteGate(Option<Arc<Gate>>);

#[derive(Default)]
struct Gate {
    turn: Mutex<()>,
    api_waiting: AtomicUsize,
}

impl WriteGate {
    pub fn for_backend(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => WriteGate(Some(Arc::default())),
            Backend::Postgres => WriteGate(None),
        }
    }

    /// Runs an API write in its turn.
    pub fn api<T>(&self, write: impl FnOnce() -> T) -> T {
        let Some(gate) = &self.0 else { return write() };
        gate.api_waiting.fetch_add(1, Ordering::SeqCst);
        let turn = gate.turn.lock().unwrap_or_else(|e| e.into_inner());
        gate.api_waiting.fetch_sub(1, Ordering::SeqCst);
        let result = write();
        drop(turn);
        result
    }

    /// Runs a short executor write (a claim, a release) in its turn, without deferring.
    pub fn executor_brief<T>(&self, write: impl FnOnce() -> T) -> T {
        let Some(gate) = &self.0 else { return write() };
        let turn = gate.turn.lock().unwrap_or_else(|e| e.into_inner());
        let result = write();
        drop(turn);
        result
    }

    /// Whether writers share one lock here (SQLite), so long writes should come in steps.
    pub fn is_gated(&self) -> bool {
        self.0.is_some()
    }

    /// Whether an API write is waiting for its turn: a long executor write should commit
    /// what it has and let it go first.
    pub fn api_write_waiting(&self) -> bool {
        self.0
            .as_ref()
            .is_some_and(|gate| gate.api_waiting.load(Ordering::SeqCst) > 0)
    }

    /// Makes the gate report an API write waiting from now on (for tests).
    #[cfg(test)]
    pub(crate) fn pretend_api_write_waiting(&self) {
        if let Some(gate) = &self.0 {
            gate.api_waiting.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Runs a long executor write (a batch's transaction) after the API writes waiting.
    pub fn executor<T>(&self, write: impl FnOnce() -> T) -> T {
        let Some(gate) = &self.0 else { return write() };
        let deadline = Instant::now() + MAX_DEFERRAL;
        while gate.api_waiting.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(200));
        }
        let turn = gate.turn.lock().unwrap_or_else(|e| e.into_inner());
        let result = write();
        drop(turn);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn a_waiting_api_write_goes_before_the_next_executor_write() {
        let gate = WriteGate::for_backend(Backend::Sqlite);
        let (order_tx, order_rx) = mpsc::channel();
        let (api_gate, api_order) = (gate.clone(), order_tx.clone());
        let api = gate.executor(|| {
            // An API write arrives while the executor holds the turn.
            let api = std::thread::spawn(move || api_gate.api(|| api_order.send("api").unwrap()));
            while gate.0.as_ref().unwrap().api_waiting.load(Ordering::SeqCst) == 0 {
                std::thread::yield_now();
            }
            order_tx.send("executor 1").unwrap();
            api
        });
        // The executor's next write waits for the API write queued behind the first.
        gate.executor(|| order_tx.send("executor 2").unwrap());
        api.join().unwrap();
        let order: Vec<_> = order_rx.try_iter().collect();
        assert_eq!(order, vec!["executor 1", "api", "executor 2"]);
    }

    #[test]
    fn postgres_is_not_gated() {
        let gate = WriteGate::for_backend(Backend::Postgres);
        assert_eq!(gate.api(|| 1) + gate.executor(|| 2), 3);
    }
}
