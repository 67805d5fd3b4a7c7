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
    /// The unit was lost with the machine that ran it (a NATS worker that stopped
    /// heartbeating): it may run again elsewhere, charged to the scan's retry budget.
    Lost { message: String },
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
    /// Back to the queue for another attempt, after a delay when attempts failed:
    /// `failures` is how many did (0: none; the next may start at once), see
    /// [`retry_delay`].
    Requeue { reason: String, failures: u32 },
    /// Back to the queue because the attempt was lost with its replica: counted in
    /// `lost_attempts`, not against the retry budget.
    RequeueLost { reason: String },
    /// End the scan.
    End {
        status: ScanStatus,
        reason: String,
        error: Option<String>,
    },
}

/// Attempts lost with their replica a scan may have before it fails: a crash loop of the
/// control plane still ends every scan, with the reason.
pub const MAX_LOST_ATTEMPTS: u32 = 5;

/// Attempts charged to the scanner: every attempt but those lost with their replica.
pub fn charged_attempts(scan: &Scan) -> u32 {
    scan.attempts.saturating_sub(scan.lost_attempts)
}

/// Exit code of scanner mode for a configuration error (a scanner, target or definition it
/// cannot use): another attempt would fail the same way.
pub const EXIT_CONFIG: i32 = 2;
/// Exit code of scanner mode for a scan failure that will recur (the tool is missing, its
/// output is unreadable, an option or target is refused): not retried.
pub const EXIT_PERMANENT: i32 = 4;

/// Whether a unit's exit code says another attempt would fail the same way.
pub fn is_permanent_exit(code: Option<i32>) -> bool {
    matches!(code, Some(EXIT_CONFIG | EXIT_PERMANENT))
}

/// Longest reason line taken from a unit's output.
const SUMMARY_MAX: usize = 300;

/// One line that says why a unit failed, from its output (the last lines of stderr): the
/// last `error: ` line scanner mode printed, else the last non-empty line, cut to
/// [`SUMMARY_MAX`] characters. Log lines before it stay in the scan's `error`.
pub fn failure_summary(message: &str) -> String {
    let mut lines = message.lines().map(str::trim).filter(|l| !l.is_empty());
    let line = lines
        .clone()
        .filter_map(|l| l.strip_prefix("error: "))
        .next_back()
        .or_else(|| lines.next_back())
        .unwrap_or("");
    match line.char_indices().nth(SUMMARY_MAX) {
        Some((cut, _)) => format!("{}...", &line[..cut]),
        None => line.to_string(),
    }
}

/// How long a scan waits in the queue after its `failures`-th failed attempt: `base`
/// doubled for each failure before it (`base`, 2×, 4×, ...), never more than `cap`. A
/// failure that is about the target's or the network's state gets time to clear; the
/// queue is not filled with attempts that fail in a row.
pub fn retry_delay(
    failures: u32,
    base: std::time::Duration,
    cap: std::time::Duration,
) -> std::time::Duration {
    if failures == 0 {
        return std::time::Duration::ZERO;
    }
    let factor = 1u32.checked_shl(failures - 1).unwrap_or(u32::MAX);
    base.checked_mul(factor).unwrap_or(cap).min(cap)
}

fn retry_or_fail(scan: &Scan, max_attempts: u32, what: String) -> Intent {
    let charged = charged_attempts(scan);
    if charged < max_attempts {
        Intent::Requeue {
            reason: format!("re-queued: attempt {charged} of {max_attempts} failed: {what}"),
            failures: charged,
        }
    } else {
        Intent::End {
            status: ScanStatus::Failed,
            reason: format!("failed after {charged} attempts: {what}"),
            error: Some(what),
        }
    }
}

