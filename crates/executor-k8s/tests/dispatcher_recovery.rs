//! Start-up recovery of the dispatcher on the Kubernetes executor, against the scripted API
//! server and a real store: a live Job is adopted, a scan whose Job is gone is re-queued
//! with a reason, and Jobs of finished or unknown scans are deleted — with the exact
//! requests checked.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

#[allow(dead_code)]
mod support;

use std::sync::Arc;

use http::{Method, StatusCode};
use scanplane_core::clock::SystemClock;
use scanplane_core::scan::ScanStatus;
use scanplane_dispatch::{DispatchConfig, DispatchContext, Dispatcher, Fence, ReplicaIdentity};
use scanplane_executor::LaunchSpec;
use scanplane_executor_k8s::{build_job, KubernetesExecutor};
use scanplane_metrics::Metrics;
use scanplane_store::testing::fresh_store;
use scanplane_store::{Backend, ScanChange, Store};
use serde_json::{json, Value};
use support::api::*;
use tokio::sync::{mpsc, Notify};

async fn scan_in(store: &dyn Store, tenant: &str, path: &[ScanStatus]) -> String {
    let now = chrono::Utc::now();
    let scan = store
        .create_scan(support::new_scan(tenant), now)
        .await
        .unwrap();
    for status in path {
        let change = ScanChange {
            reason: status.to_string(),
            new_attempt: *status == ScanStatus::Dispatched,
            ..Default::default()
        };
        store
            .transition(&scan.id, *status, &change, now)
            .await
            .unwrap();
    }
    scan.id
}

/// The Job of `scan_id` as the API server lists it, still running.
fn live_job(scan_id: &str) -> Value {
    let spec = LaunchSpec {
        scan_id: scan_id.into(),
        attempt: 1,
        ..support::spec()
    };
    let (job, _) = build_job(&spec, &support::config());
    let mut v = serde_json::to_value(job).unwrap();
    v["metadata"]["uid"] = json!(format!("uid-{scan_id}"));
    v["metadata"]["resourceVersion"] = json!("5");
    v["status"] = json!({"active": 1});
    v
}

