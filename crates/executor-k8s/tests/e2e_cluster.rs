//! End to end against a real API server, run with
//! `KUBECONFIG=... cargo test -p scanplane-executor-k8s -- --ignored`.
//!
//! It needs an API server with the Job controller (kube-controller-manager); a scheduler and
//! kubelets are optional. Scanner pods get a node selector no node matches, so they never
//! run anywhere and the test writes their status by hand (the `pods/status` subresource):
//! the same on a full cluster and on a bare control plane. Objects go to
//! `SCANPLANE_E2E_NAMESPACE` (default `scanplane-e2e`, created if missing).

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

#[allow(dead_code)]
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use scanplane_executor::{Executor, Observation, UnitState};
use scanplane_executor_k8s::{KubernetesConfig, KubernetesExecutor};
use serde_json::json;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(120);

async fn client() -> Client {
    if std::env::var_os("KUBECONFIG").is_none() {
        panic!(
            "KUBECONFIG is not set: this test needs a real cluster (any API server with \
             kube-controller-manager). Point KUBECONFIG at one and rerun with --ignored."
        );
    }
    Client::try_default()
        .await
        .expect("KUBECONFIG does not describe a reachable cluster")
}

async fn namespace(client: &Client) -> String {
    let ns = std::env::var("SCANPLANE_E2E_NAMESPACE").unwrap_or_else(|_| "scanplane-e2e".into());
    let api: Api<Namespace> = Api::all(client.clone());
    let body: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
    match api.create(&PostParams::default(), &body).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.is_already_exists() => {}
        Err(e) => panic!("cannot create namespace {ns}: {e}"),
    }
    ns
}

fn unique(prefix: &str) -> String {
    let nanos = k8s_openapi::jiff::Timestamp::now().as_nanosecond();
    format!("{prefix}-{:x}", nanos % 0xffff_ffff_ffff)
}

fn config(ns: &str, instance: &str, grace: Duration) -> KubernetesConfig {
    KubernetesConfig {
        namespace: ns.into(),
        instance: instance.into(),
        scanner_image: "registry.invalid/scanplane:e2e".into(),
        // No scanner pods may run: nothing must pull that image or talk to a server.
        node_selector: BTreeMap::from([("scanplane.io/e2e-no-such-node".into(), "true".into())]),
        // The scanner service account does not exist in a fresh namespace; the default does.
        service_account: String::new(),
        pending_grace: grace,
        ..KubernetesConfig::default()
    }
}

async fn next_for(rx: &mut mpsc::UnboundedReceiver<Observation>, job: &str) -> UnitState {
    loop {
        let obs = tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no observation of {job} within {WAIT:?}"))
            .expect("the watcher stopped");
        if obs.executor_ref == job {
            return obs.state;
        }
    }
}

