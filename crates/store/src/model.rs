//! The values the store takes and returns, beside the domain types of `scanplane-core`:
//! what to create, what to change, filters and pages, and rows as stored.

use scanplane_core::finding::{Finding, Severity};
use scanplane_core::identity::{FindingStatus, Triage};
use scanplane_core::maintenance::WindowAction;
use scanplane_core::scan::{Scan, ScanStatus, Trigger};
use scanplane_core::Timestamp;

/// How many scans of one tenant and scanner reached one terminal status.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TerminalCount {
    pub tenant: String,
    pub scanner: String,
    pub status: String,
    pub count: i64,
}

/// A valid API token's identity: who is calling.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenOwner {
    pub token_id: String,
    pub token_name: String,
    pub last_used_at: Option<Timestamp>,
    pub tenant: scanplane_core::tenant::Tenant,
}

/// An API token as admins list it: never its secret, which is not stored.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub tenant: String,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
}

/// A tenant and its retention (`None`: the server default).
#[derive(Debug, Clone, PartialEq)]
pub struct TenantInfo {
    pub tenant: scanplane_core::tenant::Tenant,
    pub retention_days: Option<u32>,
}

/// One chunk of a scan's report, as its sender numbers them within an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportChunk {
    pub attempt: u32,
    pub chunk: u64,
}

/// A scan to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewScan {
    pub tenant_id: String,
    pub project_id: Option<String>,
    pub schedule_id: Option<String>,
    pub fire_time: Option<Timestamp>,
    pub trigger: Trigger,
    pub scanner: String,
    /// Provider of the scanner, resolved at creation for rate limiting.
    pub provider: Option<String>,
    pub targets: Vec<String>,
    pub billing: bool,
    pub options: String,
    /// The canonical JSON of the options that are scope (`{}` when none): with tenant,
    /// scanner and targets it keys the comparable runs, stored when the scan is created.
    pub scope_options: String,
    pub on_maintenance: WindowAction,
}

/// Fields set together with a state change. `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScanChange {
    pub reason: String,
    pub error: Option<String>,
    pub executor_ref: Option<String>,
    pub report_token_hash: Option<String>,
    pub targets_scanned: Option<Vec<String>>,
    /// Increment the attempt counter (set when a new attempt is dispatched). The new
    /// attempt starts without a unit (`executor_ref` is cleared unless given) and is owned
    /// by `owner`.
    pub new_attempt: bool,
    /// The replica owning the new attempt (with `new_attempt`).
    pub owner: Option<String>,
    /// The attempt was lost with its replica: counted in `lost_attempts`.
    pub lost: bool,
    /// With a move to `queued`: not admitted before this time (a retry's delay).
    pub retry_at: Option<Timestamp>,
}

/// Filters of `GET /api/v1/scans`; results are newest first, `after` is the cursor (the id
/// of the last scan of the previous page).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScanFilter {
    pub status: Option<ScanStatus>,
    pub scanner: Option<String>,
    pub schedule_id: Option<String>,
    pub trigger: Option<Trigger>,
    pub created_after: Option<Timestamp>,
    pub created_before: Option<Timestamp>,
    pub after: Option<String>,
    pub limit: u32,
}

/// What became of a schedule tick.
#[derive(Debug, Clone, PartialEq)]
pub enum TickOutcome {
    /// The schedule advanced; `scan` is the scan created for the tick, if the plan fired.
    Recorded { scan: Option<Box<Scan>> },
    /// Another replica (or an earlier attempt) already handled this tick.
    AlreadyHandled,
}

/// A finding as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFinding {
    pub id: String,
    pub tenant_id: String,
    pub scan_id: String,
    pub scanner: String,
    pub created_at: Timestamp,
    pub finding: Finding,
    /// The triage of the finding's identity (`none` until its scan completed).
    pub triage: Triage,
    pub triage_comment: Option<String>,
}

/// Filter for a scan's findings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FindingFilter {
    pub severity: Option<Severity>,
    pub after: Option<String>,
    pub limit: u32,
}

/// The current state of one finding across runs: one per (tenant, fingerprint).
#[derive(Debug, Clone, PartialEq)]
pub struct FindingIdentity {
    pub id: String,
    pub tenant_id: String,
    pub scanner: String,
    /// The attributes reported by the latest run that saw it.
    pub finding: Finding,
    pub status: FindingStatus,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    /// The scan that first reported it.
    pub introduced_by: String,
    /// The latest scan that reported it.
    pub last_scan: String,
    /// The scan whose complete run no longer reported it.
    pub fixed_by: Option<String>,
    pub fixed_at: Option<Timestamp>,
    pub triage: Triage,
    pub triage_comment: Option<String>,
    pub triaged_by: Option<String>,
    pub triaged_at: Option<Timestamp>,
}

