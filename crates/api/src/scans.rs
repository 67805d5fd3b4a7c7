//! Scan endpoints: `POST /scans/now` (answers the run id) and `/api/v1/scans` (answers the
//! whole scan), listing with filters, one scan, and cancelling.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use scanplane_core::maintenance::WindowAction;
use scanplane_core::scan::{Scan, ScanStatus, Trigger};
use scanplane_core::target::Target;
use scanplane_store::{NewScan, ScanChange, ScanFilter};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::{self, ApiError};
use crate::extract::{cursor, AppJson, AppPath, AppQuery};
use crate::tenancy::{listing_scope, tenant_name, TenantNames};
use crate::{fmt_ts, parse_ts, AppState, Page};

/// Most targets one scan may name.
pub const MAX_TARGETS: usize = 10_000;

/// Body of `POST /scans/now` and `POST /api/v1/scans`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanRequest {
    /// Scanner name, see `GET /api/v1/scanners`.
    pub scanner: String,
    /// Cloud account ids; passed to the scanner as `ACCOUNT_IDS`.
    #[serde(default)]
    pub accounts: Vec<String>,
    /// Targets: `host[:port[-port]]`, network ranges (`10.0.0.0/24`, `fd00::/120`,
    /// `10.0.0.1-20`), URLs, `image://REF`, `registry://HOST/REPO`,
    /// `cluster://NAME?namespaces=...`, `fs://PATH`, `config://PATH`.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Billing flag passed to the scanner as `BILLING`.
    #[serde(default)]
    pub billing: bool,
    /// The scanner's own options, validated by the scanner.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub options: Option<serde_json::Value>,
}

/// Answer of `POST /scans/now`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScanAccepted {
    pub scan_run_id: String,
    pub status: String,
}

/// A scan as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScanView {
    pub id: String,
    /// The owning tenant's name.
    pub tenant: String,
    pub scan_run_id: String,
    pub schedule_id: Option<String>,
    pub fire_time: Option<String>,
    pub trigger: String,
    pub scanner: String,
    pub targets: Vec<String>,
    pub accounts: Vec<String>,
    pub billing: bool,
    #[schema(value_type = Object)]
    pub options: serde_json::Value,
    pub status: String,
    /// Why the scan is in its current state (e.g. what it waits for).
    pub reason: String,
    pub attempts: u32,
    pub created_at: String,
    pub updated_at: String,
    pub admitted_at: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Run time, e.g. `1m30s`, once started.
    pub duration: Option<String>,
    pub duration_seconds: Option<f64>,
    pub accounts_scanned: Vec<String>,
    pub targets_scanned: Vec<String>,
    /// The unit of work: process id, Job name, message id.
    pub executor_ref: Option<String>,
    pub error: Option<String>,
    pub findings_count: u64,
    /// Findings the scan's report dropped as malformed or oversized; the rest were stored.
    pub findings_rejected: u64,
    /// The first reasons for those rejections, then notes on findings that were stored
    /// with their detail cut to fit (not counted in `findings_rejected`).
    pub rejections: Vec<String>,
    /// The replica that owns the current attempt (see `GET /api/v1/replicas`), while the
    /// scan is dispatched or running; afterwards the one that ran its last attempt.
    pub replica: Option<String>,
    /// Attempts lost with their replica (a control-plane crash or stop): counted in
    /// `attempts`, not against the retry budget.
    pub lost_attempts: u32,
}

impl From<Scan> for ScanView {
    fn from(s: Scan) -> Self {
        let duration = s.duration();
        let accounts = s.accounts();
        let accounts_scanned = s
            .targets_scanned
            .iter()
            .filter_map(|t| t.strip_prefix("account://").map(str::to_string))
            .collect();
        ScanView {
            tenant: s.tenant_id.clone(),
            scan_run_id: s.id.clone(),
            id: s.id,
            schedule_id: s.schedule_id,
            fire_time: s.fire_time.map(fmt_ts),
            trigger: s.trigger.to_string(),
            scanner: s.scanner,
            targets: s.targets,
            accounts,
            billing: s.billing,
            options: serde_json::from_str(&s.options).unwrap_or(serde_json::Value::Null),
            status: s.status.to_string(),
            reason: s.reason,
            attempts: s.attempts,
            created_at: fmt_ts(s.created_at),
            updated_at: fmt_ts(s.updated_at),
            admitted_at: s.admitted_at.map(fmt_ts),
            started_at: s.started_at.map(fmt_ts),
            finished_at: s.finished_at.map(fmt_ts),
            duration: duration
                .and_then(|d| d.to_std().ok())
                .map(scanplane_core::duration::format_duration),
            duration_seconds: duration.map(|d| d.num_milliseconds() as f64 / 1000.0),
            accounts_scanned,
            targets_scanned: s.targets_scanned,
            executor_ref: s.executor_ref,
            error: s.error,
            findings_count: s.findings_count,
            findings_rejected: s.findings_rejected,
            rejections: s.rejections.clone(),
            replica: s.owner,
            lost_attempts: s.lost_attempts,
        }
    }
}

