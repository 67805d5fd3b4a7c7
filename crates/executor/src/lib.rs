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
    /// The custom scanner's definition as JSON ([`env::SCANNER_DEFINITION`]); `None` for
    /// built-in scanners. Delivered as privately as the report token.
    pub scanner_definition: Option<String>,
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
    /// The attempt it was launched for, when the executor records it (a Job label, the
    /// process environment).
    pub attempt: Option<u32>,
    /// Whether it is still executing.
    pub active: bool,
    /// How it ended, when it has and the executor can tell (a finished Job's conditions):
    /// what a replica taking the attempt over applies.
    pub ended: Option<UnitState>,
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

    /// Every unit of work this executor can see, for takeovers and the periodic sweep. Units
    /// that do not survive their replica are listed only by the replica that runs them.
    async fn list(&self) -> Result<Vec<Unit>, ExecutorError>;

    /// Removes what a finished unit left behind (working directory, Job, Secret).
    async fn cleanup(&self, scan_id: &str, executor_ref: &str) -> Result<(), ExecutorError>;
}

/// The scanner-mode env contract, re-exported for executors.
pub use scanplane_protocol::env;

impl LaunchSpec {
    /// What the unit of work is told about this attempt (everything but the report token).
    pub fn unit_env(&self) -> env::UnitEnv {
        env::UnitEnv {
            scan_id: self.scan_id.clone(),
            attempt: self.attempt,
            server_url: self.server_url.clone(),
            scanner: self.scanner.clone(),
            targets: self.targets.clone(),
            billing: self.billing,
            options: self.options.clone(),
            timeout: self.timeout,
        }
    }
}

/// The env of scanner mode for one attempt, without the report token (which each executor
/// delivers its own private way).
pub fn job_env(spec: &LaunchSpec) -> Vec<(String, String)> {
    spec.unit_env().to_vars()
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
            scanner_definition: Some(r#"{"name":"inventory","env":{"K":"v"}}"#.into()),
        };
        let env = job_env(&spec);
        assert!(
            env.iter().all(|(k, _)| k != env::SCANNER_DEFINITION),
            "the definition is delivered privately, not in the public env"
        );
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
