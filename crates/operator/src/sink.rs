//! What the reconcilers need of scanplane's database, and nothing more: apply or delete one
//! declared schedule. `serve` implements it over the API layer's validation and the store;
//! tests implement it in memory.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use scanplane_core::declared::DeclaredSchedule;

/// The schedule as stored after an apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedSchedule {
    pub id: String,
    pub next_fire_at: Option<DateTime<Utc>>,
    pub last_fired_at: Option<DateTime<Utc>>,
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
