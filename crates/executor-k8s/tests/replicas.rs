//! Replicas on the Kubernetes executor, against the scripted API server and a real store:
//! a replica starting beside a live one lists its Jobs and touches none of them; the Jobs of
//! a replica whose lease expired are adopted by the survivor, which ends their scans
//! `failed: job completed without a report` once the grace passes and then removes them;
//! a late observation of an earlier attempt only removes that attempt's Job. Every request
//! the dispatcher makes is checked.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

#[allow(dead_code)]
mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use scanplane_core::clock::SystemClock;
use scanplane_core::replica::Replica;
use scanplane_core::scan::ScanStatus;
use scanplane_dispatch::{DispatchConfig, DispatchContext, Dispatcher, Fence, ReplicaIdentity};
use scanplane_executor::{LaunchSpec, Observation, UnitState};
use scanplane_executor_k8s::{build_job, KubernetesExecutor};
use scanplane_metrics::Metrics;
use scanplane_store::testing::fresh_store;
use scanplane_store::{Backend, ScanChange, Store};
use serde_json::{json, Value};
use support::api::*;
use tokio::sync::{mpsc, Notify};

/// Registers replica `id` with a lease ending `lease_secs` from now (negative: expired).
async fn replica(store: &dyn Store, id: &str, lease_secs: i64) {
    let now = chrono::Utc::now();
    store
        .register_replica(&Replica {
            id: id.into(),
            hostname: id.into(),
            executor: "kubernetes".into(),
            started_at: now,
            heartbeat_at: now,
            lease_until: now + chrono::Duration::seconds(lease_secs),
            stopped_at: None,
            stop_reason: None,
        })
        .await
        .unwrap();
}

/// A running scan owned by `owner`, at `attempts`, its unit recorded as that attempt's Job.
async fn running_scan(store: &dyn Store, tenant: &str, owner: &str, attempts: u32) -> String {
    let now = chrono::Utc::now();
    let scan = store
        .create_scan(support::new_scan(tenant), now)
        .await
        .unwrap();
    for attempt in 1..=attempts {
        if attempt > 1 {
            let change = ScanChange {
                reason: "re-queued".into(),
                ..Default::default()
            };
            store
                .transition(&scan.id, ScanStatus::Queued, &change, now)
                .await
                .unwrap();
        }
        for (status, new_attempt) in [
            (ScanStatus::Admitted, false),
            (ScanStatus::Dispatched, true),
            (ScanStatus::Running, false),
        ] {
            let change = ScanChange {
                reason: status.to_string(),
                new_attempt,
                owner: new_attempt.then(|| owner.to_string()),
                ..Default::default()
            };
            store
                .transition(&scan.id, status, &change, now)
                .await
                .unwrap();
        }
    }
    let job = job_of(&scan.id, attempts, json!({"active": 1}));
    let name = job["metadata"]["name"].as_str().unwrap().to_string();
    store
        .set_executor_ref(&scan.id, ScanStatus::Running, &name, now)
        .await
        .unwrap();
    scan.id
}

/// The Job of `scan_id`'s `attempt` as the API server lists it, with `status`.
fn job_of(scan_id: &str, attempt: u32, status: Value) -> Value {
    let spec = LaunchSpec {
        scan_id: scan_id.into(),
        attempt,
        ..support::spec()
    };
    let (job, _) = build_job(&spec, &support::config());
    let mut v = serde_json::to_value(job).unwrap();
    v["metadata"]["uid"] = json!(format!("uid-{scan_id}-{attempt}"));
    v["metadata"]["resourceVersion"] = json!("5");
    v["status"] = status;
    v
}

fn job_list(items: Vec<Value>) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "JobList", "metadata": {"resourceVersion": "9"}, "items": items})
}

fn ok_status() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})
}

