//! scanplane's HTTP API: seed 000's `/scans/now` and `/scans/schedule`, seed 002's
//! `/api/v1/scans`, maintenance windows, scanners, tokens, health, and the OpenAPI document
//! generated from these handlers. Handlers validate, call the store, and wake the loops
//! that act (scheduler, dispatcher); they never run scans themselves.

pub mod auth;
pub mod error;
pub mod export;
pub mod findings;
pub mod report;
pub mod scans;
pub mod schedules;
pub mod windows;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use scanplane_core::clock::Clock;
use scanplane_core::scanner::ScannerDef;
use scanplane_core::target::Target;
use scanplane_core::tenant::{validate_tenant_name, Tenant};
use scanplane_core::Timestamp;
use scanplane_store::Store;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use utoipa::{OpenApi, ToSchema};

use auth::Caller;
use error::{ApiError, ErrorBody};

/// The scanners the API can validate against (implemented over the scanner registry).
pub trait ScannerCatalog: Send + Sync {
    fn definitions(&self) -> Vec<ScannerDef>;
    fn definition(&self, name: &str) -> Option<ScannerDef>;
    /// Checks targets and options for `scanner`.
    fn validate(
        &self,
        scanner: &str,
        targets: &[Target],
        options: &serde_json::Value,
    ) -> Result<(), Rejection>;
}

/// Why a scanner refused a request: the request field at fault and the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// `targets` or `options`.
    pub field: &'static str,
    pub message: String,
}

/// Everything handlers share.
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub catalog: Arc<dyn ScannerCatalog>,
    pub clock: Arc<dyn Clock>,
    /// SHA-256 of `SCANPLANE_ADMIN_TOKEN`; `None` disables admin access.
    pub admin_token_hash: Option<String>,
    /// The tenant objects created with the admin token belong to.
    pub default_tenant: Tenant,
    /// Wakes the scheduler when schedules change.
    pub wake_scheduler: Arc<Notify>,
    /// Wakes the dispatcher when scans are queued or cancelled, or windows change.
    pub wake_dispatcher: Arc<Notify>,
    pub metrics: Arc<scanplane_metrics::Metrics>,
}

/// JSON body extractor whose rejections are scanplane's JSON errors.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct AppJson<T>(pub T);

/// Query-string extractor whose rejections are scanplane's JSON errors.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct AppQuery<T>(pub T);

/// A page of results with the cursor of the next page.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

pub fn fmt_ts(t: Timestamp) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn parse_ts(field: &str, value: &str) -> Result<Timestamp, ApiError> {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| ApiError::invalid(field, format!("{value:?} is not an RFC 3339 time: {e}")))
}

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
    responses((status = 201, body = TokenCreated), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_token(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    AppJson(req): AppJson<TokenRequest>,
) -> Result<(StatusCode, Json<TokenCreated>), ApiError> {
    if !caller.admin {
        return Err(ApiError::unauthorized(
            "only the admin token may create tokens",
        ));
    }
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
    pub days: Option<u32>,
}

/// Sets a tenant's retention (admin only).
#[utoipa::path(put, path = "/api/v1/tenants/{name}/retention", request_body = RetentionRequest, tag = "auth",
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn set_retention(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    axum::extract::Path(name): axum::extract::Path<String>,
    AppJson(req): AppJson<RetentionRequest>,
) -> Result<StatusCode, ApiError> {
    if !caller.admin {
        return Err(ApiError::unauthorized(
            "only the admin token may set retention",
        ));
    }
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

/// A scanner as `GET /api/v1/scanners` lists it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScannerView {
    pub name: String,
    /// `builtin`, `external` or `custom`.
    pub kind: String,
    pub description: String,
    pub provider: Option<String>,
    pub timeout: Option<String>,
    /// Target kinds accepted.
    pub accepts: Vec<String>,
    /// Option names understood.
    pub options: Vec<String>,
}

/// Lists the scanners this server can run.
#[utoipa::path(get, path = "/api/v1/scanners", tag = "scanners", responses((status = 200, body = [ScannerView])))]
pub async fn list_scanners(
    State(state): State<Arc<AppState>>,
    _caller: Caller,
) -> Json<Vec<ScannerView>> {
    Json(
        state
            .catalog
            .definitions()
            .into_iter()
            .map(|d| ScannerView {
                kind: d.kind_str().to_string(),
                name: d.name,
                description: d.description,
                provider: d.provider,
                timeout: d.timeout.map(scanplane_core::duration::format_duration),
                accepts: d.accepts.iter().map(|k| k.as_str().to_string()).collect(),
                options: d.options.iter().map(|o| o.to_string()).collect(),
            })
            .collect(),
    )
}

/// Liveness: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200)))]
pub async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({"status": "ok"}))
}

