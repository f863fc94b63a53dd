//! The feed loader (`stockbatch load`): reads a CSV, NDJSON or JSON file as a stream,
//! posts its records in batches through the service's own Fluent API (an HTTP client like
//! any other, not a way around it), waits for every batch and writes a failure report.
//! Idempotency-Keys derived from the file and each chunk make a re-run resume a crashed
//! load without posting anything twice.

mod client;
mod identity;
mod mapping;
mod progress;
mod report;
mod run;
mod source;

pub use client::{Credentials, Retries};
pub use mapping::{parse_maps, Field, ALIASES};
pub use report::{default_path as default_report_path, COLUMNS as REPORT_COLUMNS};
pub use run::{load, LoadOptions, Summary, MAX_BATCH_RECORDS};
pub use source::Format;
