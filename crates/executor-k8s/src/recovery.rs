//! The pure half of start-up recovery that concerns Jobs: which ones no scan needs any more.
//!
//! The other half (a scan dispatched or running whose Job is gone goes back to the queue)
//! belongs to the dispatcher, which owns the scans.

use scanplane_executor::Unit;

/// What the control plane knows about the scan a Job was created for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownScan {
    /// Whether the scan has reached a terminal state.
    pub terminal: bool,
    /// The unit of work the scan currently points at, if one was recorded.
    pub executor_ref: Option<String>,
}

/// Why a Job should be deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrphanReason {
    /// No scan with the Job's scan id exists (e.g. a different database, or it was purged).
    UnknownScan,
    /// The scan already ended but its Job still runs (e.g. it was cancelled while the
    /// control plane was down).
    ScanFinished,
    /// The scan moved on to another attempt and this one still runs.
    StaleAttempt,
}

/// A Job to delete, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Orphan {
    pub unit: Unit,
    pub reason: OrphanReason,
}

/// Decides which listed Jobs to delete. A finished Job of a finished scan is left for its
/// TTL, which keeps its pod's logs around for debugging; everything a live
/// scan still points at is kept.
pub fn orphans(units: &[Unit], known: &dyn Fn(&str) -> Option<KnownScan>) -> Vec<Orphan> {
    units
        .iter()
        .filter_map(|unit| {
            let reason = match known(&unit.scan_id) {
                None => OrphanReason::UnknownScan,
                Some(scan) if scan.terminal && unit.active => OrphanReason::ScanFinished,
                Some(KnownScan {
                    terminal: false,
                    executor_ref: Some(current),
                }) if unit.active && current != unit.executor_ref => OrphanReason::StaleAttempt,
                Some(_) => return None,
            };
            Some(Orphan {
                unit: unit.clone(),
                reason,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(scan: &str, job: &str, active: bool) -> Unit {
        Unit {
            scan_id: scan.into(),
            executor_ref: job.into(),
            active,
        }
    }

    #[test]
    fn decides_per_scan_state() {
        let units = [
            unit("gone", "scan-gone-1", false),
            unit("done", "scan-done-1", true),
            unit("done-idle", "scan-done-idle-1", false),
            unit("live", "scan-live-1", true),
            unit("live", "scan-live-2", true),
            unit("new", "scan-new-1", true),
        ];
        let known = |id: &str| match id {
            "done" | "done-idle" => Some(KnownScan {
                terminal: true,
                executor_ref: Some(format!("scan-{id}-1")),
            }),
            "live" => Some(KnownScan {
                terminal: false,
                executor_ref: Some("scan-live-2".into()),
            }),
            "new" => Some(KnownScan {
                terminal: false,
                executor_ref: None,
            }),
            _ => None,
        };
        let got: Vec<(&str, OrphanReason)> = orphans(&units, &known)
            .iter()
            .map(|o| {
                (
                    units
                        .iter()
                        .find(|u| *u == &o.unit)
                        .map_or("", |u| u.executor_ref.as_str()),
                    o.reason,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("scan-gone-1", OrphanReason::UnknownScan),
                ("scan-done-1", OrphanReason::ScanFinished),
                ("scan-live-1", OrphanReason::StaleAttempt),
            ]
        );
    }
}
