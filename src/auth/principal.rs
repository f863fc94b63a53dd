//! Who is calling, and what they may see and do.

use super::permissions::Permission;

/// The location of callers that have none configured (OAuth users).
pub const DEFAULT_LOCATION: &str = "DEFAULT";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user's id; for an API key, the key's id negated.
    pub user_id: i64,
    /// The username; for an API key, `api-key:NAME`.
    pub username: String,
    /// The user's retailer; `None` for an account administrator over all retailers.
    pub retailer_id: Option<String>,
    pub permissions: Vec<Permission>,
    /// Where requests that name no location apply: an API key's configured location,
    /// [`DEFAULT_LOCATION`] for OAuth users.
    pub default_location: String,
}

impl Principal {
    pub fn has(&self, permission: Permission) -> bool {
        self.permissions.contains(&permission)
    }

    /// Whether this user may see data of `retailer_id`. Other retailers' data is
    /// answered as if it did not exist.
    pub fn sees(&self, retailer_id: &str) -> bool {
        self.retailer_id
            .as_deref()
            .is_none_or(|own| own == retailer_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retailer_users_see_only_their_retailer() {
        let mut p = Principal {
            user_id: 1,
            username: "u".into(),
            retailer_id: Some("197".into()),
            permissions: vec![Permission::JobView],
            default_location: DEFAULT_LOCATION.into(),
        };
        assert!(p.sees("197") && !p.sees("198"));
        assert!(p.has(Permission::JobView) && !p.has(Permission::JobCreate));
        p.retailer_id = None;
        assert!(p.sees("198"));
    }
}
