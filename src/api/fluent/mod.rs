//! Fluent Commerce's v4.1 Job & Batch API: jobs, UPSERT batches, positions, and the ledger;
//! and what the dashboard reads beside them (the list of jobs, the queue).

pub mod batches;
pub mod control;
pub mod export;
pub mod inventory;
pub mod jobs;
pub mod movements;
pub mod queue;
