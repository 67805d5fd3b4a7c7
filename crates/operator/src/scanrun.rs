//! What a `Scan` resource asks for, following the nuclei-operator's state machine
//! (Pending → Running → Completed | Failed; a spec change starts a new run): one scanplane
//! scan run per version of the spec, under an id derived from (uid, generation), its status
//! summarised back, and the events of its transitions. Pure: the controller acts on it.

use chrono::{DateTime, Utc};
use kube::ResourceExt;
use scanplane_core::declared::{run_id, DeclaredScan};
use scanplane_core::finding::Severity;
use scanplane_core::scan::ScanStatus as RunStatus;

use crate::crd::{JobRef, Phase, Scan, ScanStatus, ScannerConfig, SeverityCounts};
use crate::scheduled::TenantMapping;
use crate::sink::RunSummary;
use crate::status::{condition, rfc3339};

/// The finalizer that stops a running scan before its resource goes.
pub const FINALIZER: &str = "scanplane.io/scan";
/// The condition a Scan reports: True once completed, False once failed, Unknown before.
pub const SUCCEEDED: &str = "Succeeded";

/// What the controller does next for a Scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The spec's run is known: read it.
    Observe { tenant: String, run: String },
    /// The spec (or the resource) is new: start its run, after cancelling the run of the
    /// previous spec if one is still going.
    Start {
        tenant: String,
        scan: Result<DeclaredScan, String>,
        replaces: Option<String>,
    },
}

/// Decides the next step from the resource alone.
pub fn step(obj: &Scan, tenants: TenantMapping) -> Result<Step, String> {
    let uid = obj
        .uid()
        .ok_or_else(|| "metadata.uid: missing (not read from the API server)".to_string())?;
    let tenant = tenants.tenant_of(obj)?;
    let want = run_id(&uid, obj.metadata.generation.unwrap_or(0));
    let current = obj.status.as_ref().and_then(|s| s.scan_run_id.clone());
    if current.as_deref() == Some(want.as_str()) {
        return Ok(Step::Observe { tenant, run: want });
    }
    let scan = if obj.spec.targets.is_empty() {
        Err("spec.targets: at least one target is required".to_string())
    } else {
        Ok(DeclaredScan {
            id: want,
            tenant: tenant.clone(),
            scanner: obj.spec.scanner.clone(),
            targets: obj.spec.targets.clone(),
            options_json: obj.spec.options.as_ref().map(serde_json::Value::to_string),
        })
    };
    Ok(Step::Start {
        tenant,
        scan,
        replaces: current,
    })
}

/// The phase of a run in the nuclei-operator's terms.
pub fn phase_of(status: RunStatus) -> Phase {
    match status {
        RunStatus::Queued | RunStatus::Admitted | RunStatus::Dispatched => Phase::Pending,
        RunStatus::Running => Phase::Running,
        RunStatus::Succeeded => Phase::Completed,
        RunStatus::Failed | RunStatus::TimedOut | RunStatus::Cancelled | RunStatus::Skipped => {
            Phase::Failed
        }
    }
}

/// What is known of the resource's run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    Run(RunSummary),
    /// The spec cannot run; names the field.
    Invalid(String),
    /// The status names a run scanplane no longer has (deleted by retention, or a database
    /// that was replaced).
    Gone(String),
}

/// The status after `observed`; unchanged inputs give an unchanged status.
pub fn next_status(
    obj: &Scan,
    observed: &Observed,
    now: DateTime<Utc>,
    api_url: Option<&str>,
) -> ScanStatus {
    let current = obj.status.clone().unwrap_or_default();
    let generation = obj.metadata.generation;
    let mut next = ScanStatus {
        observed_generation: generation,
        ..current.clone()
    };
    match observed {
        Observed::Run(run) => {
            let phase = phase_of(run.status);
            next.phase = Some(phase);
            next.scan_run_id = Some(run.id.clone());
            // What was learnt of the same Job before (its uid, its pod) is kept.
            let known = current.job_ref.as_ref();
            next.job_ref = run.executor_ref.as_ref().map(|name| {
                let same = known.filter(|j| &j.name == name);
                JobRef {
                    name: name.clone(),
                    uid: same.and_then(|j| j.uid.clone()),
                    pod_name: same.and_then(|j| j.pod_name.clone()),
                    start_time: run.started_at.map(rfc3339),
                }
            });
            next.scan_start_time = run.started_at.map(rfc3339);
            next.completion_time = run.finished_at.map(rfc3339);
            next.counts = run.counts.as_deref().map(counts);
            next.last_error = (phase == Phase::Failed).then(|| {
                run.error
                    .clone()
                    .filter(|e| !e.is_empty())
                    .unwrap_or_else(|| run.reason.clone())
            });
            next.url = api_url
                .map(|base| format!("{}/api/v1/scans/{}", base.trim_end_matches('/'), run.id));
            let (status, message) = match phase {
                Phase::Completed => ("True", run.reason.clone()),
                Phase::Failed => ("False", next.last_error.clone().unwrap_or_default()),
                Phase::Pending | Phase::Running => ("Unknown", run.reason.clone()),
            };
            next.conditions = vec![condition(
                &current.conditions,
                SUCCEEDED,
                status,
                phase_name(phase),
                message,
                generation,
                now,
            )];
        }
        Observed::Invalid(problem) => {
            next.phase = Some(Phase::Failed);
            next.last_error = Some(problem.clone());
            next.conditions = vec![condition(
                &current.conditions,
                SUCCEEDED,
                "False",
                "InvalidSpec",
                problem.clone(),
                generation,
                now,
            )];
        }
        Observed::Gone(id) => {
            next.last_error = Some(format!(
                "scan run {id} is no longer stored in scanplane (retention, or another database)"
            ));
        }
    }
    if let Some(msg) = scanner_config_note(obj) {
        if let Some(c) = next.conditions.first_mut() {
            if !c.message.contains(msg) {
                c.message = format!("{}; {msg}", c.message)
                    .trim_start_matches("; ")
                    .to_string();
            }
        }
    }
    next
}

