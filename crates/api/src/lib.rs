//! scanplane's HTTP API: `/scans/now` and `/scans/schedule`, `/api/v1/scans`, findings,
//! maintenance windows, scanners, tokens, health, and the OpenAPI document generated from
//! the handlers. Handlers validate, call the store, and wake the loops that act (scheduler,
//! dispatcher); they never run scans themselves.
//!
//! Each module owns its routes: `routes()` returns a `utoipa_axum` router in which one
//! `.routes(routes!(handler))` line adds both the route and its OpenAPI operation, so the
//! document cannot leave an endpoint out. [`server`] is the HTTP server with its timeouts
//! and connection limit.

pub mod admin;
pub mod advisories;
pub mod audit;
pub mod auth;
pub mod declared;
pub mod error;
pub mod export;
pub mod extract;
pub mod findings;
pub mod health;
pub mod images;
pub mod pipeline;
pub mod policies;
pub mod registries;
pub mod replicas;
pub mod report;
pub mod request_id;
pub mod scanners;
pub mod scans;
pub mod schedules;
pub mod server;
pub mod stream;
pub mod tenancy;
pub mod windows;

use std::sync::{Arc, OnceLock};

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use scanplane_core::clock::Clock;
use scanplane_core::scanner::ScannerDef;
use scanplane_core::target::Target;
use scanplane_core::tenant::Tenant;
use scanplane_core::Timestamp;
use scanplane_store::Store;
use serde::Serialize;
use tokio::sync::Notify;
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;

use error::{ApiError, ErrorBody};

pub use extract::{AppJson, AppPath, AppQuery};

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
    /// The canonical JSON of the options of a scan of `scanner` that change what it can
    /// report (`{}` when none): part of the key of comparable runs.
    fn scope_options(&self, scanner: &str, options: &serde_json::Value) -> String;
    /// Why `scanner` cannot run on this server's executor (what is not installed); `None`
    /// when it can or when this server cannot tell (units that run elsewhere).
    fn unusable(&self, _scanner: &str) -> Option<String> {
        None
    }
}

/// Why a scanner refused a request: the request field at fault and the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// `scanner`, `targets` or `options`.
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
    /// This replica's id and the health of its background loops.
    pub replica: Arc<health::ReplicaHealth>,
    /// The clusters the configuration names, which policies may scan.
    pub clusters: Vec<String>,
}

/// A page of results with the cursor of the next page.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page of `items`, of which at most `limit` were asked for; `id` gives an item's
    /// cursor. A full page has a next cursor (the next page may be empty).
    pub fn of<R>(rows: Vec<R>, limit: u32, id: impl Fn(&R) -> &str, view: impl Fn(R) -> T) -> Self {
        let next_cursor = (rows.len() == limit as usize)
            .then(|| rows.last().map(|r| id(r).to_string()))
            .flatten();
        Page {
            items: rows.into_iter().map(view).collect(),
            next_cursor,
        }
    }
}

pub fn fmt_ts(t: Timestamp) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn parse_ts(field: &str, value: &str) -> Result<Timestamp, ApiError> {
    let t = chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| ApiError::invalid(field, format!("{value:?} is not an RFC 3339 time: {e}")))?;
    scanplane_core::limits::check_time(t).map_err(|e| ApiError::invalid(field, e))
}

#[derive(OpenApi)]
#[openapi(
    info(title = "scanplane", description = "The control plane for continuous security scanning."),
    components(schemas(ErrorBody)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "health", description = "Liveness, readiness, metrics and this document; no token needed"),
        (name = "auth", description = "Tokens and tenants (admin only)"),
        (name = "scans", description = "On-demand scans, their findings, diffs and exports"),
        (name = "schedules", description = "Cron and one-shot schedules"),
        (name = "findings", description = "Findings across runs and their triage"),
        (name = "maintenance", description = "Maintenance windows"),
        (name = "scanners", description = "The scanners this server runs"),
        (name = "replicas", description = "The serve replicas sharing this database (admin only)"),
        (name = "registries", description = "Registries, their discoveries, and the images and SBOMs found in them"),
        (name = "advisories", description = "Vulnerability advisories (OSV) and their imports"),
        (name = "policies", description = "Scan execution policies and their schema"),
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The admin token or a tenant token"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "report_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The per-scan report token a unit of work receives; valid until its scan ends",
                    ))
                    .build(),
            ),
        );
    }
}

/// Every endpoint with its OpenAPI operation. Adding an endpoint: a handler with
/// `#[utoipa::path]` in its module, and one `.routes(routes!(handler))` line in that
/// module's `routes()`.
pub fn api() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(health::routes())
        .merge(admin::routes())
        .merge(scanners::routes())
        .merge(scans::routes())
        .merge(schedules::routes())
        .merge(windows::routes())
        .merge(findings::routes())
        .merge(report::routes())
        .merge(replicas::routes())
        .merge(registries::routes())
        .merge(images::routes())
        .merge(pipeline::routes())
        .merge(advisories::routes())
        .merge(policies::routes())
}

/// The OpenAPI document of [`api`].
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = api().into_openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc
}

/// [`openapi`] as served: computed once.
fn openapi_bytes() -> axum::body::Bytes {
    static DOC: OnceLock<axum::body::Bytes> = OnceLock::new();
    DOC.get_or_init(|| match serde_json::to_vec(&openapi()) {
        Ok(v) => v.into(),
        // The document is plain data; serializing it cannot fail.
        Err(e) => format!("{{\"error\":\"internal\",\"message\":\"{e}\"}}").into(),
    })
    .clone()
}

/// Largest JSON request body accepted.
pub const MAX_BODY: usize = 1024 * 1024;

/// Longest request target (path and query) accepted.
pub const MAX_URI: usize = 8 * 1024;

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
}

async fn uri_limit(req: Request, next: Next) -> Response {
    let len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if len > MAX_URI {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("request target: {len} bytes, longer than the {MAX_URI}-byte limit"),
        )
        .into_response();
    }
    next.run(req).await
}

/// The whole HTTP API.
pub fn router(state: Arc<AppState>) -> Router {
    let (router, _) = api().split_for_parts();
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(uri_limit))
        .layer(axum::middleware::from_fn(audit::middleware))
        .layer(axum::middleware::from_fn(request_id::middleware))
        .with_state(state)
}