/// Validated scan input shared by on-demand scans and schedules.
pub struct ValidScan {
    pub scanner: String,
    pub provider: Option<String>,
    pub targets: Vec<String>,
    pub options: String,
    /// The options that are scope, canonical (see [`ScannerCatalog::scope_options`]).
    pub scope_options: String,
}

/// Checks scanner, accounts, targets and options; returns canonical targets.
pub fn validate_scan_input(
    state: &AppState,
    scanner: &str,
    accounts: &[String],
    targets: &[String],
    options: Option<&serde_json::Value>,
    accounts_field: &str,
) -> Result<ValidScan, ApiError> {
    let def = state.catalog.definition(scanner).ok_or_else(|| {
        let names: Vec<String> = state
            .catalog
            .definitions()
            .into_iter()
            .map(|d| d.name)
            .collect();
        ApiError::invalid(
            "scanner",
            format!(
                "unknown scanner {scanner:?}; available: {}",
                names.join(", ")
            ),
        )
    })?;
    if accounts.is_empty() && targets.is_empty() {
        return Err(ApiError::invalid(
            &format!("{accounts_field}, targets"),
            "at least one of them must be non-empty",
        ));
    }
    if accounts.len() + targets.len() > MAX_TARGETS {
        return Err(ApiError::invalid(
            "targets",
            format!("at most {MAX_TARGETS} targets and accounts per scan"),
        ));
    }
    let mut parsed = Vec::with_capacity(accounts.len() + targets.len());
    for (i, a) in accounts.iter().enumerate() {
        parsed.push(
            Target::account(a)
                .map_err(|e| ApiError::invalid(&format!("{accounts_field}[{i}]"), e))?,
        );
    }
    for (i, t) in targets.iter().enumerate() {
        parsed.push(Target::parse(t).map_err(|e| ApiError::invalid(&format!("targets[{i}]"), e))?);
    }
    let options = options.cloned().unwrap_or_else(|| serde_json::json!({}));
    if !options.is_object() {
        return Err(ApiError::invalid("options", "must be a JSON object"));
    }
    state
        .catalog
        .validate(scanner, &parsed, &options)
        .map_err(|r| ApiError::invalid(r.field, r.message))?;
    Ok(ValidScan {
        scanner: scanner.to_string(),
        provider: def.provider,
        targets: parsed.iter().map(ToString::to_string).collect(),
        scope_options: state.catalog.scope_options(scanner, &options),
        options: options.to_string(),
    })
}

async fn create(state: &AppState, caller: &Caller, req: ScanRequest) -> Result<Scan, ApiError> {
    let v = validate_scan_input(
        state,
        &req.scanner,
        &req.accounts,
        &req.targets,
        req.options.as_ref(),
        "accounts",
    )?;
    let scan = state
        .store
        .create_scan(
            NewScan {
                tenant_id: caller.tenant.id.clone(),
                project_id: None,
                schedule_id: None,
                fire_time: None,
                trigger: Trigger::OnDemand,
                scanner: v.scanner,
                provider: v.provider,
                targets: v.targets,
                billing: req.billing,
                options: v.options,
                scope_options: v.scope_options,
                on_maintenance: WindowAction::Hold,
            },
            state.clock.now(),
        )
        .await?;
    tracing::info!(scan_run_id = %scan.id, scanner = %scan.scanner, targets = scan.targets.len(), "scan queued");
    state.wake_dispatcher.notify_one();
    Ok(scan)
}

/// Triggers an on-demand scan; answers its run id.
#[utoipa::path(post, path = "/scans/now", request_body = ScanRequest, tag = "scans",
    security(("bearer" = [])),
    responses((status = 202, body = ScanAccepted), error::Auth, error::JsonBody, error::Common))]
pub async fn scan_now(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    AppJson(req): AppJson<ScanRequest>,
) -> Result<(StatusCode, Json<ScanAccepted>), ApiError> {
    let scan = create(&state, &caller, req).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(ScanAccepted {
            scan_run_id: scan.id,
            status: scan.status.to_string(),
        }),
    ))
}

/// Creates a scan; answers the full scan.
#[utoipa::path(post, path = "/api/v1/scans", request_body = ScanRequest, tag = "scans",
    security(("bearer" = [])),
    responses((status = 202, body = ScanView), error::Auth, error::JsonBody, error::Common))]
pub async fn create_scan(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    AppJson(req): AppJson<ScanRequest>,
) -> Result<(StatusCode, Json<ScanView>), ApiError> {
    let scan = create(&state, &caller, req).await?;
    let mut view = ScanView::from(scan);
    view.tenant.clone_from(&caller.tenant.name);
    Ok((StatusCode::ACCEPTED, Json(view)))
}

