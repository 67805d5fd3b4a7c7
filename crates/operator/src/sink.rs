//! What the reconcilers need of scanplane's database, and nothing more: apply or delete one
//! declared schedule ([`ScheduleSink`]); start, read or cancel one declared scan run
//! ([`ScanSink`]); apply or delete one declared registry ([`RegistrySink`]). `serve`
//! implements them over the API layer's validation and the store;
//! tests implement them in memory.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use scanplane_core::declared::{DeclaredPolicy, DeclaredScan, DeclaredSchedule};
use scanplane_core::finding::Severity;
use scanplane_core::scan::ScanStatus;
use scanplane_protocol::registry::DeclaredRegistry;

/// The schedule as stored after an apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedSchedule {
    pub id: String,
    pub next_fire_at: Option<DateTime<Utc>>,
    pub last_fired_at: Option<DateTime<Utc>>,
    /// The newest scan the schedule started.
    pub last_run: Option<LastRun>,
}

/// A schedule's newest scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastRun {
    pub id: String,
    pub status: ScanStatus,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// The declaration is wrong (names the resource's field); retrying cannot help.
    #[error("{0}")]
    Invalid(String),
    /// The store could not be reached or failed; retried with backoff.
    #[error("scanplane could not store the schedule: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait ScheduleSink: Send + Sync {
    async fn apply(&self, schedule: &DeclaredSchedule) -> Result<AppliedSchedule, SinkError>;
    /// Deleting one that is not there is not an error.
    async fn delete(&self, tenant: &str, id: &str) -> Result<(), SinkError>;
}

/// A scan run as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSummary {
    pub id: String,
    pub status: ScanStatus,
    /// Why it is where it is (what it waits for, why it failed).
    pub reason: String,
    pub error: Option<String>,
    /// Its unit of work: a Job name, a process id, a message id.
    pub executor_ref: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Findings by severity, once the run ended.
    pub counts: Option<Vec<(Severity, u64)>>,
}

#[async_trait]
pub trait ScanSink: Send + Sync {
    /// Starts run `scan.id` unless it exists (then answers it): a retried start never makes
    /// a second run.
    async fn start(&self, scan: &DeclaredScan) -> Result<RunSummary, SinkError>;
    /// The run `id` of `tenant`, `None` when it is not (or no longer) stored.
    async fn run(&self, tenant: &str, id: &str) -> Result<Option<RunSummary>, SinkError>;
    /// Cancels the run unless it already ended; its record stays.
    async fn cancel(&self, tenant: &str, id: &str, reason: &str) -> Result<(), SinkError>;
}

#[async_trait]
pub trait RegistrySink: Send + Sync {
    /// Makes the registry `registry.id` what it declares; answers its id.
    async fn apply(&self, registry: &DeclaredRegistry) -> Result<String, SinkError>;
    /// Deleting one that is not there is not an error.
    async fn delete(&self, tenant: &str, id: &str) -> Result<(), SinkError>;
}

#[async_trait]
pub trait PolicySink: Send + Sync {
    /// Stores the scan execution policy a ScanPolicy declares (checked as the API checks a
    /// document).
    async fn apply(&self, policy: &DeclaredPolicy) -> Result<(), SinkError>;
    /// Deleting one that is not there is not an error.
    async fn delete(&self, tenant: &str, name: &str) -> Result<(), SinkError>;
}

/// The seams of every controller, as [`crate::controller::Context`] holds them.
#[derive(Clone)]
pub struct Sinks {
    pub schedules: std::sync::Arc<dyn ScheduleSink>,
    pub scans: std::sync::Arc<dyn ScanSink>,
    pub registries: std::sync::Arc<dyn RegistrySink>,
    pub policies: std::sync::Arc<dyn PolicySink>,
}
