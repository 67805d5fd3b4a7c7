//! Bearer-token authentication: one admin token from configuration, and tenant tokens that
//! admins create and the store keeps only as SHA-256 hashes. Handlers say who may call them
//! by the extractor they take: [`Caller`] (any valid token) or [`Admin`] (the admin token;
//! a tenant token is a 403, missing or invalid credentials a 401).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use rand::RngCore;
use scanplane_core::tenant::Tenant;
use std::sync::Arc;

use crate::audit;
use crate::error::ApiError;
use crate::AppState;

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Caller {
    pub admin: bool,
    /// The caller's tenant; objects the admin creates belong to `default`.
    pub tenant: Tenant,
    /// The name of the token used (`admin` for the admin token).
    pub token: String,
}

impl Caller {
    /// Who did something, as records of it say: `admin`, or `<tenant>/<token name>`.
    pub fn actor(&self) -> String {
        if self.admin {
            "admin".to_string()
        } else {
            format!("{}/{}", self.tenant.name, self.token)
        }
    }

    /// The tenant filter for reads: the admin sees every tenant.
    pub fn scope(&self) -> Option<&str> {
        if self.admin {
            None
        } else {
            Some(&self.tenant.id)
        }
    }
}

/// SHA-256 of a token, hex: what the store keeps instead of the token. One definition
/// serves tenant tokens here and the per-scan report tokens the dispatcher mints.
pub use scanplane_protocol::token::hash_token;

/// A new random token with a recognizable prefix.
pub fn new_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

/// Compares hashes in constant time so that token checks leak no timing.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| {
                ApiError::unauthorized("Authorization: missing header; expected Bearer <token>")
            })?;
        let value = header
            .to_str()
            .map_err(|_| ApiError::unauthorized("Authorization: header is not ASCII"))?;
        let token = value
            .strip_prefix("Bearer ")
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::unauthorized("Authorization: expected Bearer <token>"))?;
        let hash = hash_token(token);
        let caller = identify(state, &hash).await?;
        audit::record(
            &parts.extensions,
            audit::Actor {
                token: caller.token.clone(),
                tenant: caller.tenant.name.clone(),
            },
        );
        Ok(caller)
    }
}

/// The caller a token hash belongs to; a 401 for an unknown or revoked token.
async fn identify(state: &AppState, hash: &str) -> Result<Caller, ApiError> {
    if let Some(admin) = &state.admin_token_hash {
        if same(hash, admin) {
            return Ok(Caller {
                admin: true,
                tenant: state.default_tenant.clone(),
                token: "admin".to_string(),
            });
        }
    }
    let Some(owner) = state.store.token_owner(hash).await? else {
        return Err(ApiError::unauthorized(
            "Authorization: unknown or revoked token",
        ));
    };
    let now = state.clock.now();
    let stale = owner.last_used_at.is_none_or(|t| {
        now - t >= chrono::Duration::milliseconds(scanplane_store::TOKEN_TOUCH_EVERY_MS)
    });
    if stale {
        // Last use is bookkeeping: a store that cannot write it must not refuse the caller.
        if let Err(e) = state.store.touch_token(&owner.token_id, now).await {
            tracing::warn!(error = %e, token_id = %owner.token_id, "cannot record token use");
        }
    }
    Ok(Caller {
        admin: false,
        tenant: owner.tenant,
        token: owner.token_name,
    })
}

/// The admin token's caller. As an extractor: 401 without valid credentials, 403 for a
/// tenant token.
#[derive(Debug, Clone)]
pub struct Admin(pub Caller);

impl FromRequestParts<Arc<AppState>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if caller.admin {
            Ok(Admin(caller))
        } else {
            Err(ApiError::forbidden(
                "Authorization: only the admin token may do this",
            ))
        }
    }
}
