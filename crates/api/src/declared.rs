//! Schedules and scans declared by resources outside the API (the operator's
//! `ScheduledScan`s and `Scan`s): the same validation and storage as `POST /scans/schedule`
//! and `POST /api/v1/scans`, keyed by the id the resource chose, so applying one declaration
//! again changes nothing (a resync never moves a schedule's next run nor starts a second
//! scan). Errors name the resource's field (`spec.schedule`), not the API's.

use scanplane_core::annotations::ScanCadence;
use scanplane_core::declared::{resource_field, DeclaredPolicy, DeclaredScan, DeclaredSchedule};
use scanplane_core::finding::Severity;
use scanplane_core::limits::DurationLimit;
use scanplane_core::maintenance::WindowAction;
use scanplane_core::scan::{Scan, ScanStatus, Trigger};
use scanplane_core::schedule::{Cadence, MissedTickPolicy, Schedule, ScheduleStatus};
use scanplane_protocol::registry::DeclaredRegistry;
use scanplane_store::{NewScan, RegistryRecord, ScanChange};

use crate::error::ApiError;
use crate::scans::validate_scan_input;
use crate::schedules::{cadence, duration_field, reschedule, validate_name};
use crate::AppState;

/// Creates or updates the schedule `d.id` so that it is what `d` states. The next run is
/// recomputed only when the timing (cadence, jitter, enabled) changed.
pub async fn apply_declared_schedule(
    state: &AppState,
    d: &DeclaredSchedule,
) -> Result<Schedule, ApiError> {
    let (cadence_now, jitter, scan) = validate(state, d).map_err(in_resource_terms)?;
    let tenant = state.store.ensure_tenant(&d.tenant).await?;
    let now = state.clock.now();
    let existing = match state.store.schedule(None, &d.id).await? {
        // The resource now maps to another tenant: its old schedule goes, a new one comes.
        Some(s) if s.tenant_id != tenant.id => {
            state.store.delete_schedule(None, &d.id).await?;
            None
        }
        other => other,
    };
    let cadence_new = match (cadence_now, &existing) {
        // An unchanged interval keeps its anchor, so a resync does not move the next run.
        (
            Cadence::Every { period, .. },
            Some(Schedule {
                cadence:
                    Cadence::Every {
                        period: old,
                        anchor,
                    },
                ..
            }),
        ) if period == *old => Cadence::Every {
            period,
            anchor: *anchor,
        },
        (Cadence::Every { period, .. }, _) => Cadence::Every {
            period,
            anchor: now,
        },
        (c, _) => c,
    };
    match existing {
        Some(mut s) => {
            let timing_changed =
                s.cadence != cadence_new || s.jitter != jitter || s.enabled != d.enabled;
            let changed = timing_changed
                || s.name != d.name
                || s.scanner != scan.scanner
                || s.targets != scan.targets
                || s.options != scan.options;
            if !changed {
                return Ok(s);
            }
            s.name.clone_from(&d.name);
            s.cadence = cadence_new;
            s.jitter = jitter;
            s.enabled = d.enabled;
            s.scanner = scan.scanner;
            s.targets = scan.targets;
            s.options = scan.options;
            s.updated_at = now;
            if timing_changed {
                s.status = ScheduleStatus::Active;
                reschedule(&mut s, now).map_err(in_resource_terms)?;
            }
            state.store.update_schedule(&s).await?;
            tracing::info!(schedule_id = %s.id, name = %s.name, "declared schedule updated");
            state.wake_scheduler.notify_one();
            Ok(s)
        }
        None => {
            let mut s = Schedule {
                id: d.id.clone(),
                tenant_id: tenant.id,
                project_id: None,
                name: d.name.clone(),
                cadence: cadence_new,
                scanner: scan.scanner,
                targets: scan.targets,
                billing: false,
                options: scan.options,
                enabled: d.enabled,
                status: ScheduleStatus::Active,
                missed_tick_policy: MissedTickPolicy::CatchUpOnce,
                starting_deadline: None,
                jitter,
                on_maintenance: WindowAction::Hold,
                next_tick: None,
                next_fire_at: None,
                last_fired_at: None,
                created_at: now,
                updated_at: now,
            };
            reschedule(&mut s, now).map_err(in_resource_terms)?;
            state.store.create_schedule(&s).await?;
            tracing::info!(schedule_id = %s.id, name = %s.name, "declared schedule created");
            state.wake_scheduler.notify_one();
            Ok(s)
        }
    }
}

