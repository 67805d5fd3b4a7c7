//! The operator end to end against a real cluster, run with
//! `KUBECONFIG=... cargo test -p scanplane --test operator_e2e -- --ignored` (the test
//! command runs it whenever KUBECONFIG is set).
//!
//! The real `scanplane serve --operator --executor kubernetes` on SQLite: the CRDs are
//! applied from the Rust types, an annotated Ingress becomes a ScheduledScan owned by it,
//! the ScheduledScan a stored schedule (status Ready, `scheduleId`), the schedule fires into
//! a scan Job; a bad annotation is a Warning event and changes nothing; deleting the Ingress
//! garbage-collects the ScheduledScan and its finalizer deletes the schedule; a Scan resource
//! runs as a Job and deleting it cancels the run. It needs an API
//! server with kube-controller-manager (garbage collection and the Job controller); scanner
//! pods get a node selector no node matches, so nothing is scanned for real. Objects go to
//! `SCANPLANE_E2E_NAMESPACE` (default `scanplane-e2e`, created if missing).

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod common;

use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use scanplane_operator::crd::{Scan, ScheduledScan};
use scanplane_store::Backend;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(150);

async fn client() -> (Client, String) {
    let Some(path) = std::env::var_os("KUBECONFIG") else {
        panic!(
            "KUBECONFIG is not set: this test needs a real cluster (any API server with \
             kube-controller-manager). Point KUBECONFIG at one and rerun with --ignored."
        );
    };
    let client = Client::try_default()
        .await
        .expect("KUBECONFIG does not describe a reachable cluster");
    (client, path.to_string_lossy().into_owned())
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

/// Applies scanplane's CRDs as generated from the Rust types and waits until each is served.
async fn install_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply("scanplane-e2e").force();
    for (_, crd) in scanplane_operator::crd::all() {
        api.patch(&crd.name_any(), &params, &Patch::Apply(&crd))
            .await
            .unwrap_or_else(|e| panic!("applying CRD {}: {e}", crd.name_any()));
    }
    for (_, crd) in scanplane_operator::crd::all() {
        eventually("the CRD to be established", || async {
            let c = api.get(&crd.name_any()).await.ok()?;
            c.status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
                .then_some(())
        })
        .await;
    }
}

/// Polls `f` until it returns `Some`, for at most [`WAIT`].
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `serve --operator --executor kubernetes` on a fresh SQLite file, watching `ns`.
async fn operator(kubeconfig: &str, ns: &str) -> Server {
    let db = fresh_db(Backend::Sqlite).await;
    Server::start(
        &db,
        &[
            ("KUBECONFIG", kubeconfig),
            ("SCANPLANE_OPERATOR", "true"),
            ("SCANPLANE_OPERATOR_NAMESPACES", ns),
            ("POD_NAMESPACE", ns),
            ("SCANPLANE_EXECUTOR", "kubernetes"),
            ("SCANPLANE_K8S_NAMESPACE", ns),
            ("SCANNER_NODE_SELECTOR", "scanplane.io/e2e=no-such-node"),
            ("SCANPLANE_INSTANCE", "operator-e2e"),
        ],
    )
    .await
}

