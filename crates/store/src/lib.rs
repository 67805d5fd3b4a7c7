//! scanplane's durable record. The role traits in [`roles`] are the I/O seams other crates
//! use, one per consumer or aggregate ([`TickStore`] for the scheduler, [`DispatchStore`]
//! for the dispatcher, [`RetentionStore`] for the cleaner, ...), and [`Store`] is all of them
//! together. [`SqlStore`] implements every role over SQLite (the embedded default, one file)
//! and PostgreSQL with the same SQL, one module per aggregate, and embeds and applies the
//! migrations at start-up.
//!
//! Invariants kept here rather than by callers:
//! - every row belongs to a tenant, and every tenant-scoped read filters by it;
//! - scan state changes are compare-and-set on the current state, guarded by the core
//!   state machine, so two actors never both move one scan;
//! - a concurrency slot is a scan in `admitted`/`dispatched`/`running`: it is released by
//!   the very transition that ends the scan, so no path can leak one;
//! - a schedule tick creates at most one scan (unique `(schedule_id, fire_time)`), in the
//!   same transaction that advances the schedule.

mod model;
pub mod roles;
mod rows;
mod sql;
pub mod testing;
mod text;

use scanplane_core::scan::IllegalTransition;

pub use model::{
    AdvisoryImport, AffectedSbom, DiffList, DiffSummary, DiscoveryOutcome, DiscoveryRecord,
    FeedState, FindingFilter, FindingIdentity, IdentityFilter, ImageFilter, ImageRecord,
    ImportCounts, NewAdvisory, NewImage, NewSbom, NewScan, PackageHit, PackageQuery,
    RegistryRecord, RematchCounts, RematchStep, ReportChunk, ReportOutcome, RunDiff, SbomInfo,
    SbomPackage, ScanChange, ScanFilter, StoredAdvisory, StoredFinding, StoredPolicy, TenantInfo,
    TerminalCount, TickOutcome, TokenInfo, TokenOwner, VulnerabilityReport,
};
pub use roles::{
    AdvisoryStore, DispatchStore, FindingStore, HealthStore, ImageStore, PipelineStore,
    PolicyStore, RegistryStore, ReplicaStore, RetentionStore, ScanStore, ScheduleStore,
    TenantStore, TickStore, VulnerabilityStore, WindowStore,
};
pub use sql::SqlStore;

/// How stale a token's `last_used_at` may get before a request writes it again: callers
/// skip the write below it, and `touch_token` refuses it below it too (two requests at once).
pub const TOKEN_TOUCH_EVERY_MS: i64 = 60_000;

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
    /// The database has no room for the write (SQLite `SQLITE_FULL`, PostgreSQL `53100
    /// disk_full`). Nothing of the failed call was stored; retry once space is freed.
    #[error("storage full: {0}")]
    StorageFull(String),
    /// The database cannot take the call right now: no connection within the pool's timeout,
    /// connection refused or lost, read-only, locked, out of resources. Nothing of the failed
    /// call was stored; retriable.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Any other driver error (see `From<sqlx::Error>` in `sql/errors.rs` for the split).
    #[error("database error: {0}")]
    Database(sqlx::Error),
}

/// Declares [`Store`] as the sum of the roles, and implements it for every type that has
/// them all: one list to extend when an aggregate is added.
macro_rules! umbrella {
    ($($role:ident),+ $(,)?) => {
        /// The whole durable record: every role. Wiring code (`serve`, the API's state) holds
        /// an `Arc<dyn Store>` and hands each loop the role it needs; `Arc<dyn Store>`
        /// coerces to `Arc<dyn TickStore>` and the other roles (trait-object upcasting).
        pub trait Store: $($role +)+ {}

        impl<T: $($role +)+ ?Sized> Store for T {}
    };
}

umbrella!(
    HealthStore,
    TenantStore,
    ScanStore,
    DispatchStore,
    ScheduleStore,
    TickStore,
    WindowStore,
    FindingStore,
    RetentionStore,
    ReplicaStore,
    RegistryStore,
    ImageStore,
    PipelineStore,
    AdvisoryStore,
    PolicyStore,
    VulnerabilityStore,
);

/// Opens the store named by a URL (`sqlite://path`, a bare file path, or `postgres://...`),
/// creating an SQLite file if needed, and applies the embedded migrations.
pub async fn open(url: &str) -> Result<SqlStore, StoreError> {
    SqlStore::open(url).await
}
