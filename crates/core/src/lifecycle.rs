//! What happens to a scan when its unit of work reports something, or is found missing
//! after a restart: pure decisions the dispatcher then applies to the store.

use crate::scan::{Scan, ScanStatus};

/// What an executor saw happen to a unit of work.
#[derive(Debug, Clone, PartialEq)]
pub enum UnitState {
    /// The unit started executing (process spawned, pod running). `detail` names the pod
    /// or process for log retrieval.
    Running { detail: Option<String> },
    /// The unit ended by itself. Success means the scanner process exited 0; the scan's
    /// result still comes from its report.
    Exited {
        success: bool,
        exit_code: Option<i32>,
        /// Termination message or the last lines of stderr.
        message: String,
    },
    /// The unit was killed at its deadline.
    TimedOut { message: String },
    /// The unit could not run (image pull failure, unschedulable, spawn error).
    Failed { message: String },
    /// The unit no longer exists and nothing is known about how it ended.
    Gone,
}

/// What to do with the scan.
#[derive(Debug, Clone, PartialEq)]
pub enum Intent {
    /// Nothing: the scan already moved on (e.g. it reported, or was cancelled).
    Nothing,
    /// `dispatched -> running`; the reason names the pod or process, for log retrieval.
    MarkRunning { reason: String },
    /// The unit exited cleanly: the final report should be in; if the scan is still not
    /// terminal once the report grace has passed, it failed without a report.
    AwaitReport,
    /// Back to the queue for another attempt.
    Requeue { reason: String },
    /// End the scan.
    End {
        status: ScanStatus,
        reason: String,
        error: Option<String>,
    },
}

fn retry_or_fail(scan: &Scan, max_attempts: u32, what: String) -> Intent {
    if scan.attempts < max_attempts {
        Intent::Requeue {
            reason: format!(
                "re-queued: attempt {} of {max_attempts} failed: {what}",
                scan.attempts
            ),
        }
    } else {
        Intent::End {
            status: ScanStatus::Failed,
            reason: format!("failed after {} attempts: {what}", scan.attempts),
            error: Some(what),
        }
    }
}

/// Decides what a unit's new state means for its scan. `max_attempts` counts the first.
pub fn after_unit(scan: &Scan, state: &UnitState, max_attempts: u32) -> Intent {
    if scan.status.is_terminal() {
        return Intent::Nothing;
    }
    match state {
        UnitState::Running { detail } => {
            if scan.status == ScanStatus::Dispatched {
                let reason = match detail {
                    Some(d) => format!("running: {d}"),
                    None => "running".to_string(),
                };
                Intent::MarkRunning { reason }
            } else {
                Intent::Nothing
            }
        }
        UnitState::Exited { success: true, .. } => Intent::AwaitReport,
        UnitState::Exited {
            success: false,
            exit_code,
            message,
        } => {
            let code = exit_code.map_or("killed by a signal".to_string(), |c| {
                format!("exit code {c}")
            });
            let what = if message.trim().is_empty() {
                code
            } else {
                format!("{code}: {}", message.trim())
            };
            retry_or_fail(scan, max_attempts, what)
        }
        UnitState::TimedOut { message } => Intent::End {
            status: ScanStatus::TimedOut,
            reason: format!("timed out: {message}"),
            error: Some(message.clone()),
        },
        UnitState::Failed { message } => Intent::End {
            status: ScanStatus::Failed,
            reason: format!("failed: {message}"),
            error: Some(message.clone()),
        },
        UnitState::Gone => retry_or_fail(
            scan,
            max_attempts,
            "its unit of work disappeared".to_string(),
        ),
    }
}

/// A scan that clean-exited but never delivered its final report.
pub fn report_missing() -> Intent {
    Intent::End {
        status: ScanStatus::Failed,
        reason: "failed: job completed without a report".to_string(),
        error: Some("job completed without a report".to_string()),
    }
}