#[tokio::test]
#[ignore = "needs a cluster: set KUBECONFIG and run with --ignored"]
async fn an_annotated_ingress_becomes_a_schedule_that_runs_jobs_and_goes_with_it() {
    let (client, kubeconfig) = client().await;
    let ns = namespace(&client).await;
    install_crds(&client).await;
    let mut server = operator(&kubeconfig, &ns).await;

    let suffix = format!("{:x}", std::process::id());
    let name = format!("shop-{suffix}");
    let host = format!("shop-{suffix}.scanplane-e2e.localhost");
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), &ns);
    let ingress: Ingress = serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name, "annotations": {
            "scanplane.io/scanner": "http",
            "nuclei.homelab.mortenolsen.pro/schedule": "@every 1m"
        }},
        "spec": {"rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": "shop", "port": {"number": 80}}}}]}}]}
    }))
    .unwrap();
    let ingress = ingresses
        .create(&PostParams::default(), &ingress)
        .await
        .unwrap();
    let ingress_uid = ingress.uid().unwrap();

    // The ScheduledScan, owned by the Ingress, stored as a schedule.
    let scans: Api<ScheduledScan> = Api::namespaced(client.clone(), &ns);
    let scan_name = scanplane_operator::ingress::scan_name(&name, &host);
    let scheduled = eventually("the ScheduledScan to be Ready", || async {
        let s = scans.get_opt(&scan_name).await.ok()??;
        let ready = s
            .status
            .as_ref()?
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        ready.then_some(s)
    })
    .await;
    let uid = scheduled.uid().unwrap();
    let status = scheduled.status.clone().unwrap();
    assert_eq!(status.schedule_id.as_deref(), Some(uid.as_str()));
    assert!(status.next_run_time.is_some(), "{status:?}");
    assert_eq!(
        scheduled.owner_references()[0].uid,
        ingress_uid,
        "owned by the Ingress"
    );
    assert!(scheduled
        .finalizers()
        .contains(&"scanplane.io/schedule".to_string()));
    assert_eq!(scheduled.spec.template.targets, [format!("http://{host}")]);
    let (code, schedule) = server
        .get(&format!("/api/v1/scans/schedule/{uid}"), ADMIN)
        .await;
    assert_eq!(code, 200, "{schedule}");
    assert_eq!(schedule["name"], format!("k8s:{ns}/{scan_name}"));
    assert_eq!(
        schedule["tenant"],
        ns.as_str(),
        "the namespace is the tenant"
    );
    assert_eq!(schedule["every"], "1m");

    // Within a minute or two it fires into a scan Job in the namespace.
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    let job = eventually("the schedule's first Job", || async {
        let list = jobs
            .list(&ListParams::default().labels(&format!("scanplane.io/schedule={uid}")))
            .await
            .ok()?;
        list.items.into_iter().next()
    })
    .await;
    let scan_id = job.labels()["scanplane.io/scan-run-id"].clone();
    let (code, scan) = server.get(&format!("/api/v1/scans/{scan_id}"), ADMIN).await;
    assert_eq!(code, 200, "{scan}");

    // A bad annotation: a Warning event naming it, and the ScheduledScan unchanged.
    let before = scans.get(&scan_name).await.unwrap();
    ingresses
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {"scanplane.io/severity": "urgent"}}}),
            ),
        )
        .await
        .unwrap();
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let event = eventually("the InvalidAnnotation event", || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items.into_iter().find(|e| {
            e.reason.as_deref() == Some("InvalidAnnotation")
                && e.regarding.as_ref().and_then(|r| r.uid.as_deref()) == Some(ingress_uid.as_str())
        })
    })
    .await;
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert!(
        event
            .note
            .as_deref()
            .unwrap_or("")
            .contains("scanplane.io/severity"),
        "{event:?}"
    );
    let after = scans.get(&scan_name).await.unwrap();
    assert_eq!(after.spec, before.spec, "nothing else changed");

    // Deleting the Ingress garbage-collects the ScheduledScan; its finalizer deletes the
    // schedule first.
    ingresses
        .delete(&name, &DeleteParams::foreground())
        .await
        .unwrap();
    eventually("the ScheduledScan to be gone", || async {
        scans
            .get_opt(&scan_name)
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    let (code, _) = server
        .get(&format!("/api/v1/scans/schedule/{uid}"), ADMIN)
        .await;
    assert_eq!(code, 404, "the schedule went with its resource");
    let _ = jobs
        .delete_collection(
            &DeleteParams::background(),
            &ListParams::default().labels(&format!("scanplane.io/schedule={uid}")),
        )
        .await;
    server.terminate();
    assert!(
        server.log_text().contains("this replica leads"),
        "{}",
        server.log_text()
    );
}

#[tokio::test]
#[ignore = "needs a cluster: set KUBECONFIG and run with --ignored"]
async fn a_scan_resource_runs_as_a_job_and_is_cancelled_with_it() {
    let (client, kubeconfig) = client().await;
    let ns = namespace(&client).await;
    install_crds(&client).await;
    let mut server = operator(&kubeconfig, &ns).await;
    let name = format!("once-{:x}", std::process::id());
    let scans: Api<Scan> = Api::namespaced(client.clone(), &ns);
    let scan: Scan = serde_json::from_value(json!({
        "apiVersion": "scanplane.io/v1alpha1", "kind": "Scan",
        "metadata": {"name": name},
        "spec": {"scanner": "http", "targets": ["http://shop.scanplane-e2e.localhost"]}
    }))
    .unwrap();
    let scan = scans.create(&PostParams::default(), &scan).await.unwrap();
    let uid = scan.uid().unwrap();

    // Its run gets a Job: the status names both, and ScanJobCreated is told.
    let running = eventually("the Scan's Job in its status", || async {
        let s = scans.get(&name).await.ok()?;
        s.status.as_ref()?.job_ref.as_ref()?;
        Some(s)
    })
    .await;
    let status = running.status.clone().unwrap();
    let run = status.scan_run_id.clone().unwrap();
    assert_eq!(
        run,
        scanplane_core::declared::run_id(&uid, running.metadata.generation.unwrap())
    );
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    let job_name = status.job_ref.unwrap().name;
    let job = jobs.get(&job_name).await.unwrap();
    assert_eq!(job.labels()["scanplane.io/scan-run-id"], run);
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    eventually("ScanJobCreated", || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items
            .into_iter()
            .find(|e| {
                e.reason.as_deref() == Some("ScanJobCreated")
                    && e.regarding.as_ref().and_then(|r| r.uid.as_deref()) == Some(uid.as_str())
            })
            .map(|_| ())
    })
    .await;
    let (code, view) = server.get(&format!("/api/v1/scans/{run}"), ADMIN).await;
    assert_eq!(code, 200, "{view}");

    // Deleting it cancels the run (its pod never ran: no node matches) and keeps the record.
    scans.delete(&name, &DeleteParams::default()).await.unwrap();
    eventually("the Scan to be gone", || async {
        scans.get_opt(&name).await.ok()?.is_none().then_some(())
    })
    .await;
    let view = eventually("the run to be cancelled", || async {
        let (code, view) = server.get(&format!("/api/v1/scans/{run}"), ADMIN).await;
        (code == 200 && view["status"] == "cancelled").then_some(view)
    })
    .await;
    assert_eq!(view["reason"], "its Scan resource was deleted");
    let _ = jobs.delete(&job_name, &DeleteParams::background()).await;
    server.terminate();
}
