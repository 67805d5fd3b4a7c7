//! One scan run (its id is the `scan_run_id`) and the state machine every run follows.
//!
//! ```text
//! queued ──► admitted ──► dispatched ──► running ──► succeeded | failed | timed_out | cancelled
//!   │  ▲         │            │             │
//!   │  └─────────┴────────────┴─────────────┘  (re-queued: retry, or recovery after a crash)
//!   └──► skipped | cancelled | failed
//! ```
//! Every state change goes through [`ScanStatus::transition`]; the store applies it as a
//! compare-and-set on the current state, so two actors can never both move the same run.

use std::fmt;
use std::str::FromStr;

use crate::Timestamp;

/// Where a scan is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScanStatus {
    Queued,
    Admitted,
    Dispatched,
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
    Skipped,
}

/// A transition the state machine forbids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a scan cannot go from {from} to {to}")]
pub struct IllegalTransition {
    pub from: ScanStatus,
    pub to: ScanStatus,
}

/// A status string that names no state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scan status {0:?}; expected one of queued, admitted, dispatched, running, succeeded, failed, timed_out, cancelled, skipped")]
pub struct UnknownStatus(pub String);

impl ScanStatus {
    pub const ALL: [ScanStatus; 9] = [
        ScanStatus::Queued,
        ScanStatus::Admitted,
        ScanStatus::Dispatched,
        ScanStatus::Running,
        ScanStatus::Succeeded,
        ScanStatus::Failed,
        ScanStatus::TimedOut,
        ScanStatus::Cancelled,
        ScanStatus::Skipped,
    ];

    /// States a scan never leaves.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ScanStatus::Succeeded
                | ScanStatus::Failed
                | ScanStatus::TimedOut
                | ScanStatus::Cancelled
                | ScanStatus::Skipped
        )
    }

    /// States in which the scan holds a concurrency slot.
    pub fn holds_slot(self) -> bool {
        matches!(
            self,
            ScanStatus::Admitted | ScanStatus::Dispatched | ScanStatus::Running
        )
    }

    /// Whether the state machine allows `self -> to`.
    pub fn can_transition_to(self, to: ScanStatus) -> bool {
        use ScanStatus::*;
        matches!(
            (self, to),
            (Queued, Admitted | Skipped | Cancelled | Failed)
                | (Admitted, Dispatched | Queued | Cancelled | Failed)
                | (
                    Dispatched,
                    Running | Queued | Succeeded | Failed | TimedOut | Cancelled
                )
                | (Running, Queued | Succeeded | Failed | TimedOut | Cancelled)
        )
    }

    /// Checks `self -> to`, returning the new state or the reason it is illegal.
    pub fn transition(self, to: ScanStatus) -> Result<ScanStatus, IllegalTransition> {
        if self.can_transition_to(to) {
            Ok(to)
        } else {
            Err(IllegalTransition { from: self, to })
        }
    }

    /// Every state from which `to` may be entered: the store's compare-and-set guard.
    pub fn sources_of(to: ScanStatus) -> Vec<ScanStatus> {
        Self::ALL
            .into_iter()
            .filter(|from| from.can_transition_to(to))
            .collect()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ScanStatus::Queued => "queued",
            ScanStatus::Admitted => "admitted",
            ScanStatus::Dispatched => "dispatched",
            ScanStatus::Running => "running",
            ScanStatus::Succeeded => "succeeded",
            ScanStatus::Failed => "failed",
            ScanStatus::TimedOut => "timed_out",
            ScanStatus::Cancelled => "cancelled",
            ScanStatus::Skipped => "skipped",
        }
    }
}

impl fmt::Display for ScanStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ScanStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

/// What started a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    OnDemand,
    Schedule,
    Policy,
    /// Created by an earlier step of a pipeline (an SBOM for a digest a discovery found).
    Pipeline,
}

