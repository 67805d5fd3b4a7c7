//! The Scan controller against a scripted API server and an in-memory scan sink: a run per
//! spec version, its progress in the status and as the events ScanJobCreated, ScanCompleted
//! and ScanFailed, a spec change replacing the run, and deletion cancelling a run still going.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use kube::runtime::controller::Action;
use scanplane_core::declared::{run_id, DeclaredScan};
use scanplane_core::finding::Severity;
use scanplane_core::scan::ScanStatus;
use scanplane_operator::controller::{scan, Context, Error};
use scanplane_operator::crd::Scan;
use scanplane_operator::sink::{RunSummary, ScanSink, SinkError, Sinks};
use serde_json::{json, Value};
use support::{next, no_more, ok, Handle};

const OBJ: &str = "/apis/scanplane.io/v1alpha1/namespaces/team-a/scans/once";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/team-a/events";

#[derive(Debug, Clone, PartialEq)]
enum Call {
    Start(DeclaredScan),
    Run(String),
    Cancel(String, String),
}

/// Runs kept in memory; `fail` makes every call fail that way.
#[derive(Default)]
struct Runs {
    runs: Mutex<BTreeMap<String, RunSummary>>,
    calls: Mutex<Vec<Call>>,
    fail: Option<SinkError>,
}

