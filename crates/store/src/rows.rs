//! Database rows and their conversion to and from domain types: the serialization boundary
//! of the store (timestamps as Unix milliseconds, lists as JSON text).

use chrono::{TimeZone, Utc};
use scanplane_core::finding::Finding;
use scanplane_core::maintenance::{MaintenanceWindow, Scope, WindowStart};
use scanplane_core::scan::Scan;
use scanplane_core::schedule::{parse_timezone, Cadence, Schedule};
use scanplane_core::tenant::Tenant;
use scanplane_core::Timestamp;
use std::time::Duration;

use crate::{StoreError, StoredFinding};

pub fn ms(t: Timestamp) -> i64 {
    t.timestamp_millis()
}

pub fn opt_ms(t: Option<Timestamp>) -> Option<i64> {
    t.map(ms)
}

pub fn ts(v: i64) -> Result<Timestamp, StoreError> {
    Utc.timestamp_millis_opt(v)
        .single()
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp {v} out of range")))
}

pub fn opt_ts(v: Option<i64>) -> Result<Option<Timestamp>, StoreError> {
    v.map(ts).transpose()
}

pub fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".to_string())
}

fn parse_list(text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("list column: {e}")))
}

fn parse<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    text.parse::<T>()
        .map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn duration_ms(v: Option<i64>) -> Option<Duration> {
    v.map(|ms| Duration::from_millis(ms.max(0) as u64))
}

