//! The background executor: claims queued batches, applies them, records their results.

mod apply;
mod cancel;
mod completions;
mod listener;
mod retention;
mod wakeup;
mod worker;

pub use apply::{
    apply_batch, cancelled_row, fail_batch, ApplyOutcome, BatchSummary, CODE_CANCELLED,
    VERSION_STRIDE,
};
pub use cancel::{cancel_batch, Cancelled};
pub use completions::Completions;
pub use retention::{prune, PruneReport, RetentionConfig};
pub use wakeup::Wakeup;
pub use worker::{Executor, ExecutorConfig, ExecutorHandle, Step, HEARTBEAT_INTERVAL};
