//! stockbatch: a self-hosted service that speaks Fluent Commerce's v4.1 Job & Batch API
//! for inventory feeds, on embedded SQLite or PostgreSQL.

pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod executor;
pub mod loader;
pub mod metrics;
pub mod notify;
pub mod startup;

pub use config::{Config, MetricsConfig, Role};
pub use startup::Application;