/// Start-up recovery for a scan found holding a slot with no live unit of
/// work: an admitted scan never started and simply goes back to the queue; a dispatched
/// or running one lost its attempt and is re-queued while attempts remain.
pub fn recover(scan: &Scan, max_attempts: u32) -> Intent {
    match scan.status {
        ScanStatus::Admitted => Intent::Requeue {
            reason: "re-queued: recovered after restart before it was started".to_string(),
        },
        ScanStatus::Dispatched | ScanStatus::Running => {
            let what = format!(
                "recovered after restart: its unit of work was gone while {}",
                scan.status
            );
            retry_or_fail(scan, max_attempts, what)
        }
        _ => Intent::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::Trigger;
    use chrono::Utc;

    fn scan(status: ScanStatus, attempts: u32) -> Scan {
        let now = Utc::now();
        Scan {
            id: "s".into(),
            tenant_id: "t".into(),
            project_id: None,
            schedule_id: None,
            fire_time: None,
            trigger: Trigger::OnDemand,
            scanner: "tcp".into(),
            targets: vec![],
            billing: false,
            options: "{}".into(),
            status,
            reason: String::new(),
            attempts,
            created_at: now,
            updated_at: now,
            admitted_at: None,
            started_at: None,
            finished_at: None,
            executor_ref: None,
            error: None,
            targets_scanned: vec![],
            findings_count: 0,
            findings_rejected: 0,
            rejections: vec![],
        }
    }

    #[test]
    fn failures_retry_then_fail_with_the_reason() {
        let exit = UnitState::Exited {
            success: false,
            exit_code: Some(3),
            message: "boom".into(),
        };
        assert!(
            matches!(after_unit(&scan(ScanStatus::Running, 1), &exit, 2), Intent::Requeue { reason } if reason.contains("exit code 3: boom"))
        );
        match after_unit(&scan(ScanStatus::Running, 2), &exit, 2) {
            Intent::End { status, error, .. } => {
                assert_eq!(status, ScanStatus::Failed);
                assert_eq!(error.as_deref(), Some("exit code 3: boom"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn timeouts_and_terminal_scans() {
        let t = UnitState::TimedOut {
            message: "killed after 30m".into(),
        };
        assert!(matches!(
            after_unit(&scan(ScanStatus::Running, 1), &t, 3),
            Intent::End {
                status: ScanStatus::TimedOut,
                ..
            }
        ));
        assert_eq!(
            after_unit(&scan(ScanStatus::Cancelled, 1), &t, 3),
            Intent::Nothing
        );
        assert_eq!(
            after_unit(
                &scan(ScanStatus::Dispatched, 1),
                &UnitState::Running {
                    detail: Some("pod scan-a-1-xk2p9".into())
                },
                3
            ),
            Intent::MarkRunning {
                reason: "running: pod scan-a-1-xk2p9".into()
            }
        );
        assert_eq!(
            after_unit(
                &scan(ScanStatus::Running, 1),
                &UnitState::Running { detail: None },
                3
            ),
            Intent::Nothing
        );
        assert_eq!(
            after_unit(
                &scan(ScanStatus::Running, 1),
                &UnitState::Exited {
                    success: true,
                    exit_code: Some(0),
                    message: String::new()
                },
                3
            ),
            Intent::AwaitReport
        );
    }

    #[test]
    fn recovery_says_why() {
        assert!(matches!(
            recover(&scan(ScanStatus::Admitted, 0), 2),
            Intent::Requeue { .. }
        ));
        assert!(
            matches!(recover(&scan(ScanStatus::Running, 1), 2), Intent::Requeue { reason } if reason.contains("recovered after restart"))
        );
        assert!(matches!(
            recover(&scan(ScanStatus::Running, 2), 2),
            Intent::End {
                status: ScanStatus::Failed,
                ..
            }
        ));
        assert_eq!(recover(&scan(ScanStatus::Queued, 0), 2), Intent::Nothing);
    }
}
