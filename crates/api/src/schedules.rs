//! Schedule endpoints: `GET/POST /scans/schedule`, `GET/PATCH/DELETE
//! /scans/schedule/:id`. Every write recomputes `next_fire_at` with the core's pure functions.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use scanplane_core::duration::format_duration;
use scanplane_core::limits::DurationLimit;
use scanplane_core::maintenance::WindowAction;
use scanplane_core::schedule::{
    initial_ticks, Cadence, MissedTickPolicy, Schedule, ScheduleStatus,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::{self, ApiError};
use crate::extract::{cursor, AppJson, AppPath, AppQuery};
use crate::scans::{page_limit, validate_scan_input};
use crate::tenancy::{listing_scope, tenant_name, TenantNames};
use crate::{fmt_ts, parse_ts, AppState, Page};

/// Body of `POST /scans/schedule`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleCreate {
    pub name: String,
    /// Cron expression, 5 fields or 6 with seconds. Exclusive with `time`.
    pub cron_exp: Option<String>,
    /// One-shot RFC 3339 time. Exclusive with `cron_exp`.
    pub time: Option<String>,
    /// IANA time zone of `cron_exp` (default UTC).
    pub timezone: Option<String>,
    pub scanner: String,
    #[serde(default)]
    pub target_accounts: Vec<String>,
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub billing: bool,
    pub enabled: Option<bool>,
    #[schema(value_type = Object)]
    pub options: Option<serde_json::Value>,
    /// `catch_up_once` (default) or `skip`.
    pub missed_tick_policy: Option<String>,
    /// A tick later than this (e.g. `10m`) is never started.
    pub starting_deadline: Option<String>,
    /// Spread each tick over this window (e.g. `15m`).
    pub jitter: Option<String>,
    /// `hold` (default) or `skip` during maintenance windows.
    pub on_maintenance: Option<String>,
}

/// Body of `PATCH /scans/schedule/:id`: every field optional.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SchedulePatch {
    pub name: Option<String>,
    pub cron_exp: Option<String>,
    pub time: Option<String>,
    pub timezone: Option<String>,
    pub scanner: Option<String>,
    pub target_accounts: Option<Vec<String>>,
    pub targets: Option<Vec<String>>,
    pub billing: Option<bool>,
    pub enabled: Option<bool>,
    #[schema(value_type = Object)]
    pub options: Option<serde_json::Value>,
    pub missed_tick_policy: Option<String>,
    pub starting_deadline: Option<String>,
    pub jitter: Option<String>,
    pub on_maintenance: Option<String>,
}

/// A schedule as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleView {
    pub id: String,
    /// The owning tenant's name.
    pub tenant: String,
    pub name: String,
    pub cron_exp: Option<String>,
    pub time: Option<String>,
    pub timezone: String,
    pub scanner: String,
    pub target_accounts: Vec<String>,
    pub targets: Vec<String>,
    pub billing: bool,
    pub enabled: bool,
    #[schema(value_type = Object)]
    pub options: serde_json::Value,
    /// `active` (it will fire), `disabled` (`enabled` is false) or `completed` (a one-shot
    /// schedule that fired).
    pub status: String,
    pub missed_tick_policy: String,
    pub starting_deadline: Option<String>,
    pub jitter: Option<String>,
    pub on_maintenance: String,
    /// The period of an interval schedule (a registry's `every`), e.g. `6h`; null for cron
    /// and one-shot schedules.
    pub every: Option<String>,
    /// When the schedule next fires (its tick plus jitter); null when disabled or completed.
    pub next_fire_at: Option<String>,
    pub last_fired_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Schedule> for ScheduleView {
    fn from(s: Schedule) -> Self {
        let (cron_exp, time, timezone) = match &s.cadence {
            Cadence::Cron { expr, timezone } => {
                (Some(expr.clone()), None, timezone.name().to_string())
            }
            Cadence::Once { at } => (None, Some(fmt_ts(*at)), "UTC".to_string()),
            Cadence::Every { .. } => (None, None, "UTC".to_string()),
        };
        let every = match &s.cadence {
            Cadence::Every { period, .. } => {
                Some(scanplane_core::duration::format_duration(*period))
            }
            _ => None,
        };
        let (accounts, targets): (Vec<String>, Vec<String>) = s
            .targets
            .iter()
            .cloned()
            .partition(|t| t.starts_with("account://"));
        ScheduleView {
            tenant: s.tenant_id.clone(),
            id: s.id,
            name: s.name,
            cron_exp,
            time,
            timezone,
            scanner: s.scanner,
            target_accounts: accounts
                .iter()
                .map(|a| a.trim_start_matches("account://").to_string())
                .collect(),
            targets,
            billing: s.billing,
            enabled: s.enabled,
            options: serde_json::from_str(&s.options).unwrap_or(serde_json::Value::Null),
            status: if !s.enabled && s.status == ScheduleStatus::Active {
                "disabled".to_string()
            } else {
                s.status.to_string()
            },
            missed_tick_policy: s.missed_tick_policy.as_str().to_string(),
            starting_deadline: s.starting_deadline.map(format_duration),
            jitter: s.jitter.map(format_duration),
            on_maintenance: s.on_maintenance.as_str().to_string(),
            every,
            next_fire_at: s.next_fire_at.map(fmt_ts),
            last_fired_at: s.last_fired_at.map(fmt_ts),
            created_at: fmt_ts(s.created_at),
            updated_at: fmt_ts(s.updated_at),
        }
    }
}