/// Filters of `GET /api/v1/findings`. Results are ordered by first sighting (identity ids
/// are time-ordered), newest first unless `oldest_first`; `after` is the cursor.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IdentityFilter {
    pub severity: Option<Severity>,
    pub status: Option<FindingStatus>,
    pub triage: Option<Triage>,
    pub scanner: Option<String>,
    pub target: Option<String>,
    pub rule_id: Option<String>,
    pub first_seen_after: Option<Timestamp>,
    pub first_seen_before: Option<Timestamp>,
    pub last_seen_after: Option<Timestamp>,
    pub last_seen_before: Option<Timestamp>,
    /// Case-insensitive substring of the title.
    pub text: Option<String>,
    pub oldest_first: bool,
    pub after: Option<String>,
    pub limit: u32,
}

/// One of the lists of a diff, paged with [`crate::FindingStore::diff_page`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffList {
    /// Findings of the scan whose identity is new since the previous run.
    New,
    /// Findings of the previous run that the scan no longer reported.
    Fixed,
    /// Findings of the scan absent from the previous run whose identity is older than it.
    Reopened,
}

/// A diff's counts and the two runs it compares, from which its lists are paged: what
/// [`crate::FindingStore::diff_summary`] answers without reading the changed findings.
#[derive(Debug, Clone, PartialEq)]
pub struct DiffSummary {
    pub scan_id: String,
    pub tenant_id: String,
    pub previous_scan_id: Option<String>,
    /// When the previous run was created: a finding absent from it whose identity was first
    /// seen before it is reopened rather than new.
    pub previous_created_at: Option<Timestamp>,
    pub new: u64,
    pub fixed: u64,
    pub reopened: u64,
    pub unchanged: u64,
}

/// A run compared with the previous comparable one (same tenant, scanner, targets and
/// scope options), every list in memory: [`crate::FindingStore::diff`], for tests and small
/// diffs; the API pages through [`DiffSummary`] instead.
#[derive(Debug, Clone, PartialEq)]
pub struct RunDiff {
    pub previous_scan_id: Option<String>,
    pub new: Vec<StoredFinding>,
    pub fixed: Vec<StoredFinding>,
    pub reopened: Vec<StoredFinding>,
    pub unchanged: u64,
}

/// A registry as stored: its public definition and its credentials as opaque JSON (the
/// API owns their shape), and the schedules of its discovery and scan.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistryRecord {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub definition: String,
    /// Never returned by the API; read by units of work through their report token.
    pub auth: Option<String>,
    pub discovery_schedule_id: Option<String>,
    pub scan_schedule_id: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One image a discovery found: a (repository, tag, platform) pointing at a digest.
#[derive(Debug, Clone, PartialEq)]
pub struct NewImage {
    pub repository: String,
    pub tag: String,
    /// `os/arch[/variant]`, or empty when the manifest names none.
    pub platform: String,
    pub digest: String,
    pub index_digest: Option<String>,
    pub media_type: String,
    pub config_digest: String,
    /// JSON list of the layers (digest, media type, size, diffID).
    pub layers: String,
    pub size: u64,
    pub created: Option<String>,
}

/// An image record with whether its digest has an SBOM.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRecord {
    pub id: String,
    pub tenant_id: String,
    pub registry_id: String,
    pub image: NewImage,
    pub first_seen_at: Timestamp,
    pub last_seen_at: Timestamp,
    pub last_seen_scan_id: String,
    pub removed_at: Option<Timestamp>,
    /// The SBOM of its digest, when one was generated.
    pub sbom_id: Option<String>,
}

/// Filters of `GET /api/v1/images`, in id order after the cursor `after`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageFilter {
    pub registry_id: Option<String>,
    pub repository: Option<String>,
    pub tag: Option<String>,
    pub digest: Option<String>,
    pub platform: Option<String>,
    /// Also list images whose tag a discovery no longer found.
    pub include_removed: bool,
    pub after: Option<String>,
    pub limit: u32,
}

/// A generated SBOM to store for a digest, with its package index.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSbom {
    pub digest: String,
    pub format: String,
    pub generator: String,
    /// The document as generated (the store compresses it).
    pub document: Vec<u8>,
    pub os: Option<String>,
    pub packages: Vec<SbomPackage>,
}

/// One package of an SBOM's index.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SbomPackage {
    pub name: String,
    pub version: Option<String>,
    pub purl: Option<String>,
    pub ecosystem: Option<String>,
    pub distro: Option<String>,
    pub source_name: Option<String>,
    pub source_version: Option<String>,
    pub layer_diff_id: Option<String>,
    /// The advisory key of the package (ecosystem without release suffix, name as the
    /// ecosystem normalises it; the source package for OS packages), when it has one.
    pub match_key: Option<(String, String)>,
}

/// A stored SBOM's metadata (the document is read on its own).
#[derive(Debug, Clone, PartialEq)]
pub struct SbomInfo {
    pub id: String,
    pub tenant_id: String,
    pub digest: String,
    pub format: String,
    pub generator: String,
    pub document_bytes: u64,
    pub stored_bytes: u64,
    pub package_count: u64,
    pub os: Option<String>,
    pub scan_id: Option<String>,
    pub created_at: Timestamp,
}

