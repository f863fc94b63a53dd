//! Retailers, users, OAuth clients and the failed-login counters.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::models::{NewUser, OauthClient, Retailer, User};
use super::schema::{login_failures, oauth_clients, retailers, tokens, users};
use super::sql::{self, delete_before};
use super::{write_transaction, DbConnection};

/// Registers a retailer unless it exists. Returns whether it was new.
pub fn ensure_retailer(
    conn: &mut DbConnection,
    id: &str,
    name: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let exists = retailers::table.find(id).count().get_result::<i64>(conn)? > 0;
    if !exists {
        diesel::insert_into(retailers::table)
            .values((
                retailers::id.eq(id),
                retailers::name.eq(name),
                retailers::created_on.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(!exists)
}

pub fn find_retailer(conn: &mut DbConnection, id: &str) -> QueryResult<Option<Retailer>> {
    retailers::table
        .find(id)
        .select(Retailer::as_select())
        .first(conn)
        .optional()
}

/// Keeps a retailer's COMPLETE batches `days` days (`None`: the server's default).
/// Returns whether the retailer exists.
pub fn set_retailer_retention(
    conn: &mut DbConnection,
    id: &str,
    days: Option<i32>,
) -> QueryResult<bool> {
    let updated = diesel::update(retailers::table.find(id))
        .set(retailers::retention_days.eq(days))
        .execute(conn)?;
    Ok(updated == 1)
}

/// Renames a retailer. Returns whether it exists.
pub fn rename_retailer(conn: &mut DbConnection, id: &str, name: &str) -> QueryResult<bool> {
    let updated = diesel::update(retailers::table.find(id))
        .set(retailers::name.eq(name))
        .execute(conn)?;
    Ok(updated == 1)
}

/// Retailers that keep their batches for a time of their own, with it (days).
pub fn list_retention_overrides(conn: &mut DbConnection) -> QueryResult<Vec<(String, i32)>> {
    retailers::table
        .filter(retailers::retention_days.is_not_null())
        .select((retailers::id, retailers::retention_days.assume_not_null()))
        .load(conn)
}

pub fn list_retailers(conn: &mut DbConnection) -> QueryResult<Vec<Retailer>> {
    retailers::table
        .order(retailers::id)
        .select(Retailer::as_select())
        .load(conn)
}

pub fn insert_user(conn: &mut DbConnection, user: &NewUser) -> QueryResult<i64> {
    diesel::insert_into(users::table)
        .values(user)
        .returning(users::id)
        .get_result(conn)
}

pub fn find_user(conn: &mut DbConnection, username: &str) -> QueryResult<Option<User>> {
    users::table
        .filter(users::username.eq(username))
        .select(User::as_select())
        .first(conn)
        .optional()
}

pub fn find_user_by_id(conn: &mut DbConnection, id: i64) -> QueryResult<Option<User>> {
    users::table
        .find(id)
        .select(User::as_select())
        .first(conn)
        .optional()
}

pub fn list_users(conn: &mut DbConnection) -> QueryResult<Vec<User>> {
    users::table
        .order(users::username)
        .select(User::as_select())
        .load(conn)
}

pub fn count_users(conn: &mut DbConnection) -> QueryResult<i64> {
    users::table.count().get_result(conn)
}

/// Disables or re-enables a user. Disabling deletes the user's tokens, so re-enabling
/// never brings them back. Returns whether the user exists.
pub fn set_user_disabled(
    conn: &mut DbConnection,
    username: &str,
    disabled: bool,
) -> QueryResult<bool> {
    write_transaction(conn, |conn| {
        let id: Option<i64> = diesel::update(users::table.filter(users::username.eq(username)))
            .set(users::disabled.eq(i32::from(disabled)))
            .returning(users::id)
            .get_result(conn)
            .optional()?;
        if let (Some(id), true) = (id, disabled) {
            diesel::delete(tokens::table.filter(tokens::user_id.eq(id))).execute(conn)?;
        }
        Ok(id.is_some())
    })
}

/// Replaces a user's password hash and deletes its tokens, so every session with the old
/// password ends. Returns whether the user exists.
pub fn set_password_hash(conn: &mut DbConnection, username: &str, hash: &str) -> QueryResult<bool> {
    write_transaction(conn, |conn| {
        let id: Option<i64> = diesel::update(users::table.filter(users::username.eq(username)))
            .set(users::password_hash.eq(hash))
            .returning(users::id)
            .get_result(conn)
            .optional()?;
        if let Some(id) = id {
            diesel::delete(tokens::table.filter(tokens::user_id.eq(id))).execute(conn)?;
            diesel::delete(login_failures::table.filter(login_failures::username.eq(username)))
                .execute(conn)?;
        }
        Ok(id.is_some())
    })
}

/// Replaces a client's secret hash and deletes the tokens it got for itself
/// (client_credentials); its users' tokens stay. Returns whether the client exists.
pub fn set_client_secret_hash(
    conn: &mut DbConnection,
    client_id: &str,
    hash: &str,
) -> QueryResult<bool> {
    write_transaction(conn, |conn| {
        let id: Option<i64> =
            diesel::update(oauth_clients::table.filter(oauth_clients::client_id.eq(client_id)))
                .set(oauth_clients::secret_hash.eq(hash))
                .returning(oauth_clients::id)
                .get_result(conn)
                .optional()?;
        if let Some(id) = id {
            diesel::delete(
                tokens::table
                    .filter(tokens::client_id.eq(id))
                    .filter(tokens::user_id.is_null()),
            )
            .execute(conn)?;
        }
        Ok(id.is_some())
    })
}

pub fn insert_client(
    conn: &mut DbConnection,
    client_id: &str,
    secret_hash: &str,
    retailer_id: Option<&str>,
    permissions: Option<&str>,
    now: NaiveDateTime,
) -> QueryResult<i64> {
    diesel::insert_into(oauth_clients::table)
        .values((
            oauth_clients::client_id.eq(client_id),
            oauth_clients::secret_hash.eq(secret_hash),
            oauth_clients::disabled.eq(0),
            oauth_clients::created_on.eq(now),
            oauth_clients::retailer_id.eq(retailer_id),
            oauth_clients::permissions.eq(permissions),
        ))
        .returning(oauth_clients::id)
        .get_result(conn)
}

pub fn find_client(conn: &mut DbConnection, client_id: &str) -> QueryResult<Option<OauthClient>> {
    oauth_clients::table
        .filter(oauth_clients::client_id.eq(client_id))
        .select(OauthClient::as_select())
        .first(conn)
        .optional()
}

pub fn list_clients(conn: &mut DbConnection) -> QueryResult<Vec<OauthClient>> {
    oauth_clients::table
        .order(oauth_clients::client_id)
        .select(OauthClient::as_select())
        .load(conn)
}

pub fn count_clients(conn: &mut DbConnection) -> QueryResult<i64> {
    oauth_clients::table.count().get_result(conn)
}

/// Disables or re-enables a client. Disabling deletes the tokens issued through it, so
/// re-enabling never brings them back. Returns whether the client exists.
pub fn set_client_disabled(
    conn: &mut DbConnection,
    client_id: &str,
    disabled: bool,
) -> QueryResult<bool> {
    write_transaction(conn, |conn| {
        let id: Option<i64> =
            diesel::update(oauth_clients::table.filter(oauth_clients::client_id.eq(client_id)))
                .set(oauth_clients::disabled.eq(i32::from(disabled)))
                .returning(oauth_clients::id)
                .get_result(conn)
                .optional()?;
        if let (Some(id), true) = (id, disabled) {
            diesel::delete(tokens::table.filter(tokens::client_id.eq(id))).execute(conn)?;
        }
        Ok(id.is_some())
    })
}

/// Counts a login attempt for `username` before its password is checked, unless the
/// username is locked: `Ok(n)` is the attempt's number in the run of failures (including
/// attempts still being checked), `Err(until)` the lock that refused it. The attempt that
/// reaches `threshold` holds a provisional lock until `provisional_lock` while it is
/// checked, so concurrent guesses wait for its outcome. One statement, so concurrent
/// attempts cannot both read the same count.
pub fn reserve_login_attempt(
    conn: &mut DbConnection,
    username: &str,
    threshold: i32,
    now: NaiveDateTime,
    provisional_lock: NaiveDateTime,
) -> QueryResult<Result<i32, Option<NaiveDateTime>>> {
    let reserved = sql::query_login_attempt(conn, username, threshold, now, provisional_lock)?;
    match reserved {
        Some(attempt) => Ok(Ok(attempt)),
        None => Ok(Err(login_failures::table
            .find(username)
            .select(login_failures::locked_until)
            .first(conn)
            .optional()?
            .flatten())),
    }
}

/// Takes back an attempt whose password was never checked (its client was refused).
pub fn release_login_attempt(
    conn: &mut DbConnection,
    username: &str,
    threshold: i32,
) -> QueryResult<()> {
    sql::release_login_attempt(conn, username, threshold)
}

/// Locks `username` until `until` after a failed check.
pub fn lock_login(
    conn: &mut DbConnection,
    username: &str,
    until: NaiveDateTime,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(login_failures::table.find(username))
        .set((
            login_failures::locked_until.eq(Some(until)),
            login_failures::updated_on.eq(now),
        ))
        .execute(conn)
        .map(|_| ())
}

pub fn clear_login_failures(conn: &mut DbConnection, username: &str) -> QueryResult<()> {
    diesel::delete(login_failures::table.find(username))
        .execute(conn)
        .map(|_| ())
}

/// Deletes up to `limit` failure counters untouched since `cutoff`.
pub fn delete_login_failures_before(
    conn: &mut DbConnection,
    cutoff: NaiveDateTime,
    limit: i64,
) -> QueryResult<usize> {
    delete_before(
        conn,
        "DELETE FROM login_failures WHERE username IN (SELECT username FROM login_failures \
         WHERE updated_on < $1 ORDER BY updated_on LIMIT $2)",
        cutoff,
        limit,
    )
}