pub(crate) fn duration_field(
    field: &str,
    limit: DurationLimit,
    v: &str,
) -> Result<Duration, ApiError> {
    limit.parse(v).map_err(|e| ApiError::invalid(field, e))
}

pub(crate) fn cadence(
    cron_exp: Option<&str>,
    time: Option<&str>,
    timezone: Option<&str>,
) -> Result<Cadence, ApiError> {
    match (cron_exp, time) {
        (Some(_), Some(_)) => Err(ApiError::invalid(
            "cron_exp, time",
            "give either cron_exp or time, not both",
        )),
        (None, None) => Err(ApiError::invalid(
            "cron_exp, time",
            "one of them is required",
        )),
        (Some(expr), None) => Cadence::cron(expr, timezone.unwrap_or("UTC")).map_err(|e| {
            let field = if matches!(
                e,
                scanplane_core::schedule::CadenceError::UnknownTimezone(_)
            ) {
                "timezone"
            } else {
                "cron_exp"
            };
            ApiError::invalid(field, e)
        }),
        (None, Some(t)) => Ok(Cadence::Once {
            at: parse_ts("time", t)?,
        }),
    }
}

/// A one-shot time must be ahead: one in the past would fire at once (or never, if missed
/// ticks are skipped), which is not what anyone writing a date means.
fn future_once(cadence: &Cadence, now: chrono::DateTime<chrono::Utc>) -> Result<(), ApiError> {
    match cadence {
        Cadence::Once { at } if *at <= now => Err(ApiError::invalid(
            "time",
            format!(
                "{} is in the past (now is {}); give a future time, or use POST /scans/now to scan now",
                fmt_ts(*at),
                fmt_ts(now)
            ),
        )),
        _ => Ok(()),
    }
}

pub(crate) fn validate_name(name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() || name.len() > 200 {
        return Err(ApiError::invalid("name", "must be 1-200 characters"));
    }
    Ok(())
}

/// Recomputes the next tick from now: a schedule never fires for a time before its edit.
pub(crate) fn reschedule(
    s: &mut Schedule,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), ApiError> {
    if s.enabled
        && (s.status == ScheduleStatus::Active
            || matches!(s.cadence, Cadence::Once { at } if at > now))
    {
        let (tick, fire) = initial_ticks(&s.id, &s.cadence, s.jitter, now)
            .map_err(|e| ApiError::invalid("cron_exp", e))?;
        s.next_tick = tick;
        s.next_fire_at = fire;
        s.status = if tick.is_some() {
            ScheduleStatus::Active
        } else {
            ScheduleStatus::Completed
        };
    } else {
        s.next_tick = None;
        s.next_fire_at = None;
    }
    Ok(())
}

/// Creates a schedule.
#[utoipa::path(post, path = "/scans/schedule", request_body = ScheduleCreate, tag = "schedules",
    security(("bearer" = [])),
    responses((status = 201, body = ScheduleView),
        (status = 409, body = error::ErrorBody, description = "The tenant already has a schedule of this name"),
        error::Auth, error::JsonBody, error::Common))]
