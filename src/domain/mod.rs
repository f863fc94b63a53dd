//! The rules of jobs, batches and inventory records: validation and state, no HTTP, no SQL.

pub mod activity;
pub mod batch;
pub mod inventory;
pub mod job;
pub mod json;
pub mod keys;
pub mod operations;
pub mod paging;
pub mod scalar;
pub mod stateset;
pub mod webhook;
