//! Retailers, users, OAuth clients and the failed-login counters.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::models::{NewUser, OauthClient, Retailer, User};
use super::schema::{login_failures, oauth_clients, retailers, users};
use super::DbConnection;

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

/// Disables or re-enables a user. Returns whether the user exists.
pub fn set_user_disabled(
    conn: &mut DbConnection,
    username: &str,
    disabled: bool,
) -> QueryResult<bool> {
    let updated = diesel::update(users::table.filter(users::username.eq(username)))
        .set(users::disabled.eq(i32::from(disabled)))
        .execute(conn)?;
    Ok(updated == 1)
}

pub fn insert_client(
    conn: &mut DbConnection,
    client_id: &str,
    secret_hash: &str,
    now: NaiveDateTime,
) -> QueryResult<i64> {
    diesel::insert_into(oauth_clients::table)
        .values((
            oauth_clients::client_id.eq(client_id),
            oauth_clients::secret_hash.eq(secret_hash),
            oauth_clients::disabled.eq(0),
            oauth_clients::created_on.eq(now),
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

/// Disables or re-enables a client. Returns whether the client exists.
pub fn set_client_disabled(
    conn: &mut DbConnection,
    client_id: &str,
    disabled: bool,
) -> QueryResult<bool> {
    let updated =
        diesel::update(oauth_clients::table.filter(oauth_clients::client_id.eq(client_id)))
            .set(oauth_clients::disabled.eq(i32::from(disabled)))
            .execute(conn)?;
    Ok(updated == 1)
}

/// Consecutive failures and the lock, if any, for a username.
pub fn find_login_failures(
    conn: &mut DbConnection,
    username: &str,
) -> QueryResult<Option<(i32, Option<NaiveDateTime>)>> {
    login_failures::table
        .find(username)
        .select((login_failures::failures, login_failures::locked_until))
        .first(conn)
        .optional()
}

pub fn save_login_failures(
    conn: &mut DbConnection,
    username: &str,
    failures: i32,
    locked_until: Option<NaiveDateTime>,
) -> QueryResult<()> {
    let updated = diesel::update(login_failures::table.find(username))
        .set((
            login_failures::failures.eq(failures),
            login_failures::locked_until.eq(locked_until),
        ))
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(login_failures::table)
            .values((
                login_failures::username.eq(username),
                login_failures::failures.eq(failures),
                login_failures::locked_until.eq(locked_until),
            ))
            .execute(conn)?;
    }
    Ok(())
}

pub fn clear_login_failures(conn: &mut DbConnection, username: &str) -> QueryResult<()> {
    diesel::delete(login_failures::table.find(username))
        .execute(conn)
        .map(|_| ())
}
