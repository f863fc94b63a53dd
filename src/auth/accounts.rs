//! Managing retailers, users and OAuth clients (the `stockbatch user|client|retailer`
//! commands), and the administrator and client created on first start.

use anyhow::{bail, Context};
use chrono::Utc;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use super::permissions::{format_list, Permission};
use super::secrets::{hash_secret, new_secret};
use crate::db::models::NewUser;
use crate::db::{accounts, write_transaction, DbConnection};

pub const MIN_PASSWORD_CHARS: usize = 12;
const MAX_NAME_CHARS: usize = 255;

/// Names (usernames, client ids, retailer and key names) are 1 to 255 characters.
pub(super) fn check_name(kind: &str, name: &str) -> anyhow::Result<()> {
    if name.trim().is_empty() || name.chars().count() > MAX_NAME_CHARS {
        bail!("{kind} must be 1 to {MAX_NAME_CHARS} characters");
    }
    Ok(())
}

/// Creates a user of `retailer_id` (registering the retailer if new), or an account
/// administrator over all retailers when `retailer_id` is `None`.
pub fn create_user(
    conn: &mut DbConnection,
    username: &str,
    password: &str,
    retailer_id: Option<&str>,
    permissions: &[Permission],
) -> anyhow::Result<i64> {
    check_name("the username", username)?;
    if password.chars().count() < MIN_PASSWORD_CHARS {
        bail!("the password must be at least {MIN_PASSWORD_CHARS} characters");
    }
    let now = Utc::now().naive_utc();
    let hash = hash_secret(password);
    let permissions = format_list(permissions);
    write_transaction(conn, |conn| {
        if let Some(retailer) = retailer_id {
            check_name("the retailer id", retailer)?;
            accounts::ensure_retailer(conn, retailer, retailer, now)?;
        }
        let user = NewUser {
            username,
            password_hash: &hash,
            retailer_id,
            permissions: &permissions,
            disabled: 0,
            created_on: now,
        };
        accounts::insert_user(conn, &user).map_err(|e| exists_or(e, "user", username))
    })
}

/// Sets a user's password; its tokens stop working at once.
pub fn set_password(conn: &mut DbConnection, username: &str, password: &str) -> anyhow::Result<()> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        bail!("the password must be at least {MIN_PASSWORD_CHARS} characters");
    }
    if !accounts::set_password_hash(conn, username, &hash_secret(password))? {
        bail!("no user {username}");
    }
    Ok(())
}

/// Gives a client `secret`, or a generated one, and returns it (shown this once); the old
/// secret and the client's own tokens stop working at once.
pub fn rotate_client_secret(
    conn: &mut DbConnection,
    client_id: &str,
    secret: Option<&str>,
) -> anyhow::Result<String> {
    let secret = secret.map_or_else(new_secret, str::to_owned);
    if secret.chars().count() < MIN_PASSWORD_CHARS {
        bail!("the client secret must be at least {MIN_PASSWORD_CHARS} characters");
    }
    if !accounts::set_client_secret_hash(conn, client_id, &hash_secret(&secret))? {
        bail!("no client {client_id}");
    }
    Ok(secret)
}

/// What a client may do for itself (client_credentials): act for one retailer.
#[derive(Debug, Clone)]
pub struct ClientBinding<'a> {
    pub retailer_id: &'a str,
    pub permissions: &'a [Permission],
}

/// Creates an OAuth client with `secret`, or a generated one; bound to a retailer, it may
/// also get tokens for itself. Returns the secret: it is stored only as a hash, so this is
/// the one time it can be shown.
pub fn create_client(
    conn: &mut DbConnection,
    client_id: &str,
    secret: Option<&str>,
    binding: Option<ClientBinding>,
) -> anyhow::Result<String> {
    check_name("the client id", client_id)?;
    let secret = secret.map_or_else(new_secret, str::to_owned);
    if secret.chars().count() < MIN_PASSWORD_CHARS {
        bail!("the client secret must be at least {MIN_PASSWORD_CHARS} characters");
    }
    let hash = hash_secret(&secret);
    let now = Utc::now().naive_utc();
    write_transaction(conn, |conn| {
        if let Some(binding) = &binding {
            check_name("the retailer id", binding.retailer_id)?;
            accounts::ensure_retailer(conn, binding.retailer_id, binding.retailer_id, now)?;
        }
        let permissions = binding.as_ref().map(|b| format_list(b.permissions));
        accounts::insert_client(
            conn,
            client_id,
            &hash,
            binding.as_ref().map(|b| b.retailer_id),
            permissions.as_deref(),
            now,
        )
        .map_err(|e| exists_or(e, "client", client_id))
    })?;
    Ok(secret)
}