pub fn dur_ms(d: Option<Duration>) -> Option<i64> {
    d.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[derive(Debug, sqlx::FromRow)]
pub struct TenantRow {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

impl TenantRow {
    pub fn into_domain(self) -> Result<Tenant, StoreError> {
        Ok(Tenant {
            id: self.id,
            name: self.name,
            created_at: ts(self.created_at)?,
        })
    }
}

pub const SCAN_COLUMNS: &str = "\
    id, tenant_id, project_id, schedule_id, fire_time, trigger, scanner, targets, billing, \
    options, status, reason, attempts, created_at, updated_at, admitted_at, started_at, \
    finished_at, executor_ref, error, targets_scanned, findings_count, findings_rejected, \
    rejections, owner, launched_at, exited_at, lost_attempts";

#[derive(Debug, sqlx::FromRow)]
pub struct ScanRow {
    pub id: String,
    pub tenant_id: String,
    pub project_id: Option<String>,
    pub schedule_id: Option<String>,
    pub fire_time: Option<i64>,
    pub trigger: String,
    pub scanner: String,
    pub targets: String,
    pub billing: bool,
    pub options: String,
    pub status: String,
    pub reason: String,
    pub attempts: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub admitted_at: Option<i64>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub executor_ref: Option<String>,
    pub error: Option<String>,
    pub targets_scanned: String,
    pub findings_count: i64,
    pub findings_rejected: i64,
    pub rejections: String,
    pub owner: Option<String>,
    pub launched_at: Option<i64>,
    pub exited_at: Option<i64>,
    pub lost_attempts: i64,
}

impl ScanRow {
    pub fn into_domain(self) -> Result<Scan, StoreError> {
        Ok(Scan {
            trigger: parse(&self.trigger, "scan trigger")?,
            status: parse(&self.status, "scan status")?,
            targets: parse_list(&self.targets)?,
            targets_scanned: parse_list(&self.targets_scanned)?,
            fire_time: opt_ts(self.fire_time)?,
            created_at: ts(self.created_at)?,
            updated_at: ts(self.updated_at)?,
            admitted_at: opt_ts(self.admitted_at)?,
            started_at: opt_ts(self.started_at)?,
            finished_at: opt_ts(self.finished_at)?,
            attempts: u32::try_from(self.attempts).unwrap_or(0),
            findings_count: u64::try_from(self.findings_count).unwrap_or(0),
            findings_rejected: u64::try_from(self.findings_rejected).unwrap_or(0),
            rejections: parse_list(&self.rejections)?,
            launched_at: opt_ts(self.launched_at)?,
            exited_at: opt_ts(self.exited_at)?,
            lost_attempts: u32::try_from(self.lost_attempts).unwrap_or(0),
            owner: self.owner,
            id: self.id,
            tenant_id: self.tenant_id,
            project_id: self.project_id,
            schedule_id: self.schedule_id,
            scanner: self.scanner,
            billing: self.billing,
            options: self.options,
            reason: self.reason,
            executor_ref: self.executor_ref,
            error: self.error,
        })
    }
}

pub const SCHEDULE_COLUMNS: &str = "\
    id, tenant_id, project_id, name, cron_exp, timezone, once_at, scanner, targets, billing, \
    options, enabled, status, missed_tick_policy, starting_deadline_ms, jitter_ms, \
    on_maintenance, next_tick, next_fire_at, last_fired_at, created_at, updated_at, every_ms";

#[derive(Debug, sqlx::FromRow)]
pub struct ScheduleRow {
    /// With `once_at` as its anchor: an interval cadence.
    pub every_ms: Option<i64>,
    pub id: String,
    pub tenant_id: String,
    pub project_id: Option<String>,
    pub name: String,
    pub cron_exp: Option<String>,
    pub timezone: String,
    pub once_at: Option<i64>,
    pub scanner: String,
    pub targets: String,
    pub billing: bool,
    pub options: String,
    pub enabled: bool,
    pub status: String,
    pub missed_tick_policy: String,
    pub starting_deadline_ms: Option<i64>,
    pub jitter_ms: Option<i64>,
    pub on_maintenance: String,
    pub next_tick: Option<i64>,
    pub next_fire_at: Option<i64>,
    pub last_fired_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl ScheduleRow {
    pub fn into_domain(self) -> Result<Schedule, StoreError> {
        let cadence = match (&self.cron_exp, self.once_at) {
            (None, Some(anchor)) if self.every_ms.is_some() => Cadence::Every {
                period: duration_ms(self.every_ms).unwrap_or_default(),
                anchor: ts(anchor)?,
            },
            (Some(expr), _) => Cadence::Cron {
                expr: expr.clone(),
                timezone: parse_timezone(&self.timezone)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            },
            (None, Some(at)) => Cadence::Once { at: ts(at)? },
            (None, None) => {
                return Err(StoreError::Corrupt(format!(
                    "schedule {} has neither cron_exp nor time",
                    self.id
                )))
            }
        };
        Ok(Schedule {
            cadence,
            targets: parse_list(&self.targets)?,
            status: parse(&self.status, "schedule status")?,
            missed_tick_policy: parse(&self.missed_tick_policy, "missed tick policy")?,
            on_maintenance: parse(&self.on_maintenance, "maintenance action")?,
            starting_deadline: duration_ms(self.starting_deadline_ms),
            jitter: duration_ms(self.jitter_ms),
            next_tick: opt_ts(self.next_tick)?,
            next_fire_at: opt_ts(self.next_fire_at)?,
            last_fired_at: opt_ts(self.last_fired_at)?,
            created_at: ts(self.created_at)?,
            updated_at: ts(self.updated_at)?,
            id: self.id,
            tenant_id: self.tenant_id,
            project_id: self.project_id,
            name: self.name,
            scanner: self.scanner,
            billing: self.billing,
            options: self.options,
            enabled: self.enabled,
        })
    }
}

/// The columns a schedule's cadence is stored in: `(cron_exp, timezone, once_at)`.
pub fn cadence_columns(c: &Cadence) -> (Option<String>, String, Option<i64>) {
    match c {
        Cadence::Cron { expr, timezone } => (Some(expr.clone()), timezone.name().to_string(), None),
        Cadence::Once { at } => (None, "UTC".to_string(), Some(ms(*at))),
        Cadence::Every { anchor, .. } => (None, "UTC".to_string(), Some(ms(*anchor))),
    }
}

/// The period of an interval cadence, stored beside its anchor in `once_at`.
pub fn every_ms(c: &Cadence) -> Option<i64> {
    match c {
        Cadence::Every { period, .. } => dur_ms(Some(*period)),
        _ => None,
    }
}

pub const WINDOW_COLUMNS: &str = "\
    id, tenant_id, admin, name, start_at, cron_exp, timezone, duration_ms, scope, action, \
    created_at";

#[derive(Debug, sqlx::FromRow)]
pub struct WindowRow {
    pub id: String,
    pub tenant_id: String,
    pub admin: bool,
    pub name: String,
    pub start_at: Option<i64>,
    pub cron_exp: Option<String>,
    pub timezone: String,
    pub duration_ms: i64,
    pub scope: String,
    pub action: String,
    pub created_at: i64,
}

impl WindowRow {
    pub fn into_domain(self) -> Result<MaintenanceWindow, StoreError> {
        let start = match (&self.cron_exp, self.start_at) {
            (Some(expr), _) => WindowStart::Cron(
                Cadence::cron(expr, &self.timezone)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            ),
            (None, Some(at)) => WindowStart::At(ts(at)?),
            (None, None) => {
                return Err(StoreError::Corrupt(format!(
                    "window {} has no start",
                    self.id
                )))
            }
        };
        Ok(MaintenanceWindow {
            start,
            duration: Duration::from_millis(self.duration_ms.max(0) as u64),
            scope: Scope::parse(&self.scope).map_err(StoreError::Corrupt)?,
            action: parse(&self.action, "window action")?,
            created_at: ts(self.created_at)?,
            id: self.id,
            tenant_id: self.tenant_id,
            admin: self.admin,
            name: self.name,
        })
    }
}

/// The columns a window's start is stored in: `(start_at, cron_exp, timezone)`.
pub fn window_start_columns(s: &WindowStart) -> (Option<i64>, Option<String>, String) {
    match s {
        WindowStart::At(at) => (Some(ms(*at)), None, "UTC".to_string()),
        WindowStart::Cron(Cadence::Cron { expr, timezone }) => {
            (None, Some(expr.clone()), timezone.name().to_string())
        }
        // Windows are never built with an interval; stored as its first start if one were.
        WindowStart::Cron(Cadence::Once { at } | Cadence::Every { anchor: at, .. }) => {
            (Some(ms(*at)), None, "UTC".to_string())
        }
    }
}

pub const FINDING_COLUMNS: &str = "\
    id, tenant_id, scan_id, scanner, target, rule_id, severity, title, location, detail, \
    fingerprint, created_at";

/// The columns of a read of findings from [`FINDING_FROM`]: a finding and the triage of its
/// identity, so that every export says what was triaged.
pub const FINDING_SELECT: &str = "\
    f.id, f.tenant_id, f.scan_id, f.scanner, f.target, f.rule_id, f.severity, f.title, \
    f.location, f.detail, f.fingerprint, f.created_at, fi.triage, fi.triage_comment";

/// Findings (alias `f`) with their identity's triage (alias `fi`; none before the scan
/// completed): the identity key is unique, so this adds no rows.
pub const FINDING_FROM: &str = "findings f LEFT JOIN finding_identities fi \
    ON fi.tenant_id = f.tenant_id AND fi.fingerprint = f.fingerprint";

#[derive(Debug, sqlx::FromRow)]
pub struct FindingRow {
    pub id: String,
    pub tenant_id: String,
    pub scan_id: String,
    pub scanner: String,
    pub target: String,
    pub rule_id: String,
    pub severity: String,
    pub title: String,
    pub location: String,
    pub detail: String,
    pub fingerprint: String,
    pub created_at: i64,
    pub triage: Option<String>,
    pub triage_comment: Option<String>,
}

impl FindingRow {
    pub fn into_domain(self) -> Result<StoredFinding, StoreError> {
        Ok(StoredFinding {
            created_at: ts(self.created_at)?,
            finding: Finding {
                target: self.target,
                rule_id: self.rule_id,
                severity: parse(&self.severity, "severity")?,
                title: self.title,
                location: self.location,
                detail: self.detail,
                fingerprint: self.fingerprint,
            },
            triage: self
                .triage
                .as_deref()
                .map(|t| parse(t, "triage"))
                .transpose()?
                .unwrap_or_default(),
            triage_comment: self.triage_comment,
            id: self.id,
            tenant_id: self.tenant_id,
            scan_id: self.scan_id,
            scanner: self.scanner,
        })
    }
}

pub const IDENTITY_COLUMNS: &str = "\
    id, tenant_id, fingerprint, scanner, target, rule_id, severity, title, location, detail, \
    status, first_seen, last_seen, introduced_by, last_scan, fixed_by, fixed_at, triage, \
    triage_comment, triaged_by, triaged_at";

#[derive(Debug, sqlx::FromRow)]
pub struct IdentityRow {
    pub id: String,
    pub tenant_id: String,
    pub fingerprint: String,
    pub scanner: String,
    pub target: String,
    pub rule_id: String,
    pub severity: String,
    pub title: String,
    pub location: String,
    pub detail: String,
    pub status: String,
    pub first_seen: i64,
    pub last_seen: i64,
    pub introduced_by: String,
    pub last_scan: String,
    pub fixed_by: Option<String>,
    pub fixed_at: Option<i64>,
    pub triage: String,
    pub triage_comment: Option<String>,
    pub triaged_by: Option<String>,
    pub triaged_at: Option<i64>,
}

impl IdentityRow {
    pub fn into_domain(self) -> Result<crate::FindingIdentity, StoreError> {
        Ok(crate::FindingIdentity {
            finding: Finding {
                target: self.target,
                rule_id: self.rule_id,
                severity: parse(&self.severity, "severity")?,
                title: self.title,
                location: self.location,
                detail: self.detail,
                fingerprint: self.fingerprint,
            },
            status: parse(&self.status, "finding status")?,
            first_seen: ts(self.first_seen)?,
            last_seen: ts(self.last_seen)?,
            fixed_at: opt_ts(self.fixed_at)?,
            triage: parse(&self.triage, "triage")?,
            triaged_at: opt_ts(self.triaged_at)?,
            id: self.id,
            tenant_id: self.tenant_id,
            scanner: self.scanner,
            introduced_by: self.introduced_by,
            last_scan: self.last_scan,
            fixed_by: self.fixed_by,
            triage_comment: self.triage_comment,
            triaged_by: self.triaged_by,
        })
    }
}

pub const REGISTRY_COLUMNS: &str = "\
    id, tenant_id, name, definition, auth, discovery_schedule_id, scan_schedule_id, \
    created_at, updated_at";

#[derive(Debug, sqlx::FromRow)]
pub struct RegistryRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub definition: String,
    pub auth: Option<String>,
    pub discovery_schedule_id: Option<String>,
    pub scan_schedule_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl RegistryRow {
    pub fn into_domain(self) -> Result<crate::RegistryRecord, StoreError> {
        Ok(crate::RegistryRecord {
            created_at: ts(self.created_at)?,
            updated_at: ts(self.updated_at)?,
            id: self.id,
            tenant_id: self.tenant_id,
            name: self.name,
            definition: self.definition,
            auth: self.auth,
            discovery_schedule_id: self.discovery_schedule_id,
            scan_schedule_id: self.scan_schedule_id,
        })
    }
}

/// The columns of an image read joined with its digest's SBOM (`i` images, `s` sboms).
pub const IMAGE_SELECT: &str = "\
    SELECT i.id, i.tenant_id, i.registry_id, i.repository, i.tag, i.platform, i.digest, \
      i.index_digest, i.media_type, i.config_digest, i.layers, i.size, i.created, \
      i.first_seen_at, i.last_seen_at, i.last_seen_scan_id, i.removed_at, s.id AS sbom_id \
    FROM images i LEFT JOIN sboms s ON s.tenant_id = i.tenant_id AND s.digest = i.digest";

#[derive(Debug, sqlx::FromRow)]
pub struct ImageRow {
    pub id: String,
    pub tenant_id: String,
    pub registry_id: String,
    pub repository: String,
    pub tag: String,
    pub platform: String,
    pub digest: String,
    pub index_digest: Option<String>,
    pub media_type: String,
    pub config_digest: String,
    pub layers: String,
    pub size: i64,
    pub created: Option<String>,
    pub first_seen_at: i64,
    pub last_seen_at: i64,
    pub last_seen_scan_id: String,
    pub removed_at: Option<i64>,
    pub sbom_id: Option<String>,
}

impl ImageRow {
    pub fn into_domain(self) -> Result<crate::ImageRecord, StoreError> {
        Ok(crate::ImageRecord {
            first_seen_at: ts(self.first_seen_at)?,
            last_seen_at: ts(self.last_seen_at)?,
            removed_at: opt_ts(self.removed_at)?,
            id: self.id,
            tenant_id: self.tenant_id,
            registry_id: self.registry_id,
            last_seen_scan_id: self.last_seen_scan_id,
            sbom_id: self.sbom_id,
            image: crate::NewImage {
                repository: self.repository,
                tag: self.tag,
                platform: self.platform,
                digest: self.digest,
                index_digest: self.index_digest,
                media_type: self.media_type,
                config_digest: self.config_digest,
                layers: self.layers,
                size: self.size.max(0) as u64,
                created: self.created,
            },
        })
    }
}

pub const SBOM_INFO_COLUMNS: &str = "\
    id, tenant_id, digest, format, generator, document_bytes, package_count, os, scan_id, \
    created_at";

#[derive(Debug, sqlx::FromRow)]
pub struct SbomRow {
    pub id: String,
    pub tenant_id: String,
    pub digest: String,
    pub format: String,
    pub generator: String,
    pub document_bytes: i64,
    pub package_count: i64,
    pub os: Option<String>,
    pub scan_id: Option<String>,
    pub created_at: i64,
    pub document: Vec<u8>,
}

impl SbomRow {
    /// The metadata and the document as stored (compressed).
    pub fn into_domain(self) -> Result<(crate::SbomInfo, Vec<u8>), StoreError> {
        Ok((
            crate::SbomInfo {
                created_at: ts(self.created_at)?,
                stored_bytes: self.document.len() as u64,
                id: self.id,
                tenant_id: self.tenant_id,
                digest: self.digest,
                format: self.format,
                generator: self.generator,
                document_bytes: self.document_bytes.max(0) as u64,
                package_count: self.package_count.max(0) as u64,
                os: self.os,
                scan_id: self.scan_id,
            },
            self.document,
        ))
    }
}

#[derive(Debug, sqlx::FromRow)]
pub struct PackageRow {
    pub sbom_id: String,
    pub seq: i64,
    pub digest: String,
    pub name: String,
    pub version: Option<String>,
    pub purl: Option<String>,
    pub ecosystem: Option<String>,
    pub distro: Option<String>,
    pub source_name: Option<String>,
    pub source_version: Option<String>,
    pub layer_diff_id: Option<String>,
}

impl PackageRow {
    pub fn into_domain(self) -> crate::PackageHit {
        crate::PackageHit {
            sbom_id: self.sbom_id,
            seq: self.seq,
            digest: self.digest,
            package: crate::SbomPackage {
                name: self.name,
                version: self.version,
                purl: self.purl,
                ecosystem: self.ecosystem,
                distro: self.distro,
                source_name: self.source_name,
                source_version: self.source_version,
                layer_diff_id: self.layer_diff_id,
                match_key: None,
            },
        }
    }
}

#[derive(Debug, sqlx::FromRow)]
pub struct DiscoveryRow {
    pub scan_id: String,
    pub registry_id: String,
    pub stats: Option<String>,
    pub images_seen: i64,
    pub images_removed: i64,
    pub sboms_queued: i64,
    pub finished_at: Option<i64>,
}

impl DiscoveryRow {
    pub fn into_domain(self) -> Result<crate::DiscoveryRecord, StoreError> {
        Ok(crate::DiscoveryRecord {
            finished_at: opt_ts(self.finished_at)?,
            scan_id: self.scan_id,
            registry_id: self.registry_id,
            stats: self.stats,
            images_seen: self.images_seen.max(0) as u64,
            images_removed: self.images_removed.max(0) as u64,
            sboms_queued: self.sboms_queued.max(0) as u64,
        })
    }
}
