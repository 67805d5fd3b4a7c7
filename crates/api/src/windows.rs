//! Maintenance-window endpoints: CRUD at `/api/v1/maintenance-windows`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use scanplane_core::duration::format_duration;
use scanplane_core::limits::DurationLimit;
use scanplane_core::maintenance::{MaintenanceWindow, Scope, WindowAction, WindowStart};
use scanplane_core::schedule::Cadence;
use scanplane_core::tenant::validate_tenant_name;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::{self, ApiError};
use crate::extract::{AppJson, AppPath, AppQuery};
use crate::tenancy::{listing_scope, tenant_name, TenantNames};
use crate::{fmt_ts, parse_ts, AppState};

/// Body of `POST /api/v1/maintenance-windows` (and `PUT` to replace one).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowRequest {
    pub name: String,
    /// RFC 3339 start of a one-off window. Exclusive with `cron`.
    pub start: Option<String>,
    /// Cron expression opening a recurring window. Exclusive with `start`.
    pub cron: Option<String>,
    /// IANA time zone of `cron` (default UTC).
    pub timezone: Option<String>,
    /// How long the window stays open, e.g. `1h`.
    pub duration: String,
    /// `global` (default), `tenant:<name>`, `scanner:<name>`, `provider:<name>`, `target:<target>`.
    pub scope: Option<String>,
    /// `hold` (default) or `skip`.
    pub action: Option<String>,
}

/// A maintenance window as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct WindowView {
    pub id: String,
    /// The owning tenant's name.
    pub tenant: String,
    pub name: String,
    pub start: Option<String>,
    pub cron: Option<String>,
    pub timezone: String,
    pub duration: String,
    pub scope: String,
    pub action: String,
    pub created_at: String,
}

impl From<MaintenanceWindow> for WindowView {
    fn from(w: MaintenanceWindow) -> Self {
        let (start, cron, timezone) = match &w.start {
            WindowStart::At(t) => (Some(fmt_ts(*t)), None, "UTC".to_string()),
            WindowStart::Cron(Cadence::Cron { expr, timezone }) => {
                (None, Some(expr.clone()), timezone.name().to_string())
            }
            // Windows are never built with an interval; shown by their first start if one were.
            WindowStart::Cron(Cadence::Once { at } | Cadence::Every { anchor: at, .. }) => {
                (Some(fmt_ts(*at)), None, "UTC".to_string())
            }
        };
        WindowView {
            tenant: w.tenant_id.clone(),
            id: w.id,
            name: w.name,
            start,
            cron,
            timezone,
            duration: format_duration(w.duration),
            scope: w.scope.to_string(),
            action: w.action.as_str().to_string(),
            created_at: fmt_ts(w.created_at),
        }
    }
}

fn build(
    req: WindowRequest,
    caller: &Caller,
    id: String,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<MaintenanceWindow, ApiError> {
    if req.name.trim().is_empty() || req.name.len() > 200 {
        return Err(ApiError::invalid("name", "must be 1-200 characters"));
    }
    let start = match (&req.start, &req.cron) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "start, cron",
                "give either start or cron, not both",
            ))
        }
        (None, None) => return Err(ApiError::invalid("start, cron", "one of them is required")),
        (Some(s), None) => WindowStart::At(parse_ts("start", s)?),
        (None, Some(c)) => WindowStart::Cron(
            Cadence::cron(c, req.timezone.as_deref().unwrap_or("UTC"))
                .map_err(|e| ApiError::invalid("cron", e))?,
        ),
    };
    let duration = DurationLimit::WindowDuration
        .parse(&req.duration)
        .map_err(|e| ApiError::invalid("duration", e))?;
    if duration.is_zero() {
        return Err(ApiError::invalid("duration", "must be longer than zero"));
    }
    let scope = Scope::parse(req.scope.as_deref().unwrap_or("global"))
        .map_err(|e| ApiError::invalid("scope", e))?;
    if let Scope::Tenant(name) = &scope {
        validate_tenant_name(name).map_err(|e| ApiError::invalid("scope", e))?;
        if !caller.admin && *name != caller.tenant.name {
            return Err(ApiError::invalid(
                "scope",
                "a tenant token may only scope windows to its own tenant",
            ));
        }
    }
    let action = req
        .action
        .as_deref()
        .map(str::parse::<WindowAction>)
        .transpose()
        .map_err(|e| ApiError::invalid("action", e))?
        .unwrap_or(WindowAction::Hold);
    Ok(MaintenanceWindow {
        id,
        tenant_id: caller.tenant.id.clone(),
        admin: caller.admin,
        name: req.name,
        start,
        duration,
        scope,
        action,
        created_at: now,
    })
}

