//! API keys, as StateSet clients use them (`Authorization: Bearer sbk_...`): the
//! `stockbatch api-key` commands, and turning a presented key into a [`Principal`].
//! A key is 256 random bits, shown once and stored only as its SHA-256.

use anyhow::bail;
use chrono::Utc;
use diesel::QueryResult;

use super::accounts::{check_name, exists_or};
use super::permissions::{format_list, parse_list, Permission};
use super::principal::Principal;
use super::secrets::{new_token, token_hash};
use crate::db::models::{ApiKey, NewApiKey};
use crate::db::{self, accounts, write_transaction, DbConnection};
use crate::domain::scalar::{required_key, Scalar};

/// What every API key starts with, so the service knows a key from an OAuth token
/// without a second lookup.
pub const API_KEY_PREFIX: &str = "sbk_";

/// A new key: [`API_KEY_PREFIX`] and 256 bits from the OS CSPRNG as 64 hex digits.
pub fn new_api_key() -> String {
    format!("{API_KEY_PREFIX}{}", new_token())
}

/// Whether a bearer token is meant as an API key (it may still be a wrong one).
pub fn is_api_key(token: &str) -> bool {
    token.starts_with(API_KEY_PREFIX)
}

/// Creates a key of `retailer_id` (registering the retailer if new) and returns it: it is
/// stored only as a hash, so this is the one time it can be shown.
pub fn create_api_key(
    conn: &mut DbConnection,
    name: &str,
    retailer_id: &str,
    permissions: &[Permission],
    default_location: &str,
) -> anyhow::Result<String> {
    check_fields(name, retailer_id, default_location)?;
    let key = new_api_key();
    let now = Utc::now().naive_utc();
    let new = NewApiKey {
        name,
        key_hash: &token_hash(&key),
        retailer_id,
        permissions: &format_list(permissions),
        default_location,
        revoked: 0,
        created_on: now,
    };
    write_transaction(conn, |conn| {
        accounts::ensure_retailer(conn, retailer_id, retailer_id, now)?;
        db::api_keys::insert_api_key(conn, &new).map_err(|e| exists_or(e, "API key", name))
    })?;
    Ok(key)
}

/// Every key, revoked ones included, by name (never the keys or their hashes).
pub fn list_api_keys(conn: &mut DbConnection) -> anyhow::Result<Vec<ApiKey>> {
    Ok(db::api_keys::list_api_keys(conn)?)
}

/// Revokes the key named `name`: it stops working with the next request.
pub fn revoke_api_key(conn: &mut DbConnection, name: &str) -> anyhow::Result<()> {
    if !db::api_keys::revoke_api_key(conn, name)? {
        bail!("no API key {name}");
    }
    Ok(())
}

/// Who is calling with `key`: `None` for a wrong or revoked key.
pub fn authenticate(conn: &mut DbConnection, key: &str) -> QueryResult<Option<Principal>> {
    let found = db::api_keys::find_api_key_by_hash(conn, &token_hash(key))?;
    Ok(found.map(principal))
}

/// A key acts within its one retailer. Its id is negated so that it can never be taken
/// for a user's.
fn principal(key: ApiKey) -> Principal {
    Principal {
        user_id: -key.id,
        username: format!("api-key:{}", key.name),
        retailer_id: Some(key.retailer_id),
        permissions: parse_list(&key.permissions).unwrap_or_default(),
        default_location: key.default_location,
    }
}

/// The name follows the username rule; the retailer and location are keys of the
/// inventory, so they follow the key rule records do.
fn check_fields(name: &str, retailer_id: &str, default_location: &str) -> anyhow::Result<()> {
    check_name("the API key name", name)?;
    for (field, value) in [
        ("retailer id", retailer_id),
        ("default location", default_location),
    ] {
        required_key(field, Some(&Scalar::Str(value.into()))).map_err(anyhow::Error::msg)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_random_hex() {
        let (a, b) = (new_api_key(), new_api_key());
        assert_ne!(a, b);
        assert_eq!(a.len(), 4 + 64);
        let hex = a.strip_prefix("sbk_").unwrap();
        assert!(hex
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
        assert!(is_api_key(&a) && !is_api_key(&new_token()));
    }

    #[test]
    fn names_retailers_and_locations_are_checked() {
        assert!(check_fields("feed", "197", "DEFAULT").is_ok());
        assert!(check_fields("", "197", "DEFAULT").is_err());
        assert!(check_fields(&"n".repeat(256), "197", "DEFAULT").is_err());
        assert!(check_fields("feed", " ", "DEFAULT").is_err());
        assert!(check_fields("feed", "197", &"l".repeat(256)).is_err());
        // 255 characters, but 1020 bytes: more than a key may hold.
        let error = check_fields("feed", &"😀".repeat(255), "DEFAULT").unwrap_err();
        assert!(error.to_string().contains("765 bytes"), "{error}");
        assert!(check_fields("feed", "197", "a\0b").is_err());
    }

    #[test]
    fn a_key_acts_as_its_retailer_at_its_location() {
        let p = principal(ApiKey {
            id: 7,
            name: "feed".into(),
            retailer_id: "197".into(),
            permissions: "JOB_VIEW".into(),
            default_location: "DC1".into(),
            revoked: 0,
            created_on: Utc::now().naive_utc(),
        });
        assert_eq!((p.user_id, p.username.as_str()), (-7, "api-key:feed"));
        assert_eq!(p.default_location, "DC1");
        assert!(p.sees("197") && !p.sees("198"));
        assert_eq!(p.permissions, vec![Permission::JobView]);
    }
}
