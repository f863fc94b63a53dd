//! StateSet-style batch operations (`/api/v1/inventory/...`): adjust, transfer, cycle count,
//! update and import, on the same stock and queue as the Fluent API.

pub mod batches;
pub mod items;