/// The newest scan schedule `schedule_id` of tenant `tenant_id` started.
pub async fn last_run_of_schedule(
    state: &AppState,
    tenant_id: &str,
    schedule_id: &str,
) -> Result<Option<Scan>, ApiError> {
    let filter = scanplane_store::ScanFilter {
        schedule_id: Some(schedule_id.to_string()),
        limit: 1,
        ..Default::default()
    };
    Ok(state
        .store
        .list_scans(Some(tenant_id), &filter)
        .await?
        .into_iter()
        .next())
}

/// Deletes the schedule `id` declared for tenant `tenant`; true when one was there. Scans it
/// already started stay, as with `DELETE /scans/schedule/:id`.
pub async fn delete_declared_schedule(
    state: &AppState,
    tenant: &str,
    id: &str,
) -> Result<bool, ApiError> {
    let tenant = state.store.ensure_tenant(tenant).await?;
    Ok(state.store.delete_schedule(Some(&tenant.id), id).await?)
}

type Validated = (
    Cadence,
    Option<std::time::Duration>,
    crate::scans::ValidScan,
);

fn validate(state: &AppState, d: &DeclaredSchedule) -> Result<Validated, ApiError> {
    validate_name(&d.name)?;
    let c = match &d.cadence {
        ScanCadence::Cron(expr) => cadence(Some(expr), None, d.timezone.as_deref())?,
        ScanCadence::Every(period) => {
            if d.timezone.is_some() {
                return Err(ApiError::invalid(
                    "timezone",
                    "applies only to cron schedules, not to @every",
                ));
            }
            Cadence::Every {
                period: *period,
                anchor: state.clock.now(),
            }
        }
    };
    let jitter = d
        .jitter
        .as_deref()
        .map(|j| duration_field("jitter", DurationLimit::Jitter, j))
        .transpose()?;
    let options: Option<serde_json::Value> = d
        .options_json
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| ApiError::invalid("options", format!("not JSON: {e}")))?;
    let scan = validate_scan_input(
        state,
        &d.scanner,
        &[],
        &d.targets,
        options.as_ref(),
        "targets",
    )?;
    Ok((c, jitter, scan))
}

/// `cron_exp: problem` becomes `spec.schedule: problem`: the user edits the resource (a
/// ScheduledScan, whose scan is its `spec.template`).
fn in_resource_terms(e: ApiError) -> ApiError {
    in_terms(e, "spec.template")
}

/// The same for a Scan, whose scan is its `spec`.
fn in_scan_terms(e: ApiError) -> ApiError {
    in_terms(e, "spec")
}

fn in_terms(e: ApiError, scan_spec: &str) -> ApiError {
    if e.code != "invalid" {
        return e;
    }
    match e.message.split_once(": ") {
        Some((field, problem)) => ApiError::invalid(&resource_field(field, scan_spec), problem),
        None => e,
    }
}