/// A trigger string that names no trigger.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown trigger {0:?}; expected on_demand, schedule, policy or pipeline")]
pub struct UnknownTrigger(pub String);

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::OnDemand => "on_demand",
            Trigger::Schedule => "schedule",
            Trigger::Policy => "policy",
            Trigger::Pipeline => "pipeline",
        }
    }

    /// Admission priority: lower is admitted first. On-demand work is never starved by
    /// scheduled scan-all runs.
    pub fn priority(self) -> u8 {
        match self {
            Trigger::OnDemand => 0,
            Trigger::Policy => 1,
            Trigger::Schedule => 1,
            Trigger::Pipeline => 1,
        }
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Trigger {
    type Err = UnknownTrigger;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "on_demand" => Ok(Trigger::OnDemand),
            "schedule" => Ok(Trigger::Schedule),
            "policy" => Ok(Trigger::Policy),
            "pipeline" => Ok(Trigger::Pipeline),
            other => Err(UnknownTrigger(other.to_string())),
        }
    }
}

/// One scan run.
#[derive(Debug, Clone, PartialEq)]
pub struct Scan {
    /// The `scan_run_id`.
    pub id: String,
    pub tenant_id: String,
    pub project_id: Option<String>,
    pub schedule_id: Option<String>,
    /// The schedule tick this run was fired for (unique with `schedule_id`).
    pub fire_time: Option<Timestamp>,
    pub trigger: Trigger,
    pub scanner: String,
    /// Canonical target strings (see [`crate::target::Target`]), accounts included.
    pub targets: Vec<String>,
    pub billing: bool,
    /// The scanner's own options, as JSON text (validated by the scanner).
    pub options: String,
    pub status: ScanStatus,
    /// Why the scan is in its current state, for humans.
    pub reason: String,
    pub attempts: u32,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub admitted_at: Option<Timestamp>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    /// Reference to the unit of work running the scan (process id, Job name, message id).
    pub executor_ref: Option<String>,
    pub error: Option<String>,
    /// Targets the scanner reported as scanned.
    pub targets_scanned: Vec<String>,
    pub findings_count: u64,
    /// Findings its report dropped as malformed or oversized (the rest were stored).
    pub findings_rejected: u64,
    /// The first reasons for those rejections (at most [`MAX_REJECTIONS`]).
    pub rejections: Vec<String>,
    /// The replica that owns the current attempt (the one that launched it, or took it over
    /// from a lost replica); `None` while the scan is not dispatched or running.
    pub owner: Option<String>,
    /// When the current attempt's unit of work was launched.
    pub launched_at: Option<Timestamp>,
    /// When the current attempt's unit exited cleanly: its final report is due by this plus
    /// the report grace, whoever owns the attempt by then.
    pub exited_at: Option<Timestamp>,
    /// Attempts lost with their replica (a control-plane crash, not the scanner's failure):
    /// counted in `attempts` but not against the scan's retry budget.
    pub lost_attempts: u32,
}

/// How many rejection reasons a scan keeps; `findings_rejected` counts all of them.
pub const MAX_REJECTIONS: usize = 5;

impl Scan {
    /// Wall-clock duration of the run, once it has started.
    pub fn duration(&self) -> Option<chrono::Duration> {
        let start = self.started_at?;
        let end = self.finished_at.unwrap_or(self.updated_at);
        // The start and the end are written by different writers (the dispatcher marks a
        // scan running, the report endpoint ends it; replicas' clocks differ by a few ms),
        // so the end can be stamped a hair before the start: a run never lasts less than 0.
        Some((end - start).max(chrono::Duration::zero()))
    }

    /// The key of comparable runs without scope options: same tenant, scanner and set of
    /// targets. Scans store the key they were created with (see [`scope_key`]); this is
    /// the key of rows written before options were part of it.
    pub fn scope_key(&self) -> String {
        scope_key(&self.tenant_id, &self.scanner, &self.targets, "")
    }

    /// The accounts among the targets (the `accounts` of a scan request).
    pub fn accounts(&self) -> Vec<String> {
        self.targets
            .iter()
            .filter_map(|t| t.strip_prefix("account://").map(str::to_string))
            .collect()
    }
}