/// The current attempt of a dispatched or running scan was lost with its replica (`why`,
/// e.g. `replica a-1 lost`): back to the queue without charging the scanner, until
/// [`MAX_LOST_ATTEMPTS`] such losses end it.
pub fn attempt_lost(scan: &Scan, why: &str) -> Intent {
    if scan.status.is_terminal() {
        return Intent::Nothing;
    }
    if scan.status == ScanStatus::Admitted {
        // Never started: nothing was lost but time.
        return Intent::Requeue {
            reason: format!("re-queued: {why} before it was started"),
            failures: 0,
        };
    }
    let lost = scan.lost_attempts.saturating_add(1);
    if lost > MAX_LOST_ATTEMPTS {
        let what = format!("lost {lost} times with its replica (last: {why})");
        Intent::End {
            status: ScanStatus::Failed,
            reason: format!("failed: {what}"),
            error: Some(what),
        }
    } else {
        Intent::RequeueLost {
            reason: format!(
                "re-queued: {why} while it ran this scan (not counted as a failed attempt)"
            ),
        }
    }
}

/// Where an observation of a unit of work stands against the scan's current attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// About the current attempt, which `me` owns: apply it.
    Current,
    /// About an earlier attempt (or a unit the scan no longer points at): it may only clean
    /// that unit up, never change the scan.
    Stale,
    /// About an attempt another replica owns: not ours to apply.
    Foreign,
}

/// Matches an observation of unit `executor_ref` to `scan` as replica `me` sees it.
/// `launched` is the unit this replica launched for the scan and may not have recorded yet
/// (the write of `executor_ref` can be pending). Units of attempts another replica owns are
/// never touched here, even when they look stale: between launching a unit and recording
/// it, the owner's new unit is unknown to everyone else (the periodic sweep, which lists
/// before it reads, decides those).
pub fn fit(scan: &Scan, me: &str, executor_ref: &str, launched: Option<&str>) -> Fit {
    if scan.owner.as_deref() != Some(me) {
        return Fit::Foreign;
    }
    match scan.executor_ref.as_deref().or(launched) {
        Some(current) if current == executor_ref => Fit::Current,
        _ => Fit::Stale,
    }
}

/// A unit of work as the periodic sweep lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedUnit<'a> {
    pub executor_ref: &'a str,
    /// The attempt it was launched for, when the executor records it.
    pub attempt: Option<u32>,
    pub active: bool,
}

/// What the sweep does with a unit this replica does not follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sweep {
    /// Leave it: another replica follows it, or it is a finished unit kept for its logs.
    Keep,
    /// It runs the current attempt of a scan this replica owns: follow it.
    Adopt,
    /// Stop (if active) and clean it up, for the reason given.
    Remove(&'static str),
}

/// Whether `unit` is the unit of `scan`'s current attempt.
pub fn is_current_unit(scan: &Scan, unit: &ListedUnit<'_>) -> bool {
    match scan.executor_ref.as_deref() {
        Some(current) => current == unit.executor_ref,
        None => unit.attempt == Some(scan.attempts),
    }
}

/// Decides what the sweep does with a listed unit, given its scan as read *after* the
/// listing (so a unit launched meanwhile is already reflected in its scan).
pub fn sweep(unit: &ListedUnit<'_>, scan: Option<&Scan>, me: &str) -> Sweep {
    let Some(scan) = scan else {
        return Sweep::Remove("its scan does not exist");
    };
    if scan.status.is_terminal() {
        return if unit.active {
            Sweep::Remove("its scan has ended")
        } else {
            Sweep::Keep
        };
    }
    let live = matches!(scan.status, ScanStatus::Dispatched | ScanStatus::Running);
    if live && is_current_unit(scan, unit) {
        return if scan.owner.as_deref() == Some(me) {
            Sweep::Adopt
        } else {
            Sweep::Keep
        };
    }
    if live && scan.executor_ref.is_none() && unit.attempt.is_none() {
        // Cannot tell which attempt it runs while the owner has not recorded its unit.
        return Sweep::Keep;
    }
    if unit.active {
        Sweep::Remove("it runs an earlier attempt of its scan")
    } else {
        Sweep::Keep
    }
}

/// What a replica does with an attempt it took over from a lost one.
#[derive(Debug, Clone, PartialEq)]
pub enum Takeover {
    /// The unit still runs: follow it as if this replica had launched it.
    Adopt,
    /// Apply this to the scan (the unit ended meanwhile, or is gone).
    Act(Intent),
}