async fn recovery(backend: Backend) {
    let store: Arc<dyn Store> = Arc::new(fresh_store(backend).await);
    let tenant = store.ensure_tenant("acme").await.unwrap().id;
    let running = [
        ScanStatus::Admitted,
        ScanStatus::Dispatched,
        ScanStatus::Running,
    ];
    let live = scan_in(store.as_ref(), &tenant, &running).await;
    let gone = scan_in(store.as_ref(), &tenant, &running).await;
    let done = scan_in(
        store.as_ref(),
        &tenant,
        &[
            ScanStatus::Admitted,
            ScanStatus::Dispatched,
            ScanStatus::Running,
            ScanStatus::Succeeded,
        ],
    )
    .await;
    let unknown = "0192ffff-0000-7000-8000-000000000000".to_string();

    let (client, mut api) = mock();
    let (tx, rx) = mpsc::unbounded_channel();
    let exec = Arc::new(KubernetesExecutor::new(client, support::config(), tx));
    let jobs = vec![live_job(&live), live_job(&done), live_job(&unknown)];
    let names: Vec<String> = jobs
        .iter()
        .map(|j| j["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    let live_job_name = names[0].clone();
    let server = tokio::spawn(async move {
        // Once to adopt the taken-over attempts, once for the sweep.
        for _ in 0..2 {
            let (req, send) = next(&mut api).await;
            assert_eq!((req.method.clone(), req.path.as_str()), (Method::GET, JOBS));
            assert_eq!(req.query("labelSelector"), Some(SELECTOR));
            send.send_response(full(
                StatusCode::OK,
                &json!({"apiVersion": "batch/v1", "kind": "JobList", "metadata": {"resourceVersion": "9"}, "items": jobs}),
            ));
        }
        // The Jobs of the finished scan and of the unknown one are deleted, in the foreground;
        // the live scan's Job is left alone.
        for name in &names[1..] {
            let (req, send) = next(&mut api).await;
            assert_eq!(req.method, Method::DELETE);
            assert_eq!(req.path, format!("{JOBS}/{name}"));
            assert_eq!(req.body, json!({"propagationPolicy": "Foreground"}));
            send.send_response(full(
                StatusCode::OK,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
            ));
        }
        api
    });

    let config = DispatchConfig {
        max_attempts: 3,
        ..Default::default()
    };
    let mut dispatcher = Dispatcher::new(
        DispatchContext {
            store: store.clone(),
            executor: exec,
            clock: Arc::new(SystemClock),
            config,
            metrics: Arc::new(Metrics::new()),
            wake: Arc::new(Notify::new()),
            replica: ReplicaIdentity {
                id: "b-1".into(),
                hostname: "b".into(),
            },
            fence: Arc::new(Fence::default()),
        },
        rx,
    );
    let recovered = dispatcher.recover().await.unwrap();
    let mut api = server.await.unwrap();
    assert_eq!(
        recovered, 2,
        "both attempts no replica owned were taken over"
    );

    let s = store.scan(None, &live).await.unwrap().unwrap();
    assert_eq!(
        s.status,
        ScanStatus::Running,
        "a live Job is adopted, its scan untouched"
    );
    assert_eq!(s.owner.as_deref(), Some("b-1"), "adopted by this replica");
    assert_eq!(
        s.executor_ref.as_deref(),
        Some(live_job_name.as_str()),
        "the adopted Job is recorded as the attempt's unit"
    );
    let s = store.scan(None, &gone).await.unwrap().unwrap();
    assert_eq!(s.status, ScanStatus::Queued);
    assert!(s.reason.contains("recovered after restart"), "{}", s.reason);
    assert_eq!(
        (s.attempts, s.lost_attempts),
        (1, 1),
        "a lost attempt is not the scanner's failure"
    );
    let s = store.scan(None, &done).await.unwrap().unwrap();
    assert_eq!(s.status, ScanStatus::Succeeded);
    // No further request was made.
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(200), api.next_request())
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_restart_adopts_requeues_and_deletes() {
    recovery(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_adopts_requeues_and_deletes() {
    recovery(Backend::Postgres).await;
}

/// A Job that completes without its scan having reported ends the scan `failed: job
/// completed without a report`, once the report grace has passed; the Job is then cleaned up.
async fn completion_without_report(backend: Backend) {
    let store: Arc<dyn Store> = Arc::new(fresh_store(backend).await);
    let tenant = store.ensure_tenant("acme").await.unwrap().id;
    let scan = scan_in(store.as_ref(), &tenant, &[]).await;

    let (client, mut api) = mock();
    let (tx, rx) = mpsc::unbounded_channel();
    let exec = Arc::new(KubernetesExecutor::new(
        client,
        support::config(),
        tx.clone(),
    ));
    let config = DispatchConfig {
        max_attempts: 1,
        report_grace: std::time::Duration::ZERO,
        ..Default::default()
    };
    let mut dispatcher = Dispatcher::new(
        DispatchContext {
            store: store.clone(),
            executor: exec,
            clock: Arc::new(SystemClock),
            config,
            metrics: Arc::new(Metrics::new()),
            wake: Arc::new(Notify::new()),
            replica: ReplicaIdentity {
                id: "b-1".into(),
                hostname: "b".into(),
            },
            fence: Arc::new(Fence::default()),
        },
        rx,
    );

    let expected_job = format!("scan-{scan}-1");
    let job_name = expected_job.clone();
    let server = tokio::spawn(async move {
        // Start-up sweep: nothing there yet.
        let (req, send) = next(&mut api).await;
        assert_eq!((req.method.clone(), req.path.as_str()), (Method::GET, JOBS));
        send.send_response(full(
            StatusCode::OK,
            &json!({"apiVersion": "batch/v1", "kind": "JobList", "metadata": {"resourceVersion": "9"}, "items": []}),
        ));
        // Launch: the Job, its owned Secret, the ScanJobCreated event.
        let (req, send) = next(&mut api).await;
        assert_eq!(
            (req.method.clone(), req.path.as_str()),
            (Method::POST, JOBS)
        );
        assert_eq!(req.body["metadata"]["name"], job_name);
        let mut created = req.body.clone();
        created["metadata"]["uid"] = json!("uid-1");
        send.send_response(full(StatusCode::CREATED, &created));
        let (req, send) = next(&mut api).await;
        assert_eq!(
            (req.method.clone(), req.path.as_str()),
            (Method::POST, SECRETS)
        );
        send.send_response(full(StatusCode::CREATED, &req.body));
        let (req, send) = next(&mut api).await;
        assert_eq!(req.body["reason"], "ScanJobCreated");
        send.send_response(full(StatusCode::CREATED, &req.body));
        // After the scan ends: the Job is removed in the background.
        let (req, send) = next(&mut api).await;
        assert_eq!(req.method, Method::DELETE);
        assert_eq!(req.path, format!("{JOBS}/{job_name}"));
        assert_eq!(req.body, json!({"propagationPolicy": "Background"}));
        send.send_response(full(
            StatusCode::OK,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
        ));
    });

    dispatcher.round().await.unwrap();
    let s = store.scan(None, &scan).await.unwrap().unwrap();
    assert_eq!(s.status, ScanStatus::Dispatched);
    assert_eq!(s.executor_ref.as_deref(), Some(expected_job.as_str()));
    // What the watcher reports for a Job whose condition is Complete.
    let exited = scanplane_executor::UnitState::Exited {
        success: true,
        exit_code: Some(0),
        message: String::new(),
    };
    tx.send(scanplane_executor::Observation {
        scan_id: scan.clone(),
        executor_ref: expected_job.clone(),
        state: exited,
    })
    .unwrap();
    dispatcher.round().await.unwrap();
    dispatcher.round().await.unwrap();
    let s = store.scan(None, &scan).await.unwrap().unwrap();
    assert_eq!(s.status, ScanStatus::Failed);
    assert_eq!(s.reason, "failed: job completed without a report");
    dispatcher.round().await.unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_completion_without_report_fails_the_scan() {
    completion_without_report(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_completion_without_report_fails_the_scan() {
    completion_without_report(Backend::Postgres).await;
}
