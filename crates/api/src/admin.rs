//! Admin-only endpoints: tenant tokens and per-tenant retention. The [`Admin`] extractor
//! refuses every other caller before a handler runs.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use scanplane_core::tenant::validate_tenant_name;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{self, Admin};
use crate::error::{self, ApiError};
use crate::extract::{AppJson, AppPath};
use crate::AppState;

/// Body of `POST /api/v1/tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// Tenant name; created on first use.
    pub tenant: String,
    /// A label for the token.
    pub name: String,
}

/// A new token, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenCreated {
    pub id: String,
    pub token: String,
}

/// Creates a tenant-scoped token (admin only). The token is stored hashed and shown once.
#[utoipa::path(post, path = "/api/v1/tokens", request_body = TokenRequest, tag = "auth",
    security(("bearer" = [])),
    responses((status = 201, body = TokenCreated), error::AdminOnly, error::JsonBody, error::Common))]
pub async fn create_token(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
    AppJson(req): AppJson<TokenRequest>,
) -> Result<(StatusCode, Json<TokenCreated>), ApiError> {
    validate_tenant_name(&req.tenant).map_err(|e| ApiError::invalid("tenant", e))?;
    if req.name.trim().is_empty() || req.name.len() > 200 {
        return Err(ApiError::invalid("name", "must be 1-200 characters"));
    }
    let tenant = state.store.ensure_tenant(&req.tenant).await?;
    let token = auth::new_token("spt_");
    let id = state
        .store
        .create_token(&tenant.id, &req.name, &auth::hash_token(&token))
        .await?;
    tracing::info!(token_id = %id, tenant = %tenant.name, "token created");
    Ok((StatusCode::CREATED, Json(TokenCreated { id, token })))
}

/// Body of `PUT /api/v1/tenants/:name/retention`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionRequest {
    /// Days ended scans and their findings are kept; null returns to the server default.
    #[schema(minimum = 1, maximum = 36500)]
    pub days: Option<u32>,
}

/// Sets a tenant's retention (admin only).
#[utoipa::path(put, path = "/api/v1/tenants/{name}/retention", request_body = RetentionRequest, tag = "auth",
    params(("name" = String, Path, description = "Tenant name")),
    security(("bearer" = [])),
    responses((status = 204, description = "Retention set"), error::AdminOnly, error::PathId, error::JsonBody, error::Common))]
pub async fn set_retention(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
    AppPath(name): AppPath<String>,
    AppJson(req): AppJson<RetentionRequest>,
) -> Result<StatusCode, ApiError> {
    if req.days == Some(0) || req.days.is_some_and(|d| d > 36_500) {
        return Err(ApiError::invalid("days", "must be between 1 and 36500"));
    }
    state
        .store
        .set_retention(&name, req.days)
        .await
        .map_err(|e| match e {
            scanplane_store::StoreError::NotFound => ApiError::not_found("tenant", &name),
            other => other.into(),
        })?;
    Ok(StatusCode::NO_CONTENT)
}

pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(create_token))
        .routes(routes!(set_retention))
}
