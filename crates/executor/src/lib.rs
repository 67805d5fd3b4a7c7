//! The executor seam: an [`Executor`] turns one scan attempt into an isolated unit of work
//! (a child process, a Kubernetes Job, a NATS message), reports what happens to it as
//! [`Observation`]s, and can cancel, list and clean up what it started.
//!
//! Every executor runs the same scanner mode (`scanplane job`) configured only by the env
//! vars [`job_env`] builds, so a scan behaves the same wherever it runs.

pub mod local;

use std::time::Duration;

use async_trait::async_trait;
use scanplane_core::scan::Trigger;

/// Everything a unit of work needs to run one attempt of one scan.
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchSpec {
    /// The `scan_run_id`.
    pub scan_id: String,
    pub attempt: u32,
    pub tenant: String,
    pub schedule_id: Option<String>,
    pub trigger: Trigger,
    pub scanner: String,
    /// Canonical target strings, accounts included as `account://ID`.
    pub targets: Vec<String>,
    pub billing: bool,
    /// Scanner options as JSON text.
    pub options: String,
    pub timeout: Duration,
    /// Base URL the job reports to, e.g. `http://127.0.0.1:8080`.
    pub server_url: String,
    /// The per-scan report token. Executors must not put it where other users can read it
    /// (Job specs, labels, command lines): env of a private process, or a Secret.
    pub report_token: String,
    /// Container image for executors that run images (per-scan or per-scanner override).
    pub image: Option<String>,
}

pub use scanplane_core::lifecycle::UnitState;

/// One report about one unit of work.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub scan_id: String,
    pub executor_ref: String,
    pub state: UnitState,
}

/// A unit of work an executor knows of, as listed for recovery.
#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    pub scan_id: String,
    pub executor_ref: String,
    /// Whether it is still executing.
    pub active: bool,
}

/// Failures callers act on.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// The executor could not start the unit now; the scan can be re-queued.
    #[error("could not launch scan {scan_id}: {message}")]
    Launch { scan_id: String, message: String },
    /// The unit does not exist (already gone).
    #[error("no unit of work {0}")]
    NotFound(String),
    /// The executor's backend (API server, broker) failed.
    #[error("executor backend error: {0}")]
    Backend(String),
}

/// The I/O seam between dispatch and wherever scans run.
#[async_trait]
pub trait Executor: Send + Sync {
    /// A short name: `local`, `kubernetes`, `nats`.
    fn name(&self) -> &'static str;

    /// Whether units of work outlive the process that launched them, so that a restarted
    /// control plane adopts them (Kubernetes Jobs) rather than stopping them (child
    /// processes, which die with their parent and cannot be waited on by a new one).
    fn units_survive_restart(&self) -> bool {
        false
    }

    /// Starts one attempt and returns the executor reference (pid, Job name, message id).
    /// What then happens to it arrives as [`Observation`]s on the executor's channel.
    async fn launch(&self, spec: &LaunchSpec) -> Result<String, ExecutorError>;

    /// Stops the unit of work (kills the process group, deletes the Job).
    async fn cancel(&self, scan_id: &str, executor_ref: &str) -> Result<(), ExecutorError>;

    /// Every unit of work this executor can see, for start-up recovery and the sweeper.
    async fn list(&self) -> Result<Vec<Unit>, ExecutorError>;

    /// Removes what a finished unit left behind (working directory, Job, Secret).
    async fn cleanup(&self, scan_id: &str, executor_ref: &str) -> Result<(), ExecutorError>;
}

/// Env var names of scanner mode (`scanplane job`), shared by every executor.
pub mod env {
    pub const SCAN_ID: &str = "SCANPLANE_SCAN_ID";
    pub const SERVER_URL: &str = "SCANPLANE_SERVER_URL";
    pub const REPORT_TOKEN: &str = "SCANPLANE_REPORT_TOKEN";
    pub const SCANNER: &str = "SCANPLANE_SCANNER";
    /// Newline-separated canonical targets (targets may contain commas).
    pub const TARGETS: &str = "SCANPLANE_TARGETS";
    /// Comma-separated account ids (seed 000 FR-4).
    pub const ACCOUNT_IDS: &str = "ACCOUNT_IDS";
    /// `true` or `false` (seed 000 FR-4).
    pub const BILLING: &str = "BILLING";
    /// Scanner options as JSON.
    pub const OPTIONS: &str = "SCANPLANE_OPTIONS";
    /// The scan's timeout, e.g. `30m`.
    pub const TIMEOUT: &str = "SCANNER_TIMEOUT";
    pub const ATTEMPT: &str = "SCANPLANE_ATTEMPT";
}

/// The env of scanner mode for one attempt, without the report token (which each executor
/// delivers its own private way).
pub fn job_env(spec: &LaunchSpec) -> Vec<(String, String)> {
    let accounts: Vec<&str> = spec
        .targets
        .iter()
        .filter_map(|t| t.strip_prefix("account://"))
        .collect();
    vec![
        (env::SCAN_ID.into(), spec.scan_id.clone()),
        (env::SERVER_URL.into(), spec.server_url.clone()),
        (env::SCANNER.into(), spec.scanner.clone()),
        (env::TARGETS.into(), spec.targets.join("\n")),
        (env::ACCOUNT_IDS.into(), accounts.join(",")),
        (env::BILLING.into(), spec.billing.to_string()),
        (env::OPTIONS.into(), spec.options.clone()),
        (
            env::TIMEOUT.into(),
            scanplane_core::duration::format_duration(spec.timeout),
        ),
        (env::ATTEMPT.into(), spec.attempt.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_env_carries_accounts_and_billing() {
        let spec = LaunchSpec {
            scan_id: "s".into(),
            attempt: 1,
            tenant: "default".into(),
            schedule_id: None,
            trigger: Trigger::OnDemand,
            scanner: "inventory".into(),
            targets: vec![
                "account://111".into(),
                "account://222".into(),
                "10.0.0.1".into(),
            ],
            billing: true,
            options: "{}".into(),
            timeout: Duration::from_secs(1800),
            server_url: "http://127.0.0.1:8080".into(),
            report_token: "secret".into(),
            image: None,
        };
        let env = job_env(&spec);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("ACCOUNT_IDS"), Some("111,222"));
        assert_eq!(get("BILLING"), Some("true"));
        assert_eq!(get("SCANNER_TIMEOUT"), Some("30m"));
        assert!(
            env.iter().all(|(_, v)| !v.contains("secret")),
            "token never in the shared env"
        );
    }
}