impl Runs {
    fn set(&self, id: &str, f: impl FnOnce(&mut RunSummary)) {
        let mut runs = self.runs.lock().unwrap();
        f(runs.get_mut(id).expect("no such run"));
    }
    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl ScanSink for Runs {
    async fn start(&self, d: &DeclaredScan) -> Result<RunSummary, SinkError> {
        self.calls.lock().unwrap().push(Call::Start(d.clone()));
        if let Some(e) = &self.fail {
            return Err(e.clone());
        }
        let mut runs = self.runs.lock().unwrap();
        let run = runs.entry(d.id.clone()).or_insert_with(|| RunSummary {
            id: d.id.clone(),
            status: ScanStatus::Queued,
            reason: "queued: waiting for admission".into(),
            error: None,
            executor_ref: None,
            started_at: None,
            finished_at: None,
            counts: None,
        });
        Ok(run.clone())
    }
    async fn run(&self, _tenant: &str, id: &str) -> Result<Option<RunSummary>, SinkError> {
        self.calls.lock().unwrap().push(Call::Run(id.into()));
        if let Some(e) = &self.fail {
            return Err(e.clone());
        }
        Ok(self.runs.lock().unwrap().get(id).cloned())
    }
    async fn cancel(&self, tenant: &str, id: &str, reason: &str) -> Result<(), SinkError> {
        self.calls
            .lock()
            .unwrap()
            .push(Call::Cancel(format!("{tenant}/{id}"), reason.into()));
        if let Some(e) = &self.fail {
            return Err(e.clone());
        }
        if let Some(r) = self.runs.lock().unwrap().get_mut(id) {
            if !r.status.is_terminal() {
                r.status = ScanStatus::Cancelled;
            }
        }
        Ok(())
    }
}

fn context(runs: Arc<Runs>) -> (Arc<Context>, Handle) {
    let (ctx, handle) = support::context(Sinks {
        scans: runs,
        ..support::unused()
    });
    (Arc::new(ctx), handle)
}

fn object(generation: i64, status: Value, extra_meta: Value) -> Value {
    let meta = support::meta(
        json!({"name": "once", "namespace": "team-a", "uid": "scan-uid",
                          "generation": generation, "resourceVersion": "5",
                          "finalizers": ["scanplane.io/scan"]}),
        extra_meta,
    );
    json!({
        "apiVersion": "scanplane.io/v1alpha1", "kind": "Scan", "metadata": meta,
        "spec": {"scanner": "nuclei", "targets": ["https://shop.example.test"]},
        "status": status
    })
}

fn parse(v: &Value) -> Arc<Scan> {
    Arc::new(serde_json::from_value(v.clone()).unwrap())
}

/// Runs one reconcile of `obj`, answering its status write with the object as written;
/// returns the written status (Null when none was written) and the events published.
async fn reconcile_once(
    ctx: &Arc<Context>,
    handle: &mut Handle,
    obj: &Value,
) -> (Result<Action, Error>, Value, Vec<Value>) {
    let run = tokio::spawn(scan::reconcile(parse(obj), ctx.clone()));
    let mut status = Value::Null;
    let mut events = Vec::new();
    loop {
        let next_req = tokio::select! {
            r = support::recv(handle) => r,
            done = async { while !run.is_finished() { tokio::task::yield_now().await; } } => { let () = done; None },
        };
        let Some((seen, send)) = next_req else { break };
        if seen.line() == format!("PATCH {OBJ}/status") {
            status = seen.body["status"].clone();
            let mut written = obj.clone();
            written["status"] = status.clone();
            send.send_response(ok(&written));
        } else if seen.line() == format!("POST {EVENTS}") {
            events.push(seen.body.clone());
            send.send_response(ok(&seen.body));
        } else {
            panic!("unexpected request {} {}", seen.line(), seen.body);
        }
    }
    (run.await.unwrap(), status, events)
}

fn reasons(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_string(),
                e["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_run_is_started_followed_and_reported_to_its_end() {
    let runs = Arc::new(Runs::default());
    let (ctx, mut handle) = context(runs.clone());
    let id = run_id("scan-uid", 1);

    // New: the run of generation 1 is started, and the status says Pending.
    let obj = object(1, Value::Null, json!({}));
    let (action, status, events) = reconcile_once(&ctx, &mut handle, &obj).await;
    assert_eq!(action.unwrap(), Action::requeue(scan::POLL));
    assert_eq!(status["phase"], "Pending");
    assert_eq!(status["scanRunId"], id.as_str());
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(
        status["url"],
        format!("https://scanplane.example/api/v1/scans/{id}")
    );
    assert!(events.is_empty());
    assert_eq!(
        runs.calls(),
        [Call::Start(DeclaredScan {
            id: id.clone(),
            tenant: "team-a".into(),
            scanner: "nuclei".into(),
            targets: vec!["https://shop.example.test".into()],
            options_json: None,
        })]
    );

    // Its Job appears: Running, jobRef, ScanJobCreated.
    runs.set(&id, |r| {
        r.status = ScanStatus::Running;
        r.executor_ref = Some("scanplane-once-1".into());
        r.started_at = Some(chrono::Utc::now());
    });
    let obj = object(1, status, json!({}));
    let (action, status, events) = reconcile_once(&ctx, &mut handle, &obj).await;
    assert_eq!(action.unwrap(), Action::requeue(scan::POLL));
    assert_eq!(status["phase"], "Running");
    assert_eq!(status["jobRef"]["name"], "scanplane-once-1");
    assert_eq!(
        reasons(&events),
        [("Normal".into(), "ScanJobCreated".into())]
    );
    assert_eq!(events[0]["regarding"]["kind"], "Scan");

    // A resync with nothing new writes nothing and says nothing.
    let obj = object(1, status, json!({}));
    let (action, written, events) = reconcile_once(&ctx, &mut handle, &obj).await;
    assert_eq!(action.unwrap(), Action::requeue(scan::POLL));
    assert_eq!(written, Value::Null);
    assert!(events.is_empty());

    // It ends: Completed with counts, ScanCompleted, and no more polling.
    runs.set(&id, |r| {
        r.status = ScanStatus::Succeeded;
        r.finished_at = Some(chrono::Utc::now());
        r.counts = Some(vec![(Severity::Critical, 1), (Severity::Low, 4)]);
    });
    let (action, status, events) = reconcile_once(&ctx, &mut handle, &obj).await;
    assert_eq!(action.unwrap(), Action::await_change());
    assert_eq!(status["phase"], "Completed");
    assert_eq!(status["counts"]["critical"], 1);
    assert_eq!(status["counts"]["low"], 4);
    assert_eq!(status["conditions"][0]["type"], "Succeeded");
    assert_eq!(status["conditions"][0]["status"], "True");
    assert_eq!(
        reasons(&events),
        [("Normal".into(), "ScanCompleted".into())]
    );
    drop(ctx);
    no_more(&mut handle).await;
}

#[tokio::test]
async fn a_spec_change_cancels_the_old_run_and_starts_a_new_one() {
    let runs = Arc::new(Runs::default());
    let (ctx, mut handle) = context(runs.clone());
    let first = run_id("scan-uid", 1);
    let (_, status, _) =
        reconcile_once(&ctx, &mut handle, &object(1, Value::Null, json!({}))).await;
    runs.set(&first, |r| r.status = ScanStatus::Running);

    let edited = object(2, status, json!({}));
    let (action, status, _) = reconcile_once(&ctx, &mut handle, &edited).await;
    assert_eq!(action.unwrap(), Action::requeue(scan::POLL));
    let second = run_id("scan-uid", 2);
    assert_eq!(status["scanRunId"], second.as_str());
    assert_eq!(status["observedGeneration"], 2);
    assert_eq!(status["phase"], "Pending");
    let calls = runs.calls();
    assert_eq!(
        calls[1],
        Call::Cancel(
            format!("team-a/{first}"),
            "its Scan's spec changed: a new run replaces it".into()
        )
    );
    assert!(matches!(&calls[2], Call::Start(d) if d.id == second));
    assert_eq!(
        runs.runs.lock().unwrap()[&first].status,
        ScanStatus::Cancelled
    );
}

#[tokio::test]
async fn a_spec_the_store_rejects_is_failed_with_the_field_named() {
    let runs = Arc::new(Runs {
        fail: Some(SinkError::Invalid(
            "spec.scanner: unknown scanner \"nucle\"; available: http, nmap".into(),
        )),
        ..Runs::default()
    });
    let (ctx, mut handle) = context(runs);
    let (action, status, events) =
        reconcile_once(&ctx, &mut handle, &object(1, Value::Null, json!({}))).await;
    assert_eq!(
        action.unwrap(),
        Action::await_change(),
        "a bad spec waits for an edit"
    );
    assert_eq!(status["phase"], "Failed");
    assert_eq!(status["conditions"][0]["reason"], "InvalidSpec");
    assert_eq!(
        status["lastError"],
        "spec.scanner: unknown scanner \"nucle\"; available: http, nmap"
    );
    assert_eq!(reasons(&events), [("Warning".into(), "ScanFailed".into())]);
    assert!(events[0]["note"].as_str().unwrap().contains("spec.scanner"));
}

#[tokio::test]
async fn an_unavailable_store_is_retried_and_nothing_is_written() {
    let runs = Arc::new(Runs {
        fail: Some(SinkError::Unavailable("database is locked".into())),
        ..Runs::default()
    });
    let (ctx, mut handle) = context(runs);
    let (action, status, events) =
        reconcile_once(&ctx, &mut handle, &object(1, Value::Null, json!({}))).await;
    assert!(action.is_err());
    assert_eq!(status, Value::Null);
    assert!(events.is_empty());
}

#[tokio::test]
async fn deleting_a_scan_cancels_its_running_run_before_the_finalizer_goes() {
    let runs = Arc::new(Runs::default());
    let (ctx, mut handle) = context(runs.clone());
    let id = run_id("scan-uid", 1);
    let (_, status, _) =
        reconcile_once(&ctx, &mut handle, &object(1, Value::Null, json!({}))).await;
    runs.set(&id, |r| r.status = ScanStatus::Running);
    let deleting = object(
        1,
        status,
        json!({"deletionTimestamp": "2026-12-06T12:00:00Z"}),
    );
    let task = tokio::spawn(scan::reconcile(parse(&deleting), ctx.clone()));
    let (seen, send) = next(&mut handle).await;
    assert_eq!(seen.line(), format!("PATCH {OBJ}"));
    assert_eq!(
        seen.body,
        json!([{"op": "test", "path": "/metadata/finalizers/0", "value": "scanplane.io/scan"},
               {"op": "remove", "path": "/metadata/finalizers/0"}])
    );
    assert_eq!(
        runs.calls().last().unwrap(),
        &Call::Cancel(
            format!("team-a/{id}"),
            "its Scan resource was deleted".into()
        ),
        "cancelled before the finalizer is released"
    );
    send.send_response(ok(&deleting));
    assert_eq!(task.await.unwrap().unwrap(), Action::await_change());
    assert_eq!(runs.runs.lock().unwrap()[&id].status, ScanStatus::Cancelled);
}

#[tokio::test]
async fn with_the_kubernetes_executor_the_job_ref_names_its_uid_and_pod() {
    let runs = Arc::new(Runs::default());
    let (ctx, mut handle) = support::context(Sinks {
        scans: runs.clone(),
        ..support::unused()
    });
    let ctx = Arc::new(ctx.with_jobs_namespace(Some("scans".into())));
    let id = run_id("scan-uid", 1);
    let (_, status, _) =
        reconcile_once(&ctx, &mut handle, &object(1, Value::Null, json!({}))).await;
    runs.set(&id, |r| {
        r.status = ScanStatus::Running;
        r.executor_ref = Some("scanplane-once-1".into());
    });
    let obj = object(1, status, json!({}));
    let task = tokio::spawn(scan::reconcile(parse(&obj), ctx.clone()));
    let (seen, send) = next(&mut handle).await;
    assert_eq!(
        seen.line(),
        "GET /apis/batch/v1/namespaces/scans/jobs/scanplane-once-1"
    );
    send.send_response(ok(&json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "scanplane-once-1", "namespace": "scans", "uid": "job-uid"}})));
    let (seen, send) = next(&mut handle).await;
    assert_eq!(seen.line(), "GET /api/v1/namespaces/scans/pods");
    assert!(
        seen.query.contains("job-name%3Dscanplane-once-1"),
        "{}",
        seen.query
    );
    send.send_response(ok(
        &json!({"apiVersion": "v1", "kind": "PodList", "metadata": {},
        "items": [{"metadata": {"name": "scanplane-once-1-x7k2p", "namespace": "scans"}}]}),
    ));
    let (seen, send) = next(&mut handle).await;
    assert_eq!(seen.line(), format!("PATCH {OBJ}/status"));
    let job_ref = &seen.body["status"]["jobRef"];
    assert_eq!(job_ref["uid"], "job-uid");
    assert_eq!(job_ref["podName"], "scanplane-once-1-x7k2p");
    send.send_response(ok(&obj));
    let (seen, send) = next(&mut handle).await;
    assert_eq!(seen.body["reason"], "ScanJobCreated");
    send.send_response(ok(&seen.body));
    assert_eq!(task.await.unwrap().unwrap(), Action::requeue(scan::POLL));
    drop(ctx);
    no_more(&mut handle).await;
}
