//! scanplane's durable record. The [`Store`] trait is the I/O seam every other crate uses;
//! [`SqlStore`] implements it over SQLite (the embedded default, one file) and PostgreSQL
//! with the same SQL, and embeds and applies the migrations at start-up.
//!
//! Invariants kept here rather than by callers:
//! - every row belongs to a tenant, and every tenant-scoped read filters by it;
//! - scan state changes are compare-and-set on the current state, guarded by the core
//!   state machine, so two actors never both move one scan;
//! - a concurrency slot is a scan in `admitted`/`dispatched`/`running`: it is released by
//!   the very transition that ends the scan, so no path can leak one;
//! - a schedule tick creates at most one scan (unique `(schedule_id, fire_time)`), in the
//!   same transaction that advances the schedule.

mod rows;
mod sql;
pub mod testing;

use async_trait::async_trait;
use scanplane_core::admission::{Decision, Limits, SlotUsage};
use scanplane_core::finding::{Finding, Severity};
use scanplane_core::identity::{FindingStatus, Triage};
use scanplane_core::maintenance::{MaintenanceWindow, WindowAction};
use scanplane_core::ratelimit::RateLimitPolicy;
use scanplane_core::scan::{IllegalTransition, Scan, ScanStatus, Trigger};
use scanplane_core::schedule::{Schedule, TickPlan};
use scanplane_core::tenant::Tenant;
use scanplane_core::Timestamp;