/// Query of `GET /api/v1/scans`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ScanQuery {
    /// `queued`, `admitted`, `dispatched`, `running`, `succeeded`, `failed`, `timed_out`,
    /// `cancelled` or `skipped`.
    pub status: Option<String>,
    pub scanner: Option<String>,
    /// Schedule id.
    pub schedule: Option<String>,
    /// `on_demand` or `schedule`.
    pub trigger: Option<String>,
    /// RFC 3339; scans created at or after.
    pub since: Option<String>,
    /// RFC 3339; scans created before.
    pub until: Option<String>,
    /// Only this tenant's scans (a tenant name; the admin sees every tenant's by default).
    pub tenant: Option<String>,
    /// Cursor from the previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size, 1-1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// A scan's view with its tenant's name.
fn named_view(scan: Scan, names: &TenantNames) -> ScanView {
    let mut v = ScanView::from(scan);
    names.name(&mut v.tenant);
    v
}

pub fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit {
        None => Ok(100),
        Some(l) if (1..=1000).contains(&l) => Ok(l),
        Some(l) => Err(ApiError::invalid("limit", format!("{l} is outside 1-1000"))),
    }
}

/// Lists scans, newest first, with filters and cursor pagination.
#[utoipa::path(get, path = "/api/v1/scans", params(ScanQuery), tag = "scans",
    security(("bearer" = [])),
    responses((status = 200, body = Page<ScanView>), error::Auth, error::QueryParams, error::Common))]
pub async fn list_scans(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    AppQuery(q): AppQuery<ScanQuery>,
) -> Result<Json<Page<ScanView>>, ApiError> {
    let limit = page_limit(q.limit)?;
    let filter = ScanFilter {
        status: q
            .status
            .as_deref()
            .map(str::parse::<ScanStatus>)
            .transpose()
            .map_err(|e| ApiError::invalid("status", e))?,
        scanner: q.scanner,
        schedule_id: q.schedule,
        trigger: q
            .trigger
            .as_deref()
            .map(str::parse::<Trigger>)
            .transpose()
            .map_err(|e| ApiError::invalid("trigger", e))?,
        created_after: q
            .since
            .as_deref()
            .map(|s| parse_ts("since", s))
            .transpose()?,
        created_before: q
            .until
            .as_deref()
            .map(|s| parse_ts("until", s))
            .transpose()?,
        after: cursor(q.cursor)?,
        limit,
    };
    let scope = listing_scope(&state, &caller, q.tenant.as_deref()).await?;
    let scans = state.store.list_scans(scope.as_deref(), &filter).await?;
    let names = TenantNames::for_caller(&state, &caller).await?;
    Ok(Json(Page::of(
        scans,
        limit,
        |s| &s.id,
        |s| named_view(s, &names),
    )))
}

/// One scan: status, reason, timings, duration, accounts scanned, executor reference, error.
#[utoipa::path(get, path = "/api/v1/scans/{id}", tag = "scans",
    params(("id" = String, Path, description = "Scan id")),
    security(("bearer" = [])),
    responses((status = 200, body = ScanView), error::Auth, error::PathId, error::Common))]
pub async fn get_scan(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    AppPath(id): AppPath<String>,
) -> Result<Json<ScanView>, ApiError> {
    let scan = state
        .store
        .scan(caller.scope(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("scan", &id))?;
    let mut view = ScanView::from(scan);
    view.tenant = tenant_name(&state, &caller, &view.tenant).await?;
    Ok(Json(view))
}

/// Cancels a scan: it ends `cancelled`, its unit of work is stopped and its slot released.
#[utoipa::path(delete, path = "/api/v1/scans/{id}", tag = "scans",
    params(("id" = String, Path, description = "Scan id")),
    security(("bearer" = [])),
    responses((status = 200, body = ScanView), (status = 409, body = crate::error::ErrorBody, description = "The scan already ended"),
        error::Auth, error::PathId, error::Common))]
pub async fn cancel_scan(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    AppPath(id): AppPath<String>,
) -> Result<Json<ScanView>, ApiError> {
    let scan = state
        .store
        .scan(caller.scope(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("scan", &id))?;
    if scan.status.is_terminal() {
        return Err(ApiError::conflict(format!(
            "scan {id} already ended as {}",
            scan.status
        )));
    }
    let who = if caller.admin {
        "admin".to_string()
    } else {
        format!("tenant {}", caller.tenant.name)
    };
    let change = ScanChange {
        reason: format!("cancelled by {who}"),
        ..Default::default()
    };
    let scan = state
        .store
        .transition(&id, ScanStatus::Cancelled, &change, state.clock.now())
        .await?;
    tracing::info!(scan_run_id = %id, "scan cancelled");
    // The dispatcher stops the unit of work of every scan that ended while it ran.
    state.wake_dispatcher.notify_one();
    let mut view = ScanView::from(scan);
    view.tenant = tenant_name(&state, &caller, &view.tenant).await?;
    Ok(Json(view))
}

pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(scan_now))
        .routes(routes!(list_scans, create_scan))
        .routes(routes!(get_scan, cancel_scan))
}
