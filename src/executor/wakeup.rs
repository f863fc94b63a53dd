//! The in-process signal that wakes an idle executor the moment a batch is accepted.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

#[derive(Clone, Default)]
pub struct Wakeup(Arc<(Mutex<bool>, Condvar)>);

impl Wakeup {
    /// Wakes the waiting executor, or the next one to wait.
    pub fn notify(&self) {
        let (pending, condvar) = &*self.0;
        *pending.lock().unwrap_or_else(|e| e.into_inner()) = true;
        condvar.notify_all();
    }

    /// Waits until notified or until `timeout` passes, then clears the signal.
    pub fn wait(&self, timeout: Duration) {
        let (pending, condvar) = &*self.0;
        let guard = pending.lock().unwrap_or_else(|e| e.into_inner());
        let (mut guard, _) = condvar
            .wait_timeout_while(guard, timeout, |pending| !*pending)
            .unwrap_or_else(|e| e.into_inner());
        *guard = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_notification_ends_the_wait_early() {
        let wakeup = Wakeup::default();
        let other = wakeup.clone();
        let started = Instant::now();
        let t = std::thread::spawn(move || other.wait(Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(20));
        wakeup.notify();
        t.join().unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_notification_before_the_wait_is_not_lost() {
        let wakeup = Wakeup::default();
        wakeup.notify();
        let started = Instant::now();
        wakeup.wait(Duration::from_secs(10));
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
