//! Which tenant an object belongs to, as views show it (`tenant`, the tenant's name), and
//! the `tenant` filter of listings: the admin sees every tenant and may narrow a listing
//! to one; a tenant token sees its own tenant only and may name only that one.

use std::collections::HashMap;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::AppState;

/// Tenant names by id, for a listing of the objects a caller may see (one query for the
/// admin; tenants are few).
pub struct TenantNames(HashMap<String, String>);

impl TenantNames {
    pub async fn for_caller(state: &AppState, caller: &Caller) -> Result<Self, ApiError> {
        if !caller.admin {
            let own = (caller.tenant.id.clone(), caller.tenant.name.clone());
            return Ok(TenantNames(HashMap::from([own])));
        }
        let all = state.store.list_tenants().await?;
        Ok(TenantNames(
            all.into_iter()
                .map(|t| (t.tenant.id, t.tenant.name))
                .collect(),
        ))
    }

    /// Replaces a view's tenant id with the tenant's name (kept when unknown, e.g. a
    /// tenant created since the names were read).
    pub fn name(&self, tenant: &mut String) {
        if let Some(name) = self.0.get(tenant.as_str()) {
            tenant.clone_from(name);
        }
    }
}

/// The name of tenant `tenant_id`, for a view of one object: the caller's own without a
/// query, one lookup for the admin (the id itself if the tenant is gone).
pub async fn tenant_name(
    state: &AppState,
    caller: &Caller,
    tenant_id: &str,
) -> Result<String, ApiError> {
    if !caller.admin || tenant_id == caller.tenant.id {
        return Ok(caller.tenant.name.clone());
    }
    Ok(state
        .store
        .tenant(tenant_id)
        .await?
        .map_or_else(|| tenant_id.to_string(), |t| t.name))
}

/// The tenant scope of a listing (a tenant id for the store, `None` for all): the caller's
/// own, narrowed for the admin by `tenant` (a name). A tenant token naming another tenant
/// is a 403; an unknown name a 422 naming `tenant`.
pub async fn listing_scope(
    state: &AppState,
    caller: &Caller,
    tenant: Option<&str>,
) -> Result<Option<String>, ApiError> {
    let Some(name) = tenant.filter(|t| !t.is_empty()) else {
        return Ok(caller.scope().map(str::to_string));
    };
    if !caller.admin {
        return if name == caller.tenant.name {
            Ok(Some(caller.tenant.id.clone()))
        } else {
            Err(ApiError::forbidden(format!(
                "tenant: a tenant token sees only its own tenant ({:?})",
                caller.tenant.name
            )))
        };
    }
    let all = state.store.list_tenants().await?;
    all.into_iter()
        .find(|t| t.tenant.name == name)
        .map(|t| Some(t.tenant.id))
        .ok_or_else(|| ApiError::invalid("tenant", format!("no tenant is named {name:?}")))
}