/// Creates a maintenance window.
#[utoipa::path(post, path = "/api/v1/maintenance-windows", request_body = WindowRequest, tag = "maintenance",
    security(("bearer" = [])),
    responses((status = 201, body = WindowView), error::Auth, error::JsonBody, error::Common))]
pub async fn create_window(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    AppJson(req): AppJson<WindowRequest>,
) -> Result<(StatusCode, Json<WindowView>), ApiError> {
    let w = build(
        req,
        &caller,
        uuid::Uuid::now_v7().to_string(),
        state.clock.now(),
    )?;
    state.store.create_window(&w).await?;
    state.wake_dispatcher.notify_one();
    let mut view = WindowView::from(w);
    view.tenant.clone_from(&caller.tenant.name);
    Ok((StatusCode::CREATED, Json(view)))
}

/// Query of `GET /api/v1/maintenance-windows`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WindowQuery {
    /// Only this tenant's windows (a tenant name; the admin sees every tenant's by default).
    pub tenant: Option<String>,
}

/// Lists maintenance windows.
#[utoipa::path(get, path = "/api/v1/maintenance-windows", params(WindowQuery), tag = "maintenance",
    security(("bearer" = [])),
    responses((status = 200, body = [WindowView]), error::Auth, error::QueryParams, error::Common))]
pub async fn list_windows(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    AppQuery(q): AppQuery<WindowQuery>,
) -> Result<Json<Vec<WindowView>>, ApiError> {
    let scope = listing_scope(&state, &caller, q.tenant.as_deref()).await?;
    let ws = state.store.list_windows(scope.as_deref()).await?;
    let names = TenantNames::for_caller(&state, &caller).await?;
    Ok(Json(
        ws.into_iter()
            .map(|w| {
                let mut v = WindowView::from(w);
                names.name(&mut v.tenant);
                v
            })
            .collect(),
    ))
}

/// One maintenance window.
#[utoipa::path(get, path = "/api/v1/maintenance-windows/{id}", tag = "maintenance",
    params(("id" = String, Path, description = "Maintenance window id")),
    security(("bearer" = [])),
    responses((status = 200, body = WindowView), error::Auth, error::PathId, error::Common))]
pub async fn get_window(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    AppPath(id): AppPath<String>,
) -> Result<Json<WindowView>, ApiError> {
    let w = state
        .store
        .window(caller.scope(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("maintenance window", &id))?;
    let mut view = WindowView::from(w);
    view.tenant = tenant_name(&state, &caller, &view.tenant).await?;
    Ok(Json(view))
}

/// Replaces a maintenance window.
#[utoipa::path(put, path = "/api/v1/maintenance-windows/{id}", request_body = WindowRequest, tag = "maintenance",
    params(("id" = String, Path, description = "Maintenance window id")),
    security(("bearer" = [])),
    responses((status = 200, body = WindowView), error::Auth, error::PathId, error::JsonBody, error::Common))]
pub async fn replace_window(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    AppPath(id): AppPath<String>,
    AppJson(req): AppJson<WindowRequest>,
) -> Result<Json<WindowView>, ApiError> {
    let existing = state
        .store
        .window(caller.scope(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("maintenance window", &id))?;
    let mut w = build(req, &caller, id, existing.created_at)?;
    // The owner and authority of a window do not change when it is edited.
    w.tenant_id = existing.tenant_id;
    w.admin = existing.admin;
    state.store.update_window(&w, state.clock.now()).await?;
    state.wake_dispatcher.notify_one();
    let mut view = WindowView::from(w);
    view.tenant = tenant_name(&state, &caller, &view.tenant).await?;
    Ok(Json(view))
}

/// Deletes a maintenance window; scans it held are released at the next admission round.
#[utoipa::path(delete, path = "/api/v1/maintenance-windows/{id}", tag = "maintenance",
    params(("id" = String, Path, description = "Maintenance window id")),
    security(("bearer" = [])),
    responses((status = 204, description = "Deleted"), error::Auth, error::PathId, error::Common))]
pub async fn delete_window(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    AppPath(id): AppPath<String>,
) -> Result<StatusCode, ApiError> {
    if state.store.delete_window(caller.scope(), &id).await? {
        state.wake_dispatcher.notify_one();
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("maintenance window", &id))
    }
}

pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list_windows, create_window))
        .routes(routes!(get_window, replace_window, delete_window))
}
