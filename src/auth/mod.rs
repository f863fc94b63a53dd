//! Authentication and authorisation: OAuth grants, tokens, API keys, permissions, accounts.
//! No HTTP here: `api/oauth.rs` and `api/principal.rs` are the edge.

pub mod accounts;
pub mod api_keys;
pub mod grants;
pub mod hasher;
pub mod permissions;
pub mod principal;
pub mod secrets;

pub use grants::{GrantError, TokenResponse, TokenSettings};
pub use permissions::Permission;
pub use principal::{Principal, DEFAULT_LOCATION};