/// The key of comparable runs: same tenant, scanner, set of targets and scope options (the
/// canonical JSON of the options that change what the scanner can report, `""` or `"{}"`
/// when none). A finding's "fixed" and a run's diff are decided among runs of one scope.
/// Target order and duplicates do not matter; without scope options the key is the one
/// runs had before options were part of it.
pub fn scope_key(
    tenant_id: &str,
    scanner: &str,
    targets: &[String],
    scope_options: &str,
) -> String {
    let mut sorted: Vec<&str> = targets.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts = vec![tenant_id];
    parts.extend(sorted);
    let options = format!("options:{scope_options}");
    if !matches!(scope_options, "" | "{}") {
        parts.push(&options);
    }
    crate::finding::fingerprint(scanner, &parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ScanStatus::*;

    #[test]
    fn scope_ignores_target_order() {
        let ab = || vec!["a".to_string(), "b".to_string()];
        let a = scope_key("t", "nmap", &["b".into(), "a".into(), "a".into()], "");
        assert_eq!(a, scope_key("t", "nmap", &ab(), ""));
        assert_eq!(a, scope_key("t", "nmap", &ab(), "{}"), "no scope options");
        assert_ne!(a, scope_key("t", "tcp", &ab(), ""));
        assert_ne!(a, scope_key("u", "nmap", &ab(), ""));
    }

    #[test]
    fn scope_options_separate_runs() {
        let t = vec!["fs:///src".to_string()];
        let wide = scope_key("t", "trivy", &t, r#"{"scanners":"misconfig,secret"}"#);
        let narrow = scope_key("t", "trivy", &t, r#"{"scanners":"misconfig"}"#);
        assert_ne!(wide, narrow);
        assert_ne!(wide, scope_key("t", "trivy", &t, ""));
    }

    #[test]
    fn happy_path_is_legal() {
        let mut s = Queued;
        for next in [Admitted, Dispatched, Running, Succeeded] {
            s = s.transition(next).unwrap();
        }
        assert_eq!(s, Succeeded);
    }

    #[test]
    fn terminal_states_are_final() {
        for from in ScanStatus::ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in ScanStatus::ALL {
                assert_eq!(from.transition(to), Err(IllegalTransition { from, to }));
            }
        }
    }

    #[test]
    fn illegal_shortcuts_are_rejected() {
        assert!(Queued.transition(Running).is_err());
        assert!(Queued.transition(Succeeded).is_err());
        assert!(Queued.transition(TimedOut).is_err());
        assert!(Admitted.transition(Running).is_err());
        assert!(Running.transition(Admitted).is_err());
        assert!(Running.transition(Skipped).is_err());
        assert!(Queued.transition(Queued).is_err());
    }

    #[test]
    fn recovery_requeues_from_every_slot_holding_state() {
        for s in [Admitted, Dispatched, Running] {
            assert!(s.holds_slot());
            assert_eq!(s.transition(Queued), Ok(Queued));
        }
        assert!(!Queued.holds_slot());
    }

    #[test]
    fn sources_are_the_inverse_of_transitions() {
        assert_eq!(ScanStatus::sources_of(Running), vec![Dispatched]);
        assert_eq!(
            ScanStatus::sources_of(Queued),
            vec![Admitted, Dispatched, Running]
        );
        assert_eq!(ScanStatus::sources_of(Skipped), vec![Queued]);
        assert_eq!(
            ScanStatus::sources_of(Cancelled),
            vec![Queued, Admitted, Dispatched, Running]
        );
    }

    #[test]
    fn status_strings_round_trip() {
        for s in ScanStatus::ALL {
            assert_eq!(s.as_str().parse::<ScanStatus>(), Ok(s));
        }
        assert!("done".parse::<ScanStatus>().is_err());
        for t in [Trigger::OnDemand, Trigger::Schedule, Trigger::Policy] {
            assert_eq!(t.as_str().parse::<Trigger>(), Ok(t));
        }
    }
}