/// How `GET /api/v1/packages` selects: a purl (its qualifiers ignored unless given) or a
/// name and optional version.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PackageQuery {
    pub purl: Option<String>,
    pub name: Option<String>,
    pub version: Option<String>,
    /// Cursor: `(sbom id, seq)` of the last row of the previous page.
    pub after: Option<(String, i64)>,
    pub limit: u32,
}

/// A package found in a stored SBOM, with the digest it is in.
#[derive(Debug, Clone, PartialEq)]
pub struct PackageHit {
    pub sbom_id: String,
    pub seq: i64,
    pub digest: String,
    pub package: SbomPackage,
}

/// What a discovery's completion did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiscoveryOutcome {
    pub images_seen: u64,
    pub images_removed: u64,
    /// SBOM generations queued: one per digest that had none and none asked for.
    pub sboms_queued: Vec<String>,
}

/// A discovery run of a registry, as its registry lists them.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscoveryRecord {
    pub scan_id: String,
    pub registry_id: String,
    pub stats: Option<String>,
    pub images_seen: u64,
    pub images_removed: u64,
    pub sboms_queued: u64,
    pub finished_at: Option<Timestamp>,
}

/// One advisory to import (an OSV record, parsed by the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAdvisory {
    pub id: String,
    pub modified: String,
    pub withdrawn: Option<String>,
    pub aliases: Vec<String>,
    /// The record as imported (the store compresses it and keys "modified" on its SHA-256).
    pub document: Vec<u8>,
    /// The (ecosystem without release suffix, package name) keys it affects.
    pub keys: Vec<(String, String)>,
}

/// What importing one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportCounts {
    pub added: u64,
    pub modified: u64,
    /// Advisories whose `withdrawn` was newly set (also counted as modified).
    pub withdrawn: u64,
    pub unchanged: u64,
}

/// An import of advisories, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct AdvisoryImport {
    pub id: String,
    pub source: String,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub records: u64,
    pub counts: ImportCounts,
    pub rejected: u64,
    pub rejections: Vec<String>,
    /// How many (ecosystem, package) keys the import changed.
    pub changed_keys: u64,
    /// The rematch of the stored SBOMs the import affects.
    pub rematch: RematchCounts,
}

/// What an import's rematch did so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RematchCounts {
    /// SBOMs with a package of a changed key, examined.
    pub considered: u64,
    /// Of those, SBOMs whose report changed (a finding new or fixed).
    pub rematched: u64,
    pub findings_new: u64,
    pub findings_fixed: u64,
    /// Null until every affected SBOM was examined.
    pub finished_at: Option<Timestamp>,
}

/// A vulnerability report to record for one stored SBOM: a succeeded run of `scan` with
/// `findings`, created and completed in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct VulnerabilityReport {
    pub sbom_id: String,
    pub scan: NewScan,
    pub findings: Vec<Finding>,
    pub reason: String,
}

/// An advisory feed's state, as its last check left it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FeedState {
    pub source: String,
    /// Validators of the last full response, sent back as `If-None-Match` and
    /// `If-Modified-Since` (for a local file: its size and modification time).
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub checked_at: Option<Timestamp>,
    /// "imported", "not modified", or "failed: ..." (the reason).
    pub status: Option<String>,
    /// The import of its last change.
    pub import_id: Option<String>,
}

/// How far a rematch got with one batch of the SBOMs it considers: recorded with the
/// batch's reports, so that a rematch killed halfway resumes after the last batch it
/// recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RematchStep {
    pub import_id: String,
    /// The last SBOM id of the batch.
    pub cursor: String,
    /// SBOMs of the batch, reported or found unchanged.
    pub considered: u64,
}

/// What recording a report did: the run, and the findings new and fixed against the last
/// report of the same SBOM.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportOutcome {
    pub scan: Scan,
    pub new: u64,
    pub fixed: u64,
}

/// A stored advisory.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAdvisory {
    pub id: String,
    pub modified: String,
    pub withdrawn: Option<String>,
    pub aliases: Vec<String>,
    /// The record, decompressed.
    pub document: Vec<u8>,
    /// SHA-256 of the document (hex): changes whenever the record does.
    pub sha256: String,
    pub import_id: String,
    pub updated_at: Timestamp,
}

/// A stored SBOM that has a package with one of the keys asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AffectedSbom {
    pub sbom_id: String,
    pub tenant_id: String,
    pub digest: String,
}

/// One scan execution policy of a tenant, as stored: its entry of the document as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPolicy {
    pub tenant_id: String,
    pub name: String,
    /// Its place in the document it came from.
    pub position: u32,
    pub enabled: bool,
    /// Declared by a ScanPolicy resource (the operator's), not by `PUT /api/v1/policies`.
    pub declared: bool,
    pub document: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}
