//! What a user may do.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    JobCreate,
    JobView,
    BatchCreate,
    BatchView,
    InventoryView,
}

impl Permission {
    pub const ALL: [Permission; 5] = [
        Permission::JobCreate,
        Permission::JobView,
        Permission::BatchCreate,
        Permission::BatchView,
        Permission::InventoryView,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::JobCreate => "JOB_CREATE",
            Permission::JobView => "JOB_VIEW",
            Permission::BatchCreate => "BATCH_CREATE",
            Permission::BatchView => "BATCH_VIEW",
            Permission::InventoryView => "INVENTORY_VIEW",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Permission {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Permission::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                let known: Vec<_> = Permission::ALL.iter().map(|p| p.as_str()).collect();
                format!("unknown permission '{s}' (known: {})", known.join(", "))
            })
    }
}

/// Parses a comma-separated list such as `JOB_CREATE,BATCH_CREATE` (`ALL` for every one).
pub fn parse_list(list: &str) -> Result<Vec<Permission>, String> {
    if list.trim().eq_ignore_ascii_case("ALL") {
        return Ok(Permission::ALL.to_vec());
    }
    let mut permissions = list
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(str::parse)
        .collect::<Result<Vec<Permission>, _>>()?;
    permissions.sort();
    permissions.dedup();
    Ok(permissions)
}

/// The stored form: names joined by commas.
pub fn format_list(permissions: &[Permission]) -> String {
    permissions
        .iter()
        .map(|p| p.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_round_trip() {
        let parsed = parse_list("batch_view, JOB_CREATE,JOB_CREATE").unwrap();
        assert_eq!(parsed, vec![Permission::JobCreate, Permission::BatchView]);
        assert_eq!(format_list(&parsed), "JOB_CREATE,BATCH_VIEW");
        assert_eq!(parse_list("ALL").unwrap().len(), 5);
        assert!(parse_list("JOB_DELETE")
            .unwrap_err()
            .contains("unknown permission 'JOB_DELETE'"));
    }
}
