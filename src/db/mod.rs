//! Persistence: connections, schema and the queries, as plain functions over `&mut DbConnection`.

pub mod accounts;
pub mod activity;
pub mod api_keys;
pub mod batches;
mod checkpointer;
mod connection;
pub mod heartbeats;
pub mod idempotency;
pub mod items;
pub mod jobs;
pub mod models;
pub mod movements;
pub mod notifications;
mod position_reader;
pub mod positions;
pub mod results;
pub mod schema;
mod sql;
pub mod tokens;
mod write_gate;

pub use connection::{
    build_pool, check_schema, configure_sqlite, run_migrations, with_network_timeouts,
    write_transaction, Backend, ConnectionManager, DbConnection, DbPool, PooledConn,
};
pub use sql::ladder_chunks;
pub use write_gate::WriteGate;