pub async fn create_schedule(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    AppJson(req): AppJson<ScheduleCreate>,
) -> Result<(StatusCode, Json<ScheduleView>), ApiError> {
    validate_name(&req.name)?;
    let cadence = cadence(
        req.cron_exp.as_deref(),
        req.time.as_deref(),
        req.timezone.as_deref(),
    )?;
    let v = validate_scan_input(
        &state,
        &req.scanner,
        &req.target_accounts,
        &req.targets,
        req.options.as_ref(),
        "target_accounts",
    )?;
    let now = state.clock.now();
    future_once(&cadence, now)?;
    let mut s = Schedule {
        id: uuid::Uuid::now_v7().to_string(),
        tenant_id: caller.tenant.id.clone(),
        project_id: None,
        name: req.name,
        cadence,
        scanner: v.scanner,
        targets: v.targets,
        billing: req.billing,
        options: v.options,
        enabled: req.enabled.unwrap_or(true),
        status: ScheduleStatus::Active,
        missed_tick_policy: req
            .missed_tick_policy
            .as_deref()
            .map(str::parse::<MissedTickPolicy>)
            .transpose()
            .map_err(|e| ApiError::invalid("missed_tick_policy", e))?
            .unwrap_or(MissedTickPolicy::CatchUpOnce),
        starting_deadline: req
            .starting_deadline
            .as_deref()
            .map(|d| duration_field("starting_deadline", DurationLimit::StartingDeadline, d))
            .transpose()?,
        jitter: req
            .jitter
            .as_deref()
            .map(|d| duration_field("jitter", DurationLimit::Jitter, d))
            .transpose()?,
        on_maintenance: req
            .on_maintenance
            .as_deref()
            .map(str::parse::<WindowAction>)
            .transpose()
            .map_err(|e| ApiError::invalid("on_maintenance", e))?
            .unwrap_or(WindowAction::Hold),
        next_tick: None,
        next_fire_at: None,
        last_fired_at: None,
        created_at: now,
        updated_at: now,
    };
    reschedule(&mut s, now)?;
    state.store.create_schedule(&s).await?;
    tracing::info!(schedule_id = %s.id, name = %s.name, next_fire_at = ?s.next_fire_at, "schedule created");
    state.wake_scheduler.notify_one();
    let mut view = ScheduleView::from(s);
    view.tenant.clone_from(&caller.tenant.name);
    Ok((StatusCode::CREATED, Json(view)))
}

/// Query of `GET /scans/schedule`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ScheduleQuery {
    /// Only this tenant's schedules (a tenant name; the admin sees every tenant's by default).
    pub tenant: Option<String>,
    /// Cursor from the previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size, 1-1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// Lists schedules.
#[utoipa::path(get, path = "/scans/schedule", params(ScheduleQuery), tag = "schedules",
    security(("bearer" = [])),
    responses((status = 200, body = Page<ScheduleView>), error::Auth, error::QueryParams, error::Common))]
pub async fn list_schedules(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    AppQuery(q): AppQuery<ScheduleQuery>,
) -> Result<Json<Page<ScheduleView>>, ApiError> {
    let limit = page_limit(q.limit)?;
    let after = cursor(q.cursor)?;
    let scope = listing_scope(&state, &caller, q.tenant.as_deref()).await?;
    let items = state
        .store
        .list_schedules(scope.as_deref(), after.as_deref(), limit)
        .await?;
    let names = TenantNames::for_caller(&state, &caller).await?;
    Ok(Json(Page::of(
        items,
        limit,
        |s| &s.id,
        |s| {
            let mut v = ScheduleView::from(s);
            names.name(&mut v.tenant);
            v
        },
    )))
}

/// One schedule.
#[utoipa::path(get, path = "/scans/schedule/{id}", tag = "schedules",
    params(("id" = String, Path, description = "Schedule id")),
    security(("bearer" = [])),
    responses((status = 200, body = ScheduleView), error::Auth, error::PathId, error::Common))]
pub async fn get_schedule(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    AppPath(id): AppPath<String>,
) -> Result<Json<ScheduleView>, ApiError> {
    let s = state
        .store
        .schedule(caller.scope(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("schedule", &id))?;
    let mut view = ScheduleView::from(s);
    view.tenant = tenant_name(&state, &caller, &view.tenant).await?;
    Ok(Json(view))
}

/// Changes some fields of a schedule and recomputes `next_fire_at`.
#[utoipa::path(patch, path = "/scans/schedule/{id}", request_body = SchedulePatch, tag = "schedules",
    params(("id" = String, Path, description = "Schedule id")),
    security(("bearer" = [])),
    responses((status = 200, body = ScheduleView),
        (status = 409, body = error::ErrorBody, description = "The new name is another schedule's of the tenant"),
        error::Auth, error::PathId, error::JsonBody, error::Common))]