/// Decides a takeover of `scan`'s attempt from `why` (e.g. `replica a-1 lost`), given the
/// state of its unit if the executor still knows it: `Some(None)` is a unit still running,
/// `Some(Some(state))` one that ended in `state`, `None` no unit at all. Units that do not
/// survive their replica are lost with it whatever the listing says.
pub fn take_over(
    scan: &Scan,
    why: &str,
    unit: Option<Option<&UnitState>>,
    units_survive: bool,
    max_attempts: u32,
) -> Takeover {
    if scan.status.is_terminal() {
        return Takeover::Act(Intent::Nothing);
    }
    if !units_survive {
        return Takeover::Act(attempt_lost(scan, why));
    }
    match unit {
        Some(None) => Takeover::Adopt,
        Some(Some(state)) => match after_unit(scan, state, max_attempts) {
            // The report may still come: whoever owns the attempt now enforces the grace.
            Intent::AwaitReport | Intent::Nothing | Intent::MarkRunning { .. } => Takeover::Adopt,
            other => Takeover::Act(other),
        },
        None => Takeover::Act(attempt_lost(scan, why)),
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
            let summary = failure_summary(message);
            if is_permanent_exit(*exit_code) {
                // Another attempt would fail the same way: end now, with the one line.
                return Intent::End {
                    status: ScanStatus::Failed,
                    reason: format!("failed: {summary} (not retried: it would recur)"),
                    error: Some(message.trim().to_string()).filter(|m| !m.is_empty()),
                };
            }
            let what = if summary.is_empty() {
                code
            } else {
                format!("{code}: {summary}")
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
        UnitState::Lost { message } => retry_or_fail(scan, max_attempts, message.clone()),
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

/// Recovery of a scan found holding a slot that no replica owns (a row written before
/// replicas owned attempts) and with no live unit of work: an admitted scan never started
/// and simply goes back to the queue; a dispatched or running one lost its attempt and is
/// re-queued while attempts remain.
pub fn recover(scan: &Scan, max_attempts: u32) -> Intent {
    match scan.status {
        ScanStatus::Admitted => Intent::Requeue {
            reason: "re-queued: recovered after restart before it was started".to_string(),
            failures: 0,
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

    #[test]
    fn lost_attempts_do_not_charge_the_scanner() {
        let mut s = scan(ScanStatus::Running, 3);
        s.lost_attempts = 2;
        let exit = UnitState::Exited {
            success: false,
            exit_code: Some(1),
            message: String::new(),
        };
        // Three attempts, two lost with their replica: the scanner failed once of three.
        assert!(
            matches!(after_unit(&s, &exit, 3), Intent::Requeue { reason, .. } if reason.contains("attempt 1 of 3"))
        );
        assert!(
            matches!(attempt_lost(&s, "replica a-1 lost"), Intent::RequeueLost { reason } if reason.contains("replica a-1 lost"))
        );
        s.lost_attempts = MAX_LOST_ATTEMPTS;
        assert!(
            matches!(attempt_lost(&s, "replica a-1 lost"), Intent::End { status: ScanStatus::Failed, reason, .. } if reason.contains("lost 6 times"))
        );
        assert!(matches!(
            attempt_lost(&scan(ScanStatus::Admitted, 0), "replica a-1 lost"),
            Intent::Requeue { .. }
        ));
        assert_eq!(
            attempt_lost(&scan(ScanStatus::Succeeded, 1), "x"),
            Intent::Nothing
        );
    }

    #[test]
    fn observations_fit_only_the_current_attempt_of_their_owner() {
        let mut s = scan(ScanStatus::Running, 2);
        s.owner = Some("b".into());
        s.executor_ref = Some("scan-s-2".into());
        assert_eq!(fit(&s, "b", "scan-s-2", None), Fit::Current);
        assert_eq!(fit(&s, "b", "scan-s-1", None), Fit::Stale);
        assert_eq!(fit(&s, "a", "scan-s-2", None), Fit::Foreign);
        assert_eq!(fit(&s, "a", "scan-s-1", None), Fit::Foreign);
        // Launched, its reference not yet recorded.
        s.executor_ref = None;
        assert_eq!(fit(&s, "b", "pid:7", Some("pid:7")), Fit::Current);
        assert_eq!(fit(&s, "b", "pid:6", Some("pid:7")), Fit::Stale);
        assert_eq!(fit(&s, "b", "pid:6", None), Fit::Stale);
    }

    #[test]
    fn the_sweep_removes_only_what_no_attempt_needs() {
        let unit = |r: &'static str, attempt: Option<u32>, active: bool| ListedUnit {
            executor_ref: r,
            attempt,
            active,
        };
        let mut s = scan(ScanStatus::Running, 2);
        s.owner = Some("b".into());
        s.executor_ref = Some("scan-s-2".into());
        assert_eq!(
            sweep(&unit("scan-s-2", Some(2), true), Some(&s), "b"),
            Sweep::Adopt
        );
        assert_eq!(
            sweep(&unit("scan-s-2", Some(2), true), Some(&s), "a"),
            Sweep::Keep
        );
        assert_eq!(
            sweep(&unit("scan-s-1", Some(1), true), Some(&s), "a"),
            Sweep::Remove("it runs an earlier attempt of its scan")
        );
        assert_eq!(
            sweep(&unit("scan-s-1", Some(1), false), Some(&s), "a"),
            Sweep::Keep
        );
        assert_eq!(
            sweep(&unit("x", None, true), None, "a"),
            Sweep::Remove("its scan does not exist")
        );
        // Launched by its owner, not yet recorded: the attempt label says it is current.
        s.executor_ref = None;
        assert_eq!(
            sweep(&unit("scan-s-2", Some(2), true), Some(&s), "a"),
            Sweep::Keep
        );
        assert_eq!(
            sweep(&unit("scan-s-1", Some(1), true), Some(&s), "a"),
            Sweep::Remove("it runs an earlier attempt of its scan")
        );
        assert_eq!(
            sweep(&unit("pid:9", None, true), Some(&s), "a"),
            Sweep::Keep
        );
        // Re-queued: whatever still runs is an earlier attempt.
        let q = scan(ScanStatus::Queued, 2);
        assert_eq!(
            sweep(&unit("scan-s-2", Some(2), true), Some(&q), "a"),
            Sweep::Remove("it runs an earlier attempt of its scan")
        );
        let done = scan(ScanStatus::Succeeded, 2);
        assert_eq!(
            sweep(&unit("scan-s-2", Some(2), true), Some(&done), "a"),
            Sweep::Remove("its scan has ended")
        );
        assert_eq!(
            sweep(&unit("scan-s-2", Some(2), false), Some(&done), "a"),
            Sweep::Keep
        );
    }

    #[test]
    fn takeovers_adopt_survivors_and_requeue_the_lost() {
        let s = scan(ScanStatus::Running, 1);
        let why = "replica a-1 lost";
        assert_eq!(take_over(&s, why, Some(None), true, 3), Takeover::Adopt);
        let done = UnitState::Exited {
            success: true,
            exit_code: Some(0),
            message: String::new(),
        };
        assert_eq!(
            take_over(&s, why, Some(Some(&done)), true, 3),
            Takeover::Adopt
        );
        let timed_out = UnitState::TimedOut {
            message: "deadline".into(),
        };
        assert!(matches!(
            take_over(&s, why, Some(Some(&timed_out)), true, 3),
            Takeover::Act(Intent::End {
                status: ScanStatus::TimedOut,
                ..
            })
        ));
        assert!(matches!(
            take_over(&s, why, None, true, 3),
            Takeover::Act(Intent::RequeueLost { .. })
        ));
        // A child process of a dead replica died with it, whatever a listing says.
        assert!(matches!(
            take_over(&s, why, Some(None), false, 3),
            Takeover::Act(Intent::RequeueLost { .. })
        ));
    }

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
            owner: None,
            launched_at: None,
            exited_at: None,
            lost_attempts: 0,
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
            matches!(after_unit(&scan(ScanStatus::Running, 1), &exit, 2), Intent::Requeue { reason, .. } if reason.contains("exit code 3: boom"))
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
    fn a_unit_lost_with_its_worker_is_retried_within_the_backoff_limit_then_fails_with_why() {
        let lost = UnitState::Lost {
            message: "worker lost: w-1 sent no heartbeat for 30 s".into(),
        };
        assert!(
            matches!(after_unit(&scan(ScanStatus::Running, 1), &lost, 2), Intent::Requeue { reason, .. } if reason.contains("worker lost: w-1"))
        );
        match after_unit(&scan(ScanStatus::Running, 2), &lost, 2) {
            Intent::End { status, reason, .. } => {
                assert_eq!(status, ScanStatus::Failed);
                assert_eq!(
                    reason,
                    "failed after 2 attempts: worker lost: w-1 sent no heartbeat for 30 s"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_that_would_recur_end_the_scan_at_once_with_one_line() {
        let log = "2026-12-03T07:20:02Z  INFO scanplane_job: scan starting\n\
                   error: scanner nmap failed: scanner \"nmap\" not found on PATH\n";
        for code in [EXIT_CONFIG, EXIT_PERMANENT] {
            let exit = UnitState::Exited {
                success: false,
                exit_code: Some(code),
                message: log.into(),
            };
            match after_unit(&scan(ScanStatus::Running, 1), &exit, 3) {
                Intent::End {
                    status,
                    reason,
                    error,
                } => {
                    assert_eq!(status, ScanStatus::Failed);
                    assert_eq!(
                        reason,
                        "failed: scanner nmap failed: scanner \"nmap\" not found on PATH (not retried: it would recur)"
                    );
                    assert!(
                        error.unwrap().contains("INFO"),
                        "the whole tail stays in error"
                    );
                }
                other => panic!("{other:?}"),
            }
        }
        // A transient failure retries, its reason one line too, with the failure count.
        let exit = UnitState::Exited {
            success: false,
            exit_code: Some(1),
            message: log.into(),
        };
        match after_unit(&scan(ScanStatus::Running, 2), &exit, 3) {
            Intent::Requeue { reason, failures } => {
                assert_eq!(failures, 2);
                assert!(
                    !reason.contains('\n') && !reason.contains("INFO"),
                    "{reason}"
                );
                assert!(reason.ends_with("not found on PATH"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn summaries_are_one_bounded_line() {
        assert_eq!(failure_summary("a\n\n  b  \n"), "b");
        assert_eq!(failure_summary("error: x\nlater noise"), "x");
        assert_eq!(failure_summary(""), "");
        let long = "é".repeat(1000);
        assert_eq!(failure_summary(&long).chars().count(), SUMMARY_MAX + 3);
    }

    #[test]
    fn a_run_never_lasts_less_than_nothing() {
        let mut s = scan(ScanStatus::Succeeded, 1);
        let t = Utc::now();
        s.started_at = Some(t);
        s.finished_at = Some(t - chrono::Duration::milliseconds(4));
        assert_eq!(s.duration(), Some(chrono::Duration::zero()));
        s.finished_at = Some(t + chrono::Duration::seconds(3));
        assert_eq!(s.duration(), Some(chrono::Duration::seconds(3)));
    }

    #[test]
    fn retry_delays_double_up_to_the_cap() {
        use std::time::Duration as D;
        let (base, cap) = (D::from_secs(10), D::from_secs(300));
        let delays: Vec<u64> = (0..8)
            .map(|n| retry_delay(n, base, cap).as_secs())
            .collect();
        assert_eq!(delays, vec![0, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(retry_delay(u32::MAX, base, cap), cap);
        assert_eq!(retry_delay(3, D::ZERO, cap), D::ZERO);
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
            matches!(recover(&scan(ScanStatus::Running, 1), 2), Intent::Requeue { reason, .. } if reason.contains("recovered after restart"))
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