/// Registers a retailer; returns whether it is new (false: it was registered already).
pub fn create_retailer(
    conn: &mut DbConnection,
    id: &str,
    name: Option<&str>,
) -> anyhow::Result<bool> {
    check_name("the retailer id", id)?;
    if let Some(name) = name {
        check_retailer_name(name)?;
    }
    Ok(accounts::ensure_retailer(
        conn,
        id,
        name.unwrap_or(id),
        Utc::now().naive_utc(),
    )?)
}

pub fn check_retailer_name(name: &str) -> anyhow::Result<()> {
    check_name("the retailer's name", name)
}

/// "KIND NAME already exists" for a unique violation, else the error with its context.
pub(super) fn exists_or(e: DieselError, kind: &str, name: &str) -> anyhow::Error {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
            anyhow::anyhow!("{kind} {name} already exists")
        }
        e => anyhow::Error::new(e).context(format!("cannot create {kind} {name}")),
    }
}

/// First-start credentials; what is not given is generated.
#[derive(Debug, Clone, Default)]
pub struct Bootstrap {
    pub admin_username: Option<String>,
    pub admin_password: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

/// On a database with no users, creates an administrator with every permission; with no
/// clients, an OAuth client. Returns lines for the console: generated secrets, shown once.
pub fn bootstrap(conn: &mut DbConnection, given: &Bootstrap) -> anyhow::Result<Vec<String>> {
    let mut console = Vec::new();
    let has_users = accounts::count_users(conn)? > 0;
    if has_users && (given.admin_username.is_some() || given.admin_password.is_some()) {
        log::warn!(
            "STOCKBATCH_ADMIN_USERNAME/STOCKBATCH_ADMIN_PASSWORD are ignored: they create the \
             first administrator of an empty database, and this one has users \
             (change a password with `stockbatch user set-password`)"
        );
    }
    let has_clients = accounts::count_clients(conn)? > 0;
    if has_clients && (given.client_id.is_some() || given.client_secret.is_some()) {
        log::warn!(
            "STOCKBATCH_CLIENT_ID/STOCKBATCH_CLIENT_SECRET are ignored: they create the first \
             OAuth client of an empty database, and this one has clients \
             (change a secret with `stockbatch client rotate-secret`)"
        );
    }
    if !has_users {
        let username = given.admin_username.as_deref().unwrap_or("admin");
        let password = given.admin_password.clone().unwrap_or_else(new_secret);
        match create_user(conn, username, &password, None, &Permission::ALL) {
            Ok(_) if given.admin_password.is_none() => {
                console.push(format!("administrator: {username}  password: {password}"))
            }
            Ok(_) => console.push(format!(
                "administrator: {username} (password from STOCKBATCH_ADMIN_PASSWORD)"
            )),
            // Another node bootstrapped the same empty database at the same moment.
            Err(e) if e.to_string().ends_with("already exists") => {}
            Err(e) => return Err(e).context("cannot create the first administrator"),
        }
    }
    if !has_clients {
        let client_id = given.client_id.as_deref().unwrap_or("stockbatch");
        match create_client(conn, client_id, given.client_secret.as_deref(), None) {
            Ok(secret) if given.client_secret.is_none() => {
                console.push(format!("OAuth client: {client_id}  secret: {secret}"))
            }
            Ok(_) => console.push(format!(
                "OAuth client: {client_id} (secret from STOCKBATCH_CLIENT_SECRET)"
            )),
            Err(e) if e.to_string().ends_with("already exists") => {}
            Err(e) => return Err(e).context("cannot create the first OAuth client"),
        }
    }
    Ok(console)
}
