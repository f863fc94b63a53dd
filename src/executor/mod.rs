//! The background executor: claims queued batches, applies them, records their results.

mod apply;
mod completions;
mod listener;
mod retention;
mod wakeup;
mod worker;

pub use apply::{apply_batch, fail_batch, ApplyOutcome, BatchSummary, VERSION_STRIDE};
pub use completions::Completions;
pub use retention::{prune, PruneReport, RetentionConfig};
pub use wakeup::Wakeup;
pub use worker::{Executor, ExecutorConfig, ExecutorHandle, Step};
