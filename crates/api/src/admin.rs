//! Admin-only endpoints: tenant tokens (create, list, revoke), tenants and their retention. The [`Admin`] extractor
//! refuses every other caller before a handler runs.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use scanplane_core::tenant::validate_tenant_name;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{self, Admin};
use crate::error::{self, ApiError};
use crate::extract::{AppJson, AppPath, AppQuery};
use crate::{fmt_ts, AppState, Page};

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

/// A token as listed: never its secret, which is not stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    pub tenant: String,
    pub created_at: String,
    /// When a request last used it (recorded at most once a minute); null if never.
    pub last_used_at: Option<String>,
}

/// Query of `GET /api/v1/tokens`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TokenQuery {
    /// Only this tenant's tokens (a tenant name).
    pub tenant: Option<String>,
}

/// Lists every token (admin only), oldest first, in one page.
#[utoipa::path(get, path = "/api/v1/tokens", params(TokenQuery), tag = "auth",
    security(("bearer" = [])),
    responses((status = 200, body = Page<TokenView>), error::AdminOnly, error::QueryParams, error::Common))]
pub async fn list_tokens(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
    AppQuery(q): AppQuery<TokenQuery>,
) -> Result<Json<Page<TokenView>>, ApiError> {
    if let Some(t) = &q.tenant {
        validate_tenant_name(t).map_err(|e| ApiError::invalid("tenant", e))?;
    }
    let tokens = state.store.list_tokens(q.tenant.as_deref()).await?;
    Ok(Json(Page {
        items: tokens
            .into_iter()
            .map(|t| TokenView {
                id: t.id,
                name: t.name,
                tenant: t.tenant,
                created_at: fmt_ts(t.created_at),
                last_used_at: t.last_used_at.map(fmt_ts),
            })
            .collect(),
        next_cursor: None,
    }))
}

/// Revokes a token (admin only): the next request with it is a 401.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "auth",
    params(("id" = String, Path, description = "Token id, as created or listed")),
    security(("bearer" = [])),
    responses((status = 204, description = "Revoked"), error::AdminOnly, error::PathId, error::Common))]
pub async fn revoke_token(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
    AppPath(id): AppPath<String>,
) -> Result<StatusCode, ApiError> {
    state.store.revoke_token(&id).await.map_err(|e| match e {
        scanplane_store::StoreError::NotFound => ApiError::not_found("token", &id),
        other => other.into(),
    })?;
    tracing::info!(token_id = %id, "token revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// A tenant as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantView {
    pub id: String,
    pub name: String,
    pub created_at: String,
    /// Days its ended scans are kept; null when the server default applies.
    pub retention_days: Option<u32>,
}

/// Lists every tenant with its retention (admin only), by name, in one page.
#[utoipa::path(get, path = "/api/v1/tenants", tag = "auth",
    security(("bearer" = [])),
    responses((status = 200, body = Page<TenantView>), error::AdminOnly, error::Common))]
pub async fn list_tenants(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
) -> Result<Json<Page<TenantView>>, ApiError> {
    let tenants = state.store.list_tenants().await?;
    Ok(Json(Page {
        items: tenants
            .into_iter()
            .map(|t| TenantView {
                id: t.tenant.id,
                name: t.tenant.name,
                created_at: fmt_ts(t.tenant.created_at),
                retention_days: t.retention_days,
            })
            .collect(),
        next_cursor: None,
    }))
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
        .routes(routes!(create_token, list_tokens))
        .routes(routes!(revoke_token))
        .routes(routes!(list_tenants))
        .routes(routes!(set_retention))
}