/// Starts the scan run `d.id` unless it exists already (then answers it as it is).
pub async fn start_declared_scan(state: &AppState, d: &DeclaredScan) -> Result<Scan, ApiError> {
    let options: Option<serde_json::Value> = d
        .options_json
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| ApiError::invalid("options", format!("not JSON: {e}")))
        .map_err(in_scan_terms)?;
    let v = validate_scan_input(
        state,
        &d.scanner,
        &[],
        &d.targets,
        options.as_ref(),
        "targets",
    )
    .map_err(in_scan_terms)?;
    let tenant = state.store.ensure_tenant(&d.tenant).await?;
    if let Some(s) = state.store.scan(None, &d.id).await? {
        return owned_by(s, &tenant.id);
    }
    let new = NewScan {
        tenant_id: tenant.id.clone(),
        project_id: None,
        schedule_id: None,
        fire_time: None,
        trigger: Trigger::OnDemand,
        scanner: v.scanner,
        provider: v.provider,
        targets: v.targets,
        billing: false,
        options: v.options,
        scope_options: v.scope_options,
        on_maintenance: WindowAction::Hold,
    };
    match state
        .store
        .create_scan_with_id(&d.id, new, state.clock.now())
        .await
    {
        Ok(scan) => {
            tracing::info!(scan_run_id = %scan.id, scanner = %scan.scanner, "declared scan queued");
            state.wake_dispatcher.notify_one();
            Ok(scan)
        }
        // Another replica's reconcile made it meanwhile: the same run.
        Err(scanplane_store::StoreError::Conflict(_)) => match state.store.scan(None, &d.id).await?
        {
            Some(s) => owned_by(s, &tenant.id),
            None => Err(ApiError::conflict(format!(
                "scan {} could not be created",
                d.id
            ))),
        },
        Err(e) => Err(e.into()),
    }
}

fn owned_by(s: Scan, tenant_id: &str) -> Result<Scan, ApiError> {
    if s.tenant_id == tenant_id {
        Ok(s)
    } else {
        Err(ApiError::conflict(format!(
            "scan {} belongs to another tenant; a resource cannot move its runs",
            s.id
        )))
    }
}

/// The scan run `id` of tenant `tenant` and, once it ended, its findings by severity.
pub async fn declared_scan_run(
    state: &AppState,
    tenant: &str,
    id: &str,
) -> Result<Option<(Scan, Option<Vec<(Severity, u64)>>)>, ApiError> {
    let tenant = state.store.ensure_tenant(tenant).await?;
    let Some(scan) = state.store.scan(Some(&tenant.id), id).await? else {
        return Ok(None);
    };
    let counts = if scan.status.is_terminal() {
        Some(state.store.severity_counts(Some(&tenant.id), id).await?)
    } else {
        None
    };
    Ok(Some((scan, counts)))
}

