//! Tenants (the seeds' organizations) and their projects. Every stored row belongs to a tenant.

use crate::Timestamp;

/// The tenant that owns objects created with the admin token.
pub const DEFAULT_TENANT: &str = "default";

/// An organization: the unit of isolation. Another tenant's objects are invisible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: String,
    /// Unique, human-chosen name (`tenant:<name>` in maintenance-window scopes).
    pub name: String,
    pub created_at: Timestamp,
}

/// A grouping of schedules and scans inside a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub created_at: Timestamp,
}

/// Why a tenant name was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tenant name {0:?} must be 1-63 characters of a-z, 0-9 and '-', starting with a letter or digit")]
pub struct InvalidTenantName(pub String);

/// Tenant names appear in scopes, labels and URLs, so they are kept to DNS-label characters.
pub fn validate_tenant_name(name: &str) -> Result<(), InvalidTenantName> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(InvalidTenantName(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_names() {
        assert!(validate_tenant_name("default").is_ok());
        assert!(validate_tenant_name("team-a1").is_ok());
        assert!(validate_tenant_name("").is_err());
        assert!(validate_tenant_name("Team").is_err());
        assert!(validate_tenant_name("-x").is_err());
        assert!(validate_tenant_name(&"a".repeat(64)).is_err());
    }
}