fn dispatcher(
    store: Arc<dyn Store>,
    exec: Arc<KubernetesExecutor>,
    rx: mpsc::UnboundedReceiver<Observation>,
    report_grace: Duration,
) -> Dispatcher {
    Dispatcher::new(
        DispatchContext {
            store,
            executor: exec,
            clock: Arc::new(SystemClock),
            config: DispatchConfig {
                max_attempts: 3,
                report_grace,
                ..Default::default()
            },
            metrics: Arc::new(Metrics::new()),
            wake: Arc::new(Notify::new()),
            replica: ReplicaIdentity {
                id: "b-1".into(),
                hostname: "b".into(),
            },
            fence: Arc::new(Fence::default()),
        },
        rx,
    )
}

async fn no_more_requests(api: &mut Handle) {
    assert!(
        tokio::time::timeout(Duration::from_millis(300), api.next_request())
            .await
            .is_err(),
        "no further request"
    );
}

async fn starting_beside_a_live_replica(backend: Backend) {
    let store: Arc<dyn Store> = Arc::new(fresh_store(backend).await);
    let tenant = store.ensure_tenant("acme").await.unwrap().id;
    replica(store.as_ref(), "a-1", 60).await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(running_scan(store.as_ref(), &tenant, "a-1", 1).await);
    }
    let jobs: Vec<Value> = ids
        .iter()
        .map(|id| job_of(id, 1, json!({"active": 1})))
        .collect();
    let (client, mut api) = mock();
    let (tx, rx) = mpsc::unbounded_channel();
    let exec = Arc::new(KubernetesExecutor::new(client, support::config(), tx));
    let server = tokio::spawn(async move {
        // The start-up sweep lists the Jobs; nothing else is asked for.
        let (req, send) = next(&mut api).await;
        assert_eq!((req.method.clone(), req.path.as_str()), (Method::GET, JOBS));
        send.send_response(full(StatusCode::OK, &job_list(jobs)));
        no_more_requests(&mut api).await;
    });
    let mut b = dispatcher(store.clone(), exec, rx, Duration::from_secs(30));
    assert_eq!(
        b.recover().await.unwrap(),
        0,
        "nothing of a live replica is taken"
    );
    b.round().await.unwrap();
    server.await.unwrap();
    for id in &ids {
        let s = store.scan(None, id).await.unwrap().unwrap();
        assert_eq!(s.status, ScanStatus::Running);
        assert_eq!(s.attempts, 1);
        assert_eq!(s.owner.as_deref(), Some("a-1"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_starting_replica_leaves_a_live_replicas_jobs_alone() {
    starting_beside_a_live_replica(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_starting_replica_leaves_a_live_replicas_jobs_alone() {
    starting_beside_a_live_replica(Backend::Postgres).await;
}

async fn completed_jobs_of_a_lost_replica(backend: Backend) {
    let store: Arc<dyn Store> = Arc::new(fresh_store(backend).await);
    let tenant = store.ensure_tenant("acme").await.unwrap().id;
    replica(store.as_ref(), "a-1", -1).await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(running_scan(store.as_ref(), &tenant, "a-1", 1).await);
    }
    // The Jobs completed after A died, and no report came.
    let complete = json!({"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1});
    let jobs: Vec<Value> = ids
        .iter()
        .map(|id| job_of(id, 1, complete.clone()))
        .collect();
    let names: BTreeSet<String> = jobs
        .iter()
        .map(|j| j["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    let (client, mut api) = mock();
    let (tx, rx) = mpsc::unbounded_channel();
    let exec = Arc::new(KubernetesExecutor::new(client, support::config(), tx));
    let server = tokio::spawn(async move {
        // Listed to adopt the taken-over attempts, then by the sweep.
        for _ in 0..2 {
            let (req, send) = next(&mut api).await;
            assert_eq!((req.method.clone(), req.path.as_str()), (Method::GET, JOBS));
            send.send_response(full(StatusCode::OK, &job_list(jobs.clone())));
        }
        // Once the scans failed, their Jobs are removed (in the background).
        let mut deleted = BTreeSet::new();
        for _ in 0..4 {
            let (req, send) = next(&mut api).await;
            assert_eq!(req.method, Method::DELETE);
            assert_eq!(req.body, json!({"propagationPolicy": "Background"}));
            deleted.insert(req.path.trim_start_matches(&format!("{JOBS}/")).to_string());
            send.send_response(full(StatusCode::OK, &ok_status()));
        }
        assert_eq!(deleted, names);
        no_more_requests(&mut api).await;
    });
    let mut b = dispatcher(store.clone(), exec, rx, Duration::ZERO);
    let started = std::time::Instant::now();
    assert_eq!(
        b.recover().await.unwrap(),
        4,
        "every attempt of the lost replica"
    );
    for id in &ids {
        let s = store.scan(None, id).await.unwrap().unwrap();
        assert_eq!(s.owner.as_deref(), Some("b-1"));
        assert!(s.exited_at.is_some(), "the clean exit is recorded: {s:?}");
    }
    b.round().await.unwrap();
    b.round().await.unwrap();
    for id in &ids {
        let s = store.scan(None, id).await.unwrap().unwrap();
        assert_eq!(s.status, ScanStatus::Failed);
        assert_eq!(s.reason, "failed: job completed without a report");
    }
    println!(
        "takeover of 4 completed Jobs: all terminal {:?} after recovery started",
        started.elapsed()
    );
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap();
    let replicas = store.list_replicas(10).await.unwrap();
    let a = replicas.iter().find(|r| r.id == "a-1").unwrap();
    assert_eq!(a.stop_reason.as_deref(), Some("lease expired"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_completed_jobs_of_a_lost_replica_end_without_a_report() {
    completed_jobs_of_a_lost_replica(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_completed_jobs_of_a_lost_replica_end_without_a_report() {
    completed_jobs_of_a_lost_replica(Backend::Postgres).await;
}

async fn stale_observation(backend: Backend) {
    let store: Arc<dyn Store> = Arc::new(fresh_store(backend).await);
    let tenant = store.ensure_tenant("acme").await.unwrap().id;
    let (client, mut api) = mock();
    let (tx, rx) = mpsc::unbounded_channel();
    let exec = Arc::new(KubernetesExecutor::new(
        client,
        support::config(),
        tx.clone(),
    ));
    let mut b = dispatcher(store.clone(), exec, rx, Duration::from_secs(30));
    let id = running_scan(store.as_ref(), &tenant, "b-1", 2).await;
    let current = job_of(&id, 2, json!({"active": 1}));
    let old_name = job_of(&id, 1, json!({}))["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let server = tokio::spawn(async move {
        let (req, send) = next(&mut api).await;
        assert_eq!((req.method.clone(), req.path.as_str()), (Method::GET, JOBS));
        send.send_response(full(StatusCode::OK, &job_list(vec![current])));
        // Only attempt 1's Job is removed.
        let (req, send) = next(&mut api).await;
        assert_eq!(req.method, Method::DELETE);
        assert_eq!(req.path, format!("{JOBS}/{old_name}"));
        send.send_response(full(StatusCode::OK, &ok_status()));
        no_more_requests(&mut api).await;
    });
    b.recover().await.unwrap();
    let before = store.scan(None, &id).await.unwrap().unwrap();
    // Attempt 1 failed long ago; the watcher's news of it arrives only now.
    tx.send(Observation {
        scan_id: id.clone(),
        executor_ref: format!("scan-{id}-1"),
        state: UnitState::Exited {
            success: false,
            exit_code: Some(3),
            message: "attempt 1 failed".into(),
        },
    })
    .unwrap();
    b.round().await.unwrap();
    server.await.unwrap();
    let after = store.scan(None, &id).await.unwrap().unwrap();
    assert_eq!(after.status, ScanStatus::Running);
    assert_eq!(after.attempts, 2);
    assert_eq!(after.reason, before.reason, "attempt 2 unchanged");
    assert_eq!(after.error, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_stale_observation_changes_nothing_about_the_current_attempt() {
    stale_observation(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_stale_observation_changes_nothing_about_the_current_attempt() {
    stale_observation(Backend::Postgres).await;
}
