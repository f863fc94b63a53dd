//! API keys, looked up by the SHA-256 hash of their value.

use diesel::prelude::*;

use super::models::{ApiKey, NewApiKey};
use super::schema::api_keys;
use super::DbConnection;

pub fn insert_api_key(conn: &mut DbConnection, key: &NewApiKey) -> QueryResult<i64> {
    diesel::insert_into(api_keys::table)
        .values(key)
        .returning(api_keys::id)
        .get_result(conn)
}

/// The key whose value hashes to `hash`, unless it is revoked.
pub fn find_api_key_by_hash(conn: &mut DbConnection, hash: &str) -> QueryResult<Option<ApiKey>> {
    api_keys::table
        .filter(api_keys::key_hash.eq(hash))
        .filter(api_keys::revoked.eq(0))
        .select(ApiKey::as_select())
        .first(conn)
        .optional()
}

pub fn list_api_keys(conn: &mut DbConnection) -> QueryResult<Vec<ApiKey>> {
    api_keys::table
        .order(api_keys::name)
        .select(ApiKey::as_select())
        .load(conn)
}

/// Revokes the key named `name`; every lookup after this finds nothing. Returns whether
/// the key exists (revoking a revoked key again is not an error).
pub fn revoke_api_key(conn: &mut DbConnection, name: &str) -> QueryResult<bool> {
    diesel::update(api_keys::table.filter(api_keys::name.eq(name)))
        .set(api_keys::revoked.eq(1))
        .execute(conn)
        .map(|rows| rows > 0)
}