pub use sql::SqlStore;

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Failures callers act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid database URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("database unreachable at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("database migration failed: {0}")]
    Migration(String),
    #[error("not found")]
    NotFound,
    /// The row changed under us (a compare-and-set lost) or a unique key was taken.
    #[error("conflict: {0}")]
    Conflict(String),
    #[error(transparent)]
    Illegal(#[from] IllegalTransition),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
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
    /// Increment the attempt counter (set when a new attempt is dispatched).
    pub new_attempt: bool,
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

/// A run compared with the previous comparable one (same tenant, scanner and targets).
#[derive(Debug, Clone, PartialEq)]
pub struct RunDiff {
    pub previous_scan_id: Option<String>,
    pub new: Vec<StoredFinding>,
    pub fixed: Vec<StoredFinding>,
    pub reopened: Vec<StoredFinding>,
    pub unchanged: u64,
}

/// The durable record of scanplane. `tenant` arguments are tenant ids; `None` means the
/// admin, who sees every tenant.
#[async_trait]
pub trait Store: Send + Sync {
    fn backend(&self) -> Backend;

    /// The database answers and every migration is applied.
    async fn check_ready(&self) -> Result<(), StoreError>;

    // Tenants and tokens.
    async fn ensure_tenant(&self, name: &str) -> Result<Tenant, StoreError>;
    async fn tenant(&self, id: &str) -> Result<Option<Tenant>, StoreError>;
    async fn create_token(
        &self,
        tenant_id: &str,
        name: &str,
        token_hash: &str,
    ) -> Result<String, StoreError>;
    async fn tenant_for_token(&self, token_hash: &str) -> Result<Option<Tenant>, StoreError>;

    // Scans.
    async fn create_scan(&self, scan: NewScan, now: Timestamp) -> Result<Scan, StoreError>;
    async fn scan(&self, tenant: Option<&str>, id: &str) -> Result<Option<Scan>, StoreError>;
    async fn list_scans(
        &self,
        tenant: Option<&str>,
        filter: &ScanFilter,
    ) -> Result<Vec<Scan>, StoreError>;
    /// Moves a scan to `to` if the state machine allows it from its current state, as one
    /// compare-and-set. `Conflict` if the scan moved meanwhile to a state `to` cannot follow.
    async fn transition(
        &self,
        id: &str,
        to: ScanStatus,
        change: &ScanChange,
        now: Timestamp,
    ) -> Result<Scan, StoreError>;
    /// Records the unit of work of a scan that is still in `status`.
    async fn set_executor_ref(
        &self,
        id: &str,
        status: ScanStatus,
        executor_ref: &str,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    /// Records the error a scan's final report gave, without changing its state.
    async fn set_error(&self, id: &str, error: &str, now: Timestamp) -> Result<(), StoreError>;
    async fn scans_with_status(
        &self,
        statuses: &[ScanStatus],
        limit: u32,
    ) -> Result<Vec<Scan>, StoreError>;
    async fn scan_for_report_token(&self, token_hash: &str) -> Result<Option<Scan>, StoreError>;
    async fn slot_usage(&self) -> Result<SlotUsage, StoreError>;
    async fn count_by_status(&self) -> Result<Vec<(ScanStatus, u64)>, StoreError>;

    /// One admission round, atomically across replicas: reads the queue, the slots in use,
    /// the maintenance windows and the rate buckets, decides with
    /// [`scanplane_core::admission::decide`], and applies the decisions.
    async fn admission_round(
        &self,
        limits: &Limits,
        policies: &[RateLimitPolicy],
        max_candidates: u32,
        now: Timestamp,
    ) -> Result<Vec<(String, Decision)>, StoreError>;

    // Schedules.
    async fn create_schedule(&self, schedule: &Schedule) -> Result<(), StoreError>;
    async fn schedule(
        &self,
        tenant: Option<&str>,
        id: &str,
    ) -> Result<Option<Schedule>, StoreError>;
    async fn list_schedules(
        &self,
        tenant: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Schedule>, StoreError>;
    /// Replaces a schedule's definition (the caller recomputed its next tick).
    async fn update_schedule(&self, schedule: &Schedule) -> Result<(), StoreError>;
    async fn delete_schedule(&self, tenant: Option<&str>, id: &str) -> Result<bool, StoreError>;
    /// Schedules whose `next_fire_at` is at or before `now`, earliest first.
    async fn due_schedules(&self, now: Timestamp, limit: u32) -> Result<Vec<Schedule>, StoreError>;
    /// The earliest `next_fire_at` of any schedule.
    async fn next_fire_at(&self) -> Result<Option<Timestamp>, StoreError>;
    /// Applies a tick plan to the schedule as it was read (compare-and-set on its next
    /// tick) and creates the tick's scan, in one transaction.
    async fn record_tick(
        &self,
        schedule: &Schedule,
        plan: &TickPlan,
        scan: Option<NewScan>,
        now: Timestamp,
    ) -> Result<TickOutcome, StoreError>;

    // Maintenance windows.
    async fn create_window(&self, window: &MaintenanceWindow) -> Result<(), StoreError>;
    async fn window(
        &self,
        tenant: Option<&str>,
        id: &str,
    ) -> Result<Option<MaintenanceWindow>, StoreError>;
    async fn list_windows(
        &self,
        tenant: Option<&str>,
    ) -> Result<Vec<MaintenanceWindow>, StoreError>;
    async fn update_window(
        &self,
        window: &MaintenanceWindow,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    async fn delete_window(&self, tenant: Option<&str>, id: &str) -> Result<bool, StoreError>;

    // Findings.
    /// Stores findings of a scan; a finding already stored for the scan (same fingerprint)
    /// is ignored, so retried chunks never duplicate. Returns how many were new.
    async fn insert_findings(
        &self,
        tenant_id: &str,
        scan_id: &str,
        scanner: &str,
        findings: &[Finding],
        now: Timestamp,
    ) -> Result<u64, StoreError>;
    async fn list_findings(
        &self,
        tenant: Option<&str>,
        scan_id: &str,
        filter: &FindingFilter,
    ) -> Result<Vec<StoredFinding>, StoreError>;

    // Finding identities.
    /// Ends a scan `succeeded` and, in the same transaction, folds its findings into the
    /// tenant's identities: new ones open, fixed ones reopened, and every live identity of
    /// the same scope that this complete run did not report marked fixed by it.
    async fn complete_scan(
        &self,
        id: &str,
        change: &ScanChange,
        now: Timestamp,
    ) -> Result<Scan, StoreError>;
    async fn list_identities(
        &self,
        tenant: Option<&str>,
        filter: &IdentityFilter,
    ) -> Result<Vec<FindingIdentity>, StoreError>;
    async fn identity(
        &self,
        tenant: Option<&str>,
        id: &str,
    ) -> Result<Option<FindingIdentity>, StoreError>;
    /// Sets the triage of an identity; it survives later runs.
    async fn set_triage(
        &self,
        tenant: Option<&str>,
        id: &str,
        triage: Triage,
        comment: Option<&str>,
        by: &str,
        now: Timestamp,
    ) -> Result<FindingIdentity, StoreError>;
    /// The scan's findings compared with the previous succeeded run of its scope.
    async fn diff(&self, tenant: Option<&str>, scan_id: &str) -> Result<RunDiff, StoreError>;

    // Retention (seed 002's cleaner).
    /// Sets a tenant's retention; `None` returns it to the server default.
    async fn set_retention(&self, tenant_name: &str, days: Option<u32>) -> Result<(), StoreError>;
    /// Deletes one bounded batch of expired data: findings of ended scans older than their
    /// tenant's retention (or `default_retention`), then those scans, then identities fixed
    /// before the cutoff. Returns how many rows went; zero means nothing is left to clean.
    async fn clean_expired_batch(
        &self,
        now: Timestamp,
        default_retention: std::time::Duration,
        batch: u32,
    ) -> Result<u64, StoreError>;
}

/// Opens the store named by a URL (`sqlite://path`, a bare file path, or `postgres://...`),
/// creating an SQLite file if needed, and applies the embedded migrations.
pub async fn open(url: &str) -> Result<SqlStore, StoreError> {
    SqlStore::open(url).await
}