pub async fn patch_schedule(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    AppPath(id): AppPath<String>,
    AppJson(p): AppJson<SchedulePatch>,
) -> Result<Json<ScheduleView>, ApiError> {
    let mut s = state
        .store
        .schedule(caller.scope(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("schedule", &id))?;
    if let Some(name) = p.name {
        validate_name(&name)?;
        s.name = name;
    }
    let cadence_changed = p.cron_exp.is_some() || p.time.is_some() || p.timezone.is_some();
    if cadence_changed {
        let (cur_expr, cur_tz) = match &s.cadence {
            Cadence::Cron { expr, timezone } => {
                (Some(expr.clone()), Some(timezone.name().to_string()))
            }
            Cadence::Once { .. } | Cadence::Every { .. } => (None, None),
        };
        s.cadence = match (&p.cron_exp, &p.time) {
            (Some(_), _) | (None, None) => cadence(
                p.cron_exp.as_deref().or(cur_expr.as_deref()),
                p.time.as_deref(),
                p.timezone.as_deref().or(cur_tz.as_deref()),
            )?,
            (None, Some(_)) => cadence(None, p.time.as_deref(), None)?,
        };
        if p.timezone.is_some() && matches!(s.cadence, Cadence::Once { .. }) {
            return Err(ApiError::invalid(
                "timezone",
                "applies only to cron_exp schedules",
            ));
        }
        future_once(&s.cadence, state.clock.now())?;
        // A new cadence re-arms a completed one-shot schedule.
        s.status = ScheduleStatus::Active;
    }
    if p.scanner.is_some()
        || p.target_accounts.is_some()
        || p.targets.is_some()
        || p.options.is_some()
    {
        let (cur_accounts, cur_targets): (Vec<String>, Vec<String>) = s
            .targets
            .iter()
            .cloned()
            .partition(|t| t.starts_with("account://"));
        let accounts: Vec<String> = p.target_accounts.unwrap_or_else(|| {
            cur_accounts
                .iter()
                .map(|a| a.trim_start_matches("account://").to_string())
                .collect()
        });
        let targets = p.targets.unwrap_or(cur_targets);
        let scanner = p.scanner.unwrap_or_else(|| s.scanner.clone());
        let options = match p.options {
            Some(o) => o,
            None => serde_json::from_str(&s.options).unwrap_or_else(|_| serde_json::json!({})),
        };
        let v = validate_scan_input(
            &state,
            &scanner,
            &accounts,
            &targets,
            Some(&options),
            "target_accounts",
        )?;
        s.scanner = v.scanner;
        s.targets = v.targets;
        s.options = v.options;
    }
    if let Some(b) = p.billing {
        s.billing = b;
    }
    if let Some(e) = p.enabled {
        s.enabled = e;
    }
    if let Some(m) = p.missed_tick_policy {
        s.missed_tick_policy = m
            .parse()
            .map_err(|e| ApiError::invalid("missed_tick_policy", e))?;
    }
    if let Some(d) = p.starting_deadline {
        s.starting_deadline = Some(duration_field(
            "starting_deadline",
            DurationLimit::StartingDeadline,
            &d,
        )?);
    }
    if let Some(j) = p.jitter {
        s.jitter = Some(duration_field("jitter", DurationLimit::Jitter, &j)?);
    }
    if let Some(m) = p.on_maintenance {
        s.on_maintenance = m
            .parse()
            .map_err(|e| ApiError::invalid("on_maintenance", e))?;
    }
    let now = state.clock.now();
    s.updated_at = now;
    reschedule(&mut s, now)?;
    state.store.update_schedule(&s).await?;
    state.wake_scheduler.notify_one();
    let mut view = ScheduleView::from(s);
    view.tenant = tenant_name(&state, &caller, &view.tenant).await?;
    Ok(Json(view))
}

/// Deletes a schedule; scans it already created stay.
#[utoipa::path(delete, path = "/scans/schedule/{id}", tag = "schedules",
    params(("id" = String, Path, description = "Schedule id")),
    security(("bearer" = [])),
    responses((status = 204, description = "Deleted"), error::Auth, error::PathId, error::Common))]
pub async fn delete_schedule(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    AppPath(id): AppPath<String>,
) -> Result<StatusCode, ApiError> {
    if state.store.delete_schedule(caller.scope(), &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("schedule", &id))
    }
}

pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list_schedules, create_schedule))
        .routes(routes!(get_schedule, patch_schedule, delete_schedule))
}