/// `job_ref` completed from the Kubernetes Job it names and that Job's pods (the newest
/// pod, for `kubectl logs`); what is already known stays.
pub fn with_job_details(
    mut job_ref: JobRef,
    job: Option<&k8s_openapi::api::batch::v1::Job>,
    pods: &[k8s_openapi::api::core::v1::Pod],
) -> JobRef {
    if job_ref.uid.is_none() {
        job_ref.uid = job.and_then(|j| j.metadata.uid.clone());
    }
    if job_ref.pod_name.is_none() {
        job_ref.pod_name = pods
            .iter()
            .max_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0))
            .and_then(|p| p.metadata.name.clone());
    }
    job_ref
}

/// One event to publish on the resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub warning: bool,
    pub reason: &'static str,
    pub note: String,
}

/// The seed's events for the move from `old` to `new`: `ScanJobCreated` when the run's unit
/// of work appears, `ScanCompleted` and `ScanFailed` when it ends.
pub fn notices(old: Option<&ScanStatus>, new: &ScanStatus) -> Vec<Notice> {
    let same_run = old.and_then(|o| o.scan_run_id.as_ref()) == new.scan_run_id.as_ref();
    let old_phase = old.and_then(|o| o.phase).filter(|_| same_run);
    let old_job = old
        .filter(|_| same_run)
        .and_then(|o| o.job_ref.as_ref())
        .map(|j| j.name.as_str());
    let run = new.scan_run_id.clone().unwrap_or_default();
    let mut out = Vec::new();
    if let Some(job) = &new.job_ref {
        if old_job != Some(job.name.as_str()) {
            out.push(Notice {
                warning: false,
                reason: "ScanJobCreated",
                note: format!("unit of work {} runs scan {run}", job.name),
            });
        }
    }
    if new.phase != old_phase {
        match new.phase {
            Some(Phase::Completed) => out.push(Notice {
                warning: false,
                reason: "ScanCompleted",
                note: match &new.counts {
                    Some(c) => format!(
                        "scan {run} completed: {} critical, {} high, {} medium, {} low, {} info",
                        c.critical, c.high, c.medium, c.low, c.info
                    ),
                    None => format!("scan {run} completed"),
                },
            }),
            Some(Phase::Failed) => out.push(Notice {
                warning: true,
                reason: "ScanFailed",
                note: new
                    .last_error
                    .clone()
                    .unwrap_or_else(|| format!("scan {run} failed")),
            }),
            _ => {}
        }
    }
    out
}

fn counts(by: &[(Severity, u64)]) -> SeverityCounts {
    let mut c = SeverityCounts::default();
    for (sev, n) in by {
        let slot = match sev {
            Severity::Critical => &mut c.critical,
            Severity::High => &mut c.high,
            Severity::Medium => &mut c.medium,
            Severity::Low => &mut c.low,
            Severity::Info => &mut c.info,
            Severity::Unknown => &mut c.unknown,
        };
        *slot = slot.saturating_add(*n);
    }
    c
}

fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Pending => "Pending",
        Phase::Running => "Running",
        Phase::Completed => "Completed",
        Phase::Failed => "Failed",
    }
}