async fn pod_of(pods: &Api<Pod>, job: &str) -> Pod {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let list = pods
            .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")))
            .await
            .unwrap();
        if let Some(p) = list.items.into_iter().next() {
            return p;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the Job controller created no pod for {job}: is kube-controller-manager running?"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn set_pod_status(pods: &Api<Pod>, name: &str, status: serde_json::Value) {
    pods.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .unwrap();
}

fn scanner_status(state: serde_json::Value) -> serde_json::Value {
    json!([{"name": "scanner", "image": "registry.invalid/scanplane:e2e", "imageID": "",
            "ready": false, "restartCount": 0, "state": state}])
}

fn spec(scan_id: &str, timeout: Duration) -> scanplane_executor::LaunchSpec {
    scanplane_executor::LaunchSpec {
        scan_id: scan_id.into(),
        timeout,
        ..support::spec()
    }
}

#[tokio::test]
#[ignore = "needs a cluster: set KUBECONFIG and run with --ignored"]
async fn jobs_are_labelled_owned_and_followed_to_their_end() {
    let client = client().await;
    let ns = namespace(&client).await;
    let instance = unique("e2e");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let exec = KubernetesExecutor::new(
        client.clone(),
        config(&ns, &instance, Duration::from_secs(600)),
        tx,
    );
    let _watcher = exec.spawn_watcher();
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);

    // Launch: the Job carries the labels, the Secret is owned by it, recovery lists it.
    let scan_id = unique("scan-ok");
    let name = exec
        .launch(&spec(&scan_id, Duration::from_secs(1800)))
        .await
        .unwrap();
    let job = jobs.get(&name).await.unwrap();
    let labels = job.metadata.labels.clone().unwrap();
    assert_eq!(labels["scanplane.io/scan-run-id"], scan_id);
    assert_eq!(labels["app.kubernetes.io/managed-by"], "scanplane");
    assert_eq!(labels["app.kubernetes.io/instance"], instance);
    assert_eq!(labels["scanplane.io/attempt"], "2");
    let secret = secrets
        .get(&scanplane_executor_k8s::secret_name(&name))
        .await
        .unwrap();
    assert_eq!(
        secret.metadata.owner_references.unwrap()[0].uid,
        job.metadata.uid.clone().unwrap()
    );
    let units = exec.list().await.unwrap();
    assert!(units
        .iter()
        .any(|u| u.executor_ref == name && u.scan_id == scan_id && u.active));
    // Launching the same attempt again adopts the Job.
    assert_eq!(
        exec.launch(&spec(&scan_id, Duration::from_secs(1800)))
            .await
            .unwrap(),
        name
    );

    // Running, then a clean exit the Job controller turns into Complete.
    let pod = pod_of(&pods, &name).await;
    let pod_name = pod.metadata.name.clone().unwrap();
    assert!(
        pod.spec.unwrap().node_name.is_none(),
        "the scanner pod was scheduled despite the impossible node selector"
    );
    set_pod_status(
        &pods,
        &pod_name,
        json!({"phase": "Running", "containerStatuses":
            scanner_status(json!({"running": {"startedAt": "2025-01-01T00:00:00Z"}}))}),
    )
    .await;
    assert_eq!(
        next_for(&mut rx, &name).await,
        UnitState::Running {
            detail: Some(pod_name.clone())
        }
    );
    set_pod_status(
        &pods,
        &pod_name,
        json!({"phase": "Succeeded", "containerStatuses":
            scanner_status(json!({"terminated": {"exitCode": 0, "reason": "Completed",
                "startedAt": "2025-01-01T00:00:00Z", "finishedAt": "2025-01-01T00:01:00Z"}}))}),
    )
    .await;
    assert!(
        matches!(
            next_for(&mut rx, &name).await,
            UnitState::Exited { success: true, .. }
        ),
        "expected a clean exit"
    );

    // A deadline the Job controller enforces by itself.
    let late = exec
        .launch(&spec(&unique("scan-late"), Duration::from_secs(5)))
        .await
        .unwrap();
    assert!(
        matches!(next_for(&mut rx, &late).await, UnitState::TimedOut { .. }),
        "expected a timeout"
    );

    for job in [&name, &late] {
        exec.cleanup("", job).await.unwrap();
    }
    // Cleaning up what is gone is fine.
    exec.cleanup("", &name).await.unwrap();
}

#[tokio::test]
#[ignore = "needs a cluster: set KUBECONFIG and run with --ignored"]
async fn an_unschedulable_pod_fails_after_the_grace_and_cancel_deletes() {
    let client = client().await;
    let ns = namespace(&client).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let exec = KubernetesExecutor::new(
        client.clone(),
        config(&ns, &unique("e2e"), Duration::from_secs(1)),
        tx,
    );
    let _watcher = exec.spawn_watcher();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);

    let name = exec
        .launch(&spec(&unique("scan-stuck"), Duration::from_secs(1800)))
        .await
        .unwrap();
    let pod = pod_of(&pods, &name).await;
    // A scheduler marks it unschedulable by itself; without one, the test does.
    tokio::time::sleep(Duration::from_secs(2)).await;
    set_pod_status(
        &pods,
        &pod.metadata.name.clone().unwrap(),
        json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
            "reason": "Unschedulable", "message": "0/0 nodes are available (scanplane e2e)"}]}),
    )
    .await;
    match next_for(&mut rx, &name).await {
        UnitState::Failed { message } => assert!(message.starts_with("Unschedulable"), "{message}"),
        other => panic!("expected Failed, got {other:?}"),
    }
    exec.cancel("", &name).await.unwrap();
    let jobs: Api<Job> = Api::namespaced(client, &ns);
    let deadline = tokio::time::Instant::now() + WAIT;
    while jobs.get_opt(&name).await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} was not deleted"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
