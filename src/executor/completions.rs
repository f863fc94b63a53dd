//! Tells API requests waiting for a batch (StateSet POSTs) that this process's executor
//! completed one; requests whose batch runs on another node poll instead.

use std::sync::Arc;

use tokio::sync::futures::Notified;
use tokio::sync::Notify;

#[derive(Clone, Default)]
pub struct Completions(Arc<Notify>);

impl Completions {
    /// Wakes every request waiting now.
    pub fn notify(&self) {
        self.0.notify_waiters();
    }

    /// A future that ends at the next [`Completions::notify`]; `enable` it before looking
    /// at the batch, so a completion in between is not missed.
    pub fn notified(&self) -> Notified<'_> {
        self.0.notified()
    }
}