/// Readiness: the store answers and its migrations are applied.
#[utoipa::path(get, path = "/readyz", tag = "health", responses((status = 200), (status = 503, body = ErrorBody)))]
pub async fn readyz(State(state): State<Arc<AppState>>) -> Result<impl IntoResponse, ApiError> {
    state.store.check_ready().await.map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("store not ready: {e}"),
        )
    })?;
    Ok(Json(
        serde_json::json!({"status": "ready", "store": state.store.backend().as_str()}),
    ))
}

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let body = state.metrics.render();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

#[derive(OpenApi)]
#[openapi(
    info(title = "scanplane", description = "The control plane for continuous security scanning."),
    paths(
        healthz, readyz, create_token, set_retention, list_scanners,
        scans::scan_now, scans::create_scan, scans::list_scans, scans::get_scan, scans::cancel_scan,
        schedules::create_schedule, schedules::list_schedules, schedules::get_schedule, schedules::patch_schedule, schedules::delete_schedule,
        windows::create_window, windows::list_windows, windows::get_window, windows::replace_window, windows::delete_window,
        report::report, findings::scan_findings, findings::diff, findings::list, findings::triage,
    ),
    components(schemas(ErrorBody, TokenRequest, TokenCreated, RetentionRequest, ScannerView, scans::ScanRequest, scans::ScanAccepted, scans::ScanView, scans::ScanPage,
        schedules::ScheduleCreate, schedules::SchedulePatch, schedules::ScheduleView, schedules::SchedulePage, windows::WindowRequest, windows::WindowView,
        scanplane_protocol::report::ReportLine, scanplane_protocol::report::ReportAccepted, report::FindingView, report::FindingPage,
        findings::IdentityView, findings::IdentityPage, findings::TriageRequest, findings::DiffView, findings::DiffCounts)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        openapi.security = Some(vec![SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
    }
}

async fn openapi_json() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}

/// Largest JSON request body accepted.
pub const MAX_BODY: usize = 1024 * 1024;

/// The whole HTTP API.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi_json))
        .route("/scans/now", post(scans::scan_now))
        .route(
            "/scans/schedule",
            get(schedules::list_schedules).post(schedules::create_schedule),
        )
        .route(
            "/scans/schedule/{id}",
            get(schedules::get_schedule)
                .patch(schedules::patch_schedule)
                .delete(schedules::delete_schedule),
        )
        .route("/api/v1/tokens", post(create_token))
        .route(
            "/api/v1/tenants/{name}/retention",
            axum::routing::put(set_retention),
        )
        .route("/api/v1/scanners", get(list_scanners))
        .route(
            "/api/v1/scans",
            get(scans::list_scans).post(scans::create_scan),
        )
        .route(
            "/api/v1/scans/{id}",
            get(scans::get_scan).delete(scans::cancel_scan),
        )
        .route("/api/v1/scans/{id}/findings", get(findings::scan_findings))
        .route("/api/v1/scans/{id}/diff", get(findings::diff))
        .route("/api/v1/findings", get(findings::list))
        .route(
            "/api/v1/findings/{id}",
            axum::routing::patch(findings::triage),
        )
        .route(
            "/api/v1/scans/{id}/report",
            post(report::report).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/api/v1/maintenance-windows",
            get(windows::list_windows).post(windows::create_window),
        )
        .route(
            "/api/v1/maintenance-windows/{id}",
            get(windows::get_window)
                .put(windows::replace_window)
                .delete(windows::delete_window),
        )
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}