/// Cancels the scan run `id` unless it already ended; its record stays.
pub async fn cancel_declared_scan(
    state: &AppState,
    tenant: &str,
    id: &str,
    reason: &str,
) -> Result<(), ApiError> {
    let tenant = state.store.ensure_tenant(tenant).await?;
    let Some(scan) = state.store.scan(Some(&tenant.id), id).await? else {
        return Ok(());
    };
    if scan.status.is_terminal() {
        return Ok(());
    }
    let change = ScanChange {
        reason: reason.to_string(),
        ..Default::default()
    };
    match state
        .store
        .transition(id, ScanStatus::Cancelled, &change, state.clock.now())
        .await
    {
        Ok(_) => {
            tracing::info!(scan_run_id = %id, %reason, "declared scan cancelled");
            state.wake_dispatcher.notify_one();
            Ok(())
        }
        // It ended meanwhile.
        Err(scanplane_store::StoreError::Illegal(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Creates or updates the registry `d.id` so that it is what `d` states, with its discovery
/// schedule in the same transaction. Applying the same declaration again writes nothing and
/// never moves the next discovery.
pub async fn apply_declared_registry(
    state: &AppState,
    d: &DeclaredRegistry,
) -> Result<RegistryRecord, ApiError> {
    use crate::registries::{
        auth_json, cadence as registry_cadence, definition_json, new_record,
        rearmed_discovery_schedule, validate_auth, validate_spec, CadenceRequest,
    };
    let now = state.clock.now();
    let mut spec = d.spec.clone();
    let host = validate_spec(&mut spec).map_err(in_registry_terms)?;
    if let Some(a) = &d.auth {
        validate_auth(a).map_err(in_registry_terms)?;
    }
    let discovery = d
        .discovery
        .as_ref()
        .map(|c| {
            let req = CadenceRequest {
                cron_exp: c.cron_exp.clone(),
                timezone: c.timezone.clone(),
                every: c.every.clone(),
                jitter: c.jitter.clone(),
            };
            registry_cadence("discovery", &req, now)
        })
        .transpose()
        .map_err(in_registry_terms)?;
    let definition = definition_json(&spec)?;
    let auth = auth_json(d.auth.as_ref())?;
    let tenant = state.store.ensure_tenant(&d.tenant).await?;
    let target = vec![format!("registry://{host}")];
    let Some(mut r) = state.store.registry(None, &d.id).await? else {
        let (record, schedules) = new_record(
            d.id.clone(),
            tenant.id.clone(),
            &spec,
            d.auth.as_ref(),
            discovery,
            &host,
            now,
        )?;
        state.store.create_registry(&record, &schedules).await?;
        tracing::info!(registry_id = %record.id, name = %record.name, "declared registry created");
        state.wake_scheduler.notify_one();
        return Ok(record);
    };
    if r.tenant_id != tenant.id {
        return Err(ApiError::conflict(format!(
            "registry {} belongs to another tenant; a resource cannot move it",
            r.id
        )));
    }
    let current = match r.discovery_schedule_id.as_deref() {
        Some(sid) => state.store.schedule(None, sid).await?,
        None => None,
    };
    let unchanged_timing = |c: &Cadence, j: &Option<std::time::Duration>, s: &Schedule| {
        same_timing(c, &s.cadence) && *j == s.jitter
    };
    let same_discovery = match (&discovery, &current) {
        (None, None) => true,
        (Some((c, j)), Some(s)) => unchanged_timing(c, j, s) && s.targets == target,
        _ => false,
    };
    if r.definition == definition && r.auth == auth && same_discovery {
        return Ok(r);
    }
    let schedule = match (discovery, current) {
        (None, _) => None,
        (Some((c, j)), Some(mut old)) if unchanged_timing(&c, &j, &old) => {
            // Same timing: the next run stays; the target follows the URL.
            old.targets = target;
            old.updated_at = now;
            Some(old)
        }
        (Some((c, j)), current) => Some(rearmed_discovery_schedule(&r, &host, c, j, current, now)?),
    };
    r.name = spec.name.clone();
    r.definition = definition;
    r.auth = auth;
    r.discovery_schedule_id = schedule.as_ref().map(|s| s.id.clone());
    r.updated_at = now;
    let mut schedules: Vec<Schedule> = schedule.into_iter().collect();
    if let Some(sid) = r.scan_schedule_id.as_deref() {
        if let Some(s) = state.store.schedule(None, sid).await? {
            schedules.push(s);
        }
    }
    state.store.update_registry(&r, &schedules).await?;
    tracing::info!(registry_id = %r.id, name = %r.name, "declared registry updated");
    state.wake_scheduler.notify_one();
    Ok(r)
}

/// Deletes the registry `id` of `tenant` (its schedules, images and discoveries; SBOMs
/// stay with their digests); true when one was there.
pub async fn delete_declared_registry(
    state: &AppState,
    tenant: &str,
    id: &str,
) -> Result<bool, ApiError> {
    let tenant = state.store.ensure_tenant(tenant).await?;
    Ok(state.store.delete_registry(Some(&tenant.id), id).await?)
}

/// Whether two cadences fire alike (an interval's anchor aside).
fn same_timing(a: &Cadence, b: &Cadence) -> bool {
    match (a, b) {
        (Cadence::Every { period: x, .. }, Cadence::Every { period: y, .. }) => x == y,
        _ => a == b,
    }
}

/// `ca_bundle: problem` becomes `spec.caBundle: problem`, in the Registry resource's terms.
fn in_registry_terms(e: ApiError) -> ApiError {
    if e.code != "invalid" {
        return e;
    }
    let Some((field, problem)) = e.message.split_once(": ") else {
        return e;
    };
    let field = if field == "name" {
        "metadata.name".to_string()
    } else {
        let camel: String = field
            .split('_')
            .enumerate()
            .map(|(i, part)| {
                let mut c = part.chars();
                match (i, c.next()) {
                    (0, Some(f)) => f.to_string() + c.as_str(),
                    (_, Some(f)) => f.to_ascii_uppercase().to_string() + c.as_str(),
                    (_, None) => String::new(),
                }
            })
            .collect();
        let camel = camel.replace("auth.", "authSecretRef: ");
        format!("spec.{camel}")
    };
    ApiError::invalid(&field, problem)
}

/// Creates or replaces the declared policy `d.name`, checked as `PUT /api/v1/policies`
/// checks a document (schema, semantics, clusters); errors name the resource's fields
/// (`spec.rules[0].cadence`). True when something changed.
pub async fn apply_declared_policy(state: &AppState, d: &DeclaredPolicy) -> Result<bool, ApiError> {
    let mut entry: serde_json::Value = serde_json::from_str(&d.entry_json)
        .map_err(|e| ApiError::invalid("spec", format!("not JSON: {e}")))?;
    if let Some(o) = entry.as_object_mut() {
        o.insert("name".into(), d.name.clone().into());
    }
    let doc = serde_json::json!({ "scan_execution_policy": [entry] }).to_string();
    let in_spec = |e: ApiError| {
        let message = e
            .message
            .trim_start_matches("invalid policy document: ")
            .split("; ")
            .map(|part| match part.split_once(": ") {
                Some((pointer, problem)) if pointer.starts_with("/scan_execution_policy/0") => {
                    format!("{}: {problem}", spec_path(pointer))
                }
                _ => part.to_string(),
            })
            .collect::<Vec<_>>()
            .join("; ");
        ApiError::new(e.status, e.code, message)
    };
    let parsed = scanplane_policy::parse(doc.as_bytes(), Some("application/json"))
        .map_err(|e| in_spec(crate::policies::rejected(&e)))?;
    let known: Vec<&str> = state.clusters.iter().map(String::as_str).collect();
    scanplane_policy::check_clusters(&parsed, &known)
        .map_err(|e| in_spec(crate::policies::rejected(&e)))?;
    let Some(policy) = parsed.policies.first() else {
        return Err(ApiError::invalid("spec", "no policy"));
    };
    let document = serde_json::to_string(policy)
        .map_err(|e| ApiError::internal(format!("serializing a policy: {e}")))?;
    let tenant = state.store.ensure_tenant(&d.tenant).await?;
    let now = state.clock.now();
    let changed = state
        .store
        .upsert_declared_policy(
            &scanplane_store::StoredPolicy {
                tenant_id: tenant.id,
                name: d.name.clone(),
                position: u32::MAX,
                enabled: policy.enabled,
                declared: true,
                document,
                created_at: now,
                updated_at: now,
            },
            now,
        )
        .await?;
    if changed {
        tracing::info!(policy = %d.name, "declared scan execution policy stored");
    }
    Ok(changed)
}

/// Deletes the declared policy `name` of `tenant`; true when it was there.
pub async fn delete_declared_policy(
    state: &AppState,
    tenant: &str,
    name: &str,
) -> Result<bool, ApiError> {
    let tenant = state.store.ensure_tenant(tenant).await?;
    Ok(state.store.delete_declared_policy(&tenant.id, name).await?)
}

/// `/scan_execution_policy/0/rules/1/cadence` as the ScanPolicy field `spec.rules[1].cadence`.
fn spec_path(pointer: &str) -> String {
    let rest = pointer.trim_start_matches("/scan_execution_policy/0");
    let mut out = String::from("spec");
    for token in rest.split('/').filter(|t| !t.is_empty()) {
        let token = token.replace("~1", "/").replace("~0", "~");
        if token.chars().all(|c| c.is_ascii_digit()) {
            out.push_str(&format!("[{token}]"));
        } else {
            out.push('.');
            out.push_str(&token);
        }
    }
    out
}