fn scanner_config_note(obj: &Scan) -> Option<&'static str> {
    obj.spec
        .scanner_config
        .as_ref()
        .filter(|c| *c != &ScannerConfig::default())
        .map(|_| {
            "spec.scannerConfig is not applied yet (the scan uses the scanner's configured \
             image, resources and timeout)"
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn scan(generation: i64, status: serde_json::Value) -> Scan {
        serde_json::from_value(json!({
            "apiVersion": "scanplane.io/v1alpha1", "kind": "Scan",
            "metadata": {"name": "once", "namespace": "team-a", "uid": "scan-uid", "generation": generation},
            "spec": {"scanner": "nuclei", "targets": ["https://shop.example.test"], "options": {"severity": "high"}},
            "status": status
        }))
        .unwrap()
    }

    fn run(status: RunStatus) -> RunSummary {
        RunSummary {
            id: run_id("scan-uid", 1),
            status,
            reason: format!("{status}"),
            error: None,
            executor_ref: None,
            started_at: None,
            finished_at: None,
            counts: None,
        }
    }

    #[test]
    fn a_new_scan_starts_the_run_of_its_generation() {
        let Step::Start {
            tenant,
            scan: Ok(d),
            replaces,
        } = step(&scan(1, json!(null)), TenantMapping::default()).unwrap()
        else {
            panic!()
        };
        assert_eq!(tenant, "team-a");
        assert_eq!(d.id, run_id("scan-uid", 1));
        assert_eq!(d.options_json.as_deref(), Some(r#"{"severity":"high"}"#));
        assert_eq!(replaces, None);
    }

    #[test]
    fn the_same_generation_is_observed_and_a_new_one_replaces_the_run() {
        let first = run_id("scan-uid", 1);
        let s = scan(1, json!({"scanRunId": first}));
        assert_eq!(
            step(&s, TenantMapping::default()).unwrap(),
            Step::Observe {
                tenant: "team-a".into(),
                run: first.clone()
            }
        );
        let edited = scan(2, json!({"scanRunId": first}));
        let Step::Start {
            scan: Ok(d),
            replaces,
            ..
        } = step(&edited, TenantMapping::default()).unwrap()
        else {
            panic!()
        };
        assert_eq!(d.id, run_id("scan-uid", 2));
        assert_eq!(
            replaces,
            Some(first),
            "the previous spec's run is cancelled first"
        );
    }

    #[test]
    fn phases_follow_the_nuclei_operator() {
        assert_eq!(phase_of(RunStatus::Queued), Phase::Pending);
        assert_eq!(phase_of(RunStatus::Dispatched), Phase::Pending);
        assert_eq!(phase_of(RunStatus::Running), Phase::Running);
        assert_eq!(phase_of(RunStatus::Succeeded), Phase::Completed);
        for s in [
            RunStatus::Failed,
            RunStatus::TimedOut,
            RunStatus::Cancelled,
            RunStatus::Skipped,
        ] {
            assert_eq!(phase_of(s), Phase::Failed, "{s}");
        }
    }

    #[test]
    fn status_and_events_through_a_whole_run() {
        let t0 = Utc.with_ymd_and_hms(2026, 12, 6, 10, 0, 0).unwrap();
        let mut obj = scan(1, json!(null));
        let url = Some("https://scanplane.example");

        let pending = next_status(&obj, &Observed::Run(run(RunStatus::Queued)), t0, url);
        assert_eq!(pending.phase, Some(Phase::Pending));
        assert_eq!(pending.conditions[0].status, "Unknown");
        assert_eq!(
            pending.url.as_deref(),
            Some(
                format!(
                    "https://scanplane.example/api/v1/scans/{}",
                    run_id("scan-uid", 1)
                )
                .as_str()
            )
        );
        assert!(notices(obj.status.as_ref(), &pending).is_empty());
        obj.status = Some(pending.clone());

        let mut r = run(RunStatus::Running);
        r.executor_ref = Some("scanplane-abc-1".into());
        r.started_at = Some(t0);
        let running = next_status(&obj, &Observed::Run(r.clone()), t0, url);
        assert_eq!(running.phase, Some(Phase::Running));
        assert_eq!(running.job_ref.as_ref().unwrap().name, "scanplane-abc-1");
        assert_eq!(
            running.scan_start_time.as_deref(),
            Some("2026-12-06T10:00:00Z")
        );
        let n = notices(obj.status.as_ref(), &running);
        assert_eq!(
            n.iter().map(|n| n.reason).collect::<Vec<_>>(),
            ["ScanJobCreated"]
        );
        obj.status = Some(running.clone());
        assert_eq!(
            next_status(&obj, &Observed::Run(r.clone()), t0, url),
            running,
            "a resync changes nothing"
        );
        assert!(
            notices(obj.status.as_ref(), &running).is_empty(),
            "and says nothing"
        );

        let mut done = r.clone();
        done.status = RunStatus::Succeeded;
        done.finished_at = Some(t0 + chrono::TimeDelta::minutes(3));
        done.counts = Some(vec![
            (Severity::High, 2),
            (Severity::Info, 5),
            (Severity::Unknown, 1),
        ]);
        let completed = next_status(&obj, &Observed::Run(done), t0, url);
        assert_eq!(completed.phase, Some(Phase::Completed));
        assert_eq!(completed.conditions[0].status, "True");
        let c = completed.counts.clone().unwrap();
        assert_eq!((c.critical, c.high, c.info, c.unknown), (0, 2, 5, 1));
        assert_eq!(
            completed.completion_time.as_deref(),
            Some("2026-12-06T10:03:00Z")
        );
        let n = notices(obj.status.as_ref(), &completed);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].reason, "ScanCompleted");
        assert!(n[0].note.contains("2 high"), "{}", n[0].note);
        assert!(!n[0].warning);
    }

    #[test]
    fn a_failure_says_why_and_a_bad_spec_names_the_field() {
        let obj = scan(1, json!(null));
        let mut r = run(RunStatus::TimedOut);
        r.error = Some("the scanner ran past its 30m timeout".into());
        let failed = next_status(&obj, &Observed::Run(r), Utc::now(), None);
        assert_eq!(failed.phase, Some(Phase::Failed));
        assert_eq!(
            failed.last_error.as_deref(),
            Some("the scanner ran past its 30m timeout")
        );
        let n = notices(None, &failed);
        assert_eq!(n[0].reason, "ScanFailed");
        assert!(n[0].warning);

        let bad = next_status(
            &obj,
            &Observed::Invalid("spec.scanner: unknown scanner \"nucle\"".into()),
            Utc::now(),
            None,
        );
        assert_eq!(bad.conditions[0].reason, "InvalidSpec");
        assert_eq!(
            bad.last_error.as_deref(),
            Some("spec.scanner: unknown scanner \"nucle\"")
        );
    }

    #[test]
    fn a_rerun_after_a_spec_change_reports_its_own_completion() {
        let t0 = Utc::now();
        let old = ScanStatus {
            phase: Some(Phase::Completed),
            scan_run_id: Some(run_id("scan-uid", 1)),
            ..ScanStatus::default()
        };
        let new = ScanStatus {
            phase: Some(Phase::Completed),
            scan_run_id: Some(run_id("scan-uid", 2)),
            ..ScanStatus::default()
        };
        let _ = t0;
        assert_eq!(notices(Some(&old), &new)[0].reason, "ScanCompleted");
    }

    #[test]
    fn an_empty_target_list_is_invalid_before_anything_is_stored() {
        let mut obj = scan(1, json!(null));
        obj.spec.targets.clear();
        let Step::Start { scan: Err(e), .. } = step(&obj, TenantMapping::default()).unwrap() else {
            panic!()
        };
        assert!(e.starts_with("spec.targets"), "{e}");
    }

    #[test]
    fn job_details_are_learnt_once_and_kept() {
        let job: k8s_openapi::api::batch::v1::Job = serde_json::from_value(json!({
            "metadata": {"name": "scanplane-abc-1", "uid": "job-uid"}}))
        .unwrap();
        let pods: Vec<k8s_openapi::api::core::v1::Pod> = serde_json::from_value(json!([
            {"metadata": {"name": "scanplane-abc-1-old", "creationTimestamp": "2026-12-06T10:00:00Z"}},
            {"metadata": {"name": "scanplane-abc-1-new", "creationTimestamp": "2026-12-06T10:05:00Z"}}
        ])).unwrap();
        let jr = with_job_details(
            JobRef {
                name: "scanplane-abc-1".into(),
                ..JobRef::default()
            },
            Some(&job),
            &pods,
        );
        assert_eq!(jr.uid.as_deref(), Some("job-uid"));
        assert_eq!(jr.pod_name.as_deref(), Some("scanplane-abc-1-new"));

        // The next status of the same run keeps them; another Job starts afresh.
        let mut obj = scan(1, json!(null));
        obj.status = Some(ScanStatus {
            job_ref: Some(jr.clone()),
            ..ScanStatus::default()
        });
        let mut r = run(RunStatus::Running);
        r.executor_ref = Some("scanplane-abc-1".into());
        let st = next_status(&obj, &Observed::Run(r.clone()), Utc::now(), None);
        assert_eq!(
            st.job_ref.as_ref().unwrap().pod_name.as_deref(),
            Some("scanplane-abc-1-new")
        );
        r.executor_ref = Some("scanplane-abc-2".into());
        let st = next_status(&obj, &Observed::Run(r), Utc::now(), None);
        assert_eq!(st.job_ref.unwrap().uid, None);
    }
}
