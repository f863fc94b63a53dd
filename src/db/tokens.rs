//! Access and refresh tokens, looked up by the SHA-256 hash of their value.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::models::{NewToken, TokenOwner};
use super::schema::{oauth_clients, tokens, users};
use super::DbConnection;

pub const ACCESS: &str = "access";
pub const REFRESH: &str = "refresh";

pub fn insert_tokens(conn: &mut DbConnection, new: &[NewToken]) -> QueryResult<()> {
    for token in new {
        diesel::insert_into(tokens::table)
            .values(token)
            .execute(conn)?;
    }
    Ok(())
}

/// Who an unexpired access token acts for: its enabled user, or for a client's own token
/// the client; either way through an enabled client.
pub fn find_access_token_owner(
    conn: &mut DbConnection,
    hash: &str,
    now: NaiveDateTime,
) -> QueryResult<Option<TokenOwner>> {
    tokens::table
        .left_join(users::table)
        .inner_join(oauth_clients::table)
        .filter(tokens::token_hash.eq(hash))
        .filter(tokens::kind.eq(ACCESS))
        .filter(tokens::expires_at.gt(now))
        .filter(tokens::user_id.is_null().or(users::disabled.eq(0)))
        .filter(oauth_clients::disabled.eq(0))
        .select((
            users::id.nullable(),
            users::username.nullable(),
            users::retailer_id.nullable(),
            users::permissions.nullable(),
            oauth_clients::client_id,
            oauth_clients::retailer_id,
            oauth_clients::permissions,
        ))
        .first(conn)
        .optional()
}

/// Marks an unused, unexpired refresh token of `client` as used and returns its user.
/// A refresh token works once: a second use finds nothing.
pub fn consume_refresh_token(
    conn: &mut DbConnection,
    hash: &str,
    client: i64,
    now: NaiveDateTime,
) -> QueryResult<Option<i64>> {
    diesel::update(
        tokens::table
            .filter(tokens::token_hash.eq(hash))
            .filter(tokens::kind.eq(REFRESH))
            .filter(tokens::client_id.eq(client))
            .filter(tokens::used_at.is_null())
            .filter(tokens::expires_at.gt(now)),
    )
    .set(tokens::used_at.eq(Some(now)))
    .returning(tokens::user_id)
    .get_result::<Option<i64>>(conn)
    .optional()
    .map(Option::flatten)
}

/// Deletes tokens that expired before `before`.
pub fn delete_expired_tokens(conn: &mut DbConnection, before: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(tokens::table.filter(tokens::expires_at.lt(before))).execute(conn)
}
