//! Workload inventory: owner resolution, digests from every imageID form, filters,
//! deduplication and pull secrets, from Pods, ReplicaSets and Jobs written as JSON.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use scanplane_policy::{
    digest_of_image_id, inventory, pull_secrets, repository_of, ClusterFilter, Inventory, Owners,
    PullSecret, Workload, WorkloadContainer, WorkloadKind,
};
use serde_json::{json, Value};

fn digest(n: u8) -> String {
    format!("sha256:{}", format!("{n:02x}").repeat(32))
}

fn owner(api_version: &str, kind: &str, name: &str) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "name": name, "uid": format!("uid-{name}"), "controller": true})
}

/// A running Pod with one container `(name, image, imageID)` per entry.
fn pod(ns: &str, name: &str, owner: Option<Value>, containers: &[(&str, &str, &str)]) -> Value {
    let specs: Vec<Value> = containers
        .iter()
        .map(|(n, image, _)| json!({"name": n, "image": image}))
        .collect();
    let statuses: Vec<Value> = containers
        .iter()
        .map(|(n, image, id)| {
            json!({"name": n, "image": image, "imageID": id, "ready": true, "restartCount": 0})
        })
        .collect();
    let mut metadata = json!({"name": name, "namespace": ns, "uid": format!("uid-{name}")});
    if let Some(o) = owner {
        metadata["ownerReferences"] = json!([o]);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"containers": specs},
        "status": {"phase": "Running", "containerStatuses": statuses}
    })
}

fn to_pod(v: Value) -> Pod {
    serde_json::from_value(v).unwrap()
}

fn replica_set(ns: &str, name: &str, deployment: Option<&str>) -> ReplicaSet {
    let mut metadata = json!({"name": name, "namespace": ns, "uid": format!("uid-{name}")});
    if let Some(d) = deployment {
        metadata["ownerReferences"] = json!([owner("apps/v1", "Deployment", d)]);
    }
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": metadata,
        "spec": {"selector": {}}
    }))
    .unwrap()
}

fn job(ns: &str, name: &str, cron_job: Option<&str>) -> Job {
    let mut metadata = json!({"name": name, "namespace": ns, "uid": format!("uid-{name}")});
    if let Some(c) = cron_job {
        metadata["ownerReferences"] = json!([owner("batch/v1", "CronJob", c)]);
    }
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": metadata,
        "spec": {"template": {}}
    }))
    .unwrap()
}

fn wc(ns: &str, kind: WorkloadKind, name: &str, container: &str) -> WorkloadContainer {
    WorkloadContainer {
        namespace: ns.into(),
        kind,
        name: name.into(),
        container: container.into(),
    }
}

/// A small cluster with one of each workload kind.
struct Cluster {
    pods: Vec<Pod>,
    replica_sets: Vec<ReplicaSet>,
    jobs: Vec<Job>,
}

fn cluster() -> Cluster {
    let pods = vec![
        pod(
            "web",
            "nginx-7d9f-abcde",
            Some(owner("apps/v1", "ReplicaSet", "nginx-7d9f")),
            &[(
                "nginx",
                "nginx:1.25",
                &format!("docker-pullable://nginx@{}", digest(1)),
            )],
        ),
        pod(
            "data",
            "db-0",
            Some(owner("apps/v1", "StatefulSet", "db")),
            &[(
                "postgres",
                "postgres:16",
                &format!("docker.io/library/postgres@{}", digest(2)),
            )],
        ),
        pod(
            "kube-system",
            "agent-x7k2p",
            Some(owner("apps/v1", "DaemonSet", "agent")),
            &[("agent", "ghcr.io/acme/agent:v3", &digest(3))],
        ),
        pod(
            "batch",
            "report-28000000-q2x9z",
            Some(owner("batch/v1", "Job", "report-28000000")),
            &[(
                "report",
                "acme/report:latest",
                &format!("acme/report@{}", digest(4)),
            )],
        ),
        pod(
            "web",
            "debug",
            None,
            &[(
                "shell",
                "busybox",
                &format!("docker.io/library/busybox@{}", digest(5)),
            )],
        ),
        pod(
            "web",
            "legacy-4q8zt",
            Some(owner("apps/v1", "ReplicaSet", "legacy")),
            &[("app", "legacy:1", &format!("legacy@{}", digest(6)))],
        ),
        pod(
            "batch",
            "migrate-h2k4d",
            Some(owner("batch/v1", "Job", "migrate")),
            &[(
                "migrate",
                "acme/migrate:2",
                &format!("acme/migrate@{}", digest(7)),
            )],
        ),
    ]
    .into_iter()
    .map(to_pod)
    .collect();
    Cluster {
        pods,
        replica_sets: vec![
            replica_set("web", "nginx-7d9f", Some("nginx")),
            replica_set("web", "legacy", None),
        ],
        jobs: vec![
            job("batch", "report-28000000", Some("report")),
            job("batch", "migrate", None),
        ],
    }
}

fn run(c: &Cluster, filter: &ClusterFilter) -> Inventory {
    inventory(&c.pods, &c.replica_sets, &c.jobs, filter)
}

/// `(kind, name)` of each image's single workload, in digest order.
fn owners_of(inv: &Inventory) -> Vec<(WorkloadKind, String)> {
    inv.images
        .iter()
        .flat_map(|i| i.workloads.iter().map(|w| (w.kind, w.name.clone())))
        .collect()
}

#[test]
fn every_owner_kind_resolves() {
    let c = cluster();
    let inv = run(&c, &ClusterFilter::default());
    assert!(inv.unresolved.is_empty(), "{:?}", inv.unresolved);
    assert_eq!(
        owners_of(&inv),
        [
            (WorkloadKind::Deployment, "nginx".to_string()),
            (WorkloadKind::StatefulSet, "db".to_string()),
            (WorkloadKind::DaemonSet, "agent".to_string()),
            (WorkloadKind::CronJob, "report".to_string()),
            (WorkloadKind::Pod, "debug".to_string()),
            (WorkloadKind::ReplicaSet, "legacy".to_string()),
            (WorkloadKind::Job, "migrate".to_string()),
        ]
    );
    let nginx = &inv.images[0];
    assert_eq!(nginx.digest, digest(1));
    assert_eq!(nginx.image_ref, "nginx:1.25");
    assert_eq!(nginx.repository, "nginx");
    assert_eq!(
        nginx.workloads,
        [wc("web", WorkloadKind::Deployment, "nginx", "nginx")]
    );
    assert_eq!(inv.images[2].repository, "ghcr.io/acme/agent");
}

#[test]
fn a_replica_set_or_job_not_listed_is_the_workload_itself() {
    let c = cluster();
    let owners = Owners::new(&[], &[]);
    assert_eq!(
        owners.owner(&c.pods[0]),
        Workload {
            kind: WorkloadKind::ReplicaSet,
            name: "nginx-7d9f".into()
        }
    );
    assert_eq!(
        owners.owner(&c.pods[3]),
        Workload {
            kind: WorkloadKind::Job,
            name: "report-28000000".into()
        }
    );
    // A listed ReplicaSet of the same name but another uid is not the owner.
    let mut rs = replica_set("web", "nginx-7d9f", Some("nginx"));
    rs.metadata.uid = Some("another".into());
    let rss = [rs];
    assert_eq!(
        Owners::new(&rss, &[]).owner(&c.pods[0]).kind,
        WorkloadKind::ReplicaSet
    );
}

#[test]
fn non_controller_and_foreign_owners_leave_a_bare_pod() {
    let mut not_controller = owner("apps/v1", "ReplicaSet", "x");
    not_controller["controller"] = json!(false);
    let static_pod = owner("v1", "Node", "node-1");
    let custom = owner("argoproj.io/v1alpha1", "Job", "wf");
    for o in [not_controller, static_pod, custom] {
        let p = to_pod(pod("ns", "p", Some(o), &[("c", "i", &digest(9))]));
        assert_eq!(
            Owners::default().owner(&p),
            Workload {
                kind: WorkloadKind::Pod,
                name: "p".into()
            }
        );
    }
}

#[test]
fn three_hundred_pods_of_one_deployment_are_one_image_and_one_workload() {
    let rs = [replica_set("web", "api-5c7f", Some("api"))];
    let pods: Vec<Pod> = (0..300)
        .map(|i| {
            to_pod(pod(
                "web",
                &format!("api-5c7f-{i:05}"),
                Some(owner("apps/v1", "ReplicaSet", "api-5c7f")),
                &[("api", "acme/api:1.0", &format!("acme/api@{}", digest(1)))],
            ))
        })
        .collect();
    let inv = inventory(&pods, &rs, &[], &ClusterFilter::default());
    assert_eq!(inv.images.len(), 1);
    assert_eq!(
        inv.images[0].workloads,
        [wc("web", WorkloadKind::Deployment, "api", "api")]
    );
}

#[test]
fn two_deployments_sharing_a_digest_are_one_image_with_both() {
    let rss = [
        replica_set("a", "front-1", Some("front")),
        replica_set("b", "back-1", Some("back")),
    ];
    let id = format!("docker.io/library/nginx@{}", digest(1));
    let pods = [
        to_pod(pod(
            "b",
            "back-1-x",
            Some(owner("apps/v1", "ReplicaSet", "back-1")),
            &[("web", "nginx:latest", &id)],
        )),
        to_pod(pod(
            "a",
            "front-1-x",
            Some(owner("apps/v1", "ReplicaSet", "front-1")),
            &[("nginx", "nginx:1.25", &id)],
        )),
    ];
    let inv = inventory(&pods, &rss, &[], &ClusterFilter::default());
    assert_eq!(inv.images.len(), 1);
    let image = &inv.images[0];
    assert_eq!(
        image.workloads,
        [
            wc("a", WorkloadKind::Deployment, "front", "nginx"),
            wc("b", WorkloadKind::Deployment, "back", "web"),
        ]
    );
    // The first reference in byte order, whatever the Pod order.
    assert_eq!(image.image_ref, "nginx:1.25");
    let mut reversed = pods.to_vec();
    reversed.reverse();
    assert_eq!(
        inventory(&reversed, &rss, &[], &ClusterFilter::default()),
        inv
    );
}

#[test]
fn namespace_filter() {
    let c = cluster();
    let inv = run(
        &c,
        &ClusterFilter {
            namespaces: vec!["batch".into()],
            ..Default::default()
        },
    );
    assert_eq!(
        owners_of(&inv),
        [
            (WorkloadKind::CronJob, "report".into()),
            (WorkloadKind::Job, "migrate".into())
        ]
    );
}

#[test]
fn kind_filter_uses_the_owning_workload() {
    let c = cluster();
    let kinds = |kinds: Vec<WorkloadKind>| {
        owners_of(&run(
            &c,
            &ClusterFilter {
                kinds,
                ..Default::default()
            },
        ))
    };
    assert_eq!(
        kinds(vec![WorkloadKind::Deployment]),
        [(WorkloadKind::Deployment, "nginx".into())]
    );
    // The nginx Pods are owned by a ReplicaSet, but their workload is the Deployment.
    assert_eq!(
        kinds(vec![WorkloadKind::ReplicaSet]),
        [(WorkloadKind::ReplicaSet, "legacy".into())]
    );
    assert_eq!(
        kinds(vec![WorkloadKind::CronJob]),
        [(WorkloadKind::CronJob, "report".into())]
    );
    assert_eq!(
        kinds(vec![WorkloadKind::Job]),
        [(WorkloadKind::Job, "migrate".into())]
    );
    assert_eq!(
        kinds(vec![WorkloadKind::Pod]),
        [(WorkloadKind::Pod, "debug".into())]
    );
    assert_eq!(
        kinds(vec![WorkloadKind::StatefulSet, WorkloadKind::DaemonSet]),
        [
            (WorkloadKind::StatefulSet, "db".into()),
            (WorkloadKind::DaemonSet, "agent".into())
        ]
    );
}

#[test]
fn resource_filter_uses_workload_names() {
    let c = cluster();
    let inv = run(
        &c,
        &ClusterFilter {
            resources: vec!["nginx".into(), "report".into()],
            ..Default::default()
        },
    );
    assert_eq!(
        owners_of(&inv),
        [
            (WorkloadKind::Deployment, "nginx".into()),
            (WorkloadKind::CronJob, "report".into())
        ]
    );
    // Pod names are not workload names.
    let inv = run(
        &c,
        &ClusterFilter {
            resources: vec!["nginx-7d9f-abcde".into()],
            ..Default::default()
        },
    );
    assert!(inv.images.is_empty());
}

#[test]
fn container_filter_and_init_containers() {
    let mut p = pod(
        "web",
        "app",
        None,
        &[
            ("app", "acme/app:1", &format!("acme/app@{}", digest(1))),
            ("sidecar", "envoy:1.30", &format!("envoy@{}", digest(2))),
        ],
    );
    p["spec"]["initContainers"] = json!([{"name": "init-db", "image": "acme/migrate:3"}]);
    p["status"]["initContainerStatuses"] = json!([{
        "name": "init-db", "image": "acme/migrate:3", "imageID": format!("docker-pullable://acme/migrate@{}", digest(3)),
        "ready": false, "restartCount": 0
    }]);
    let pods = [to_pod(p)];
    let all = inventory(&pods, &[], &[], &ClusterFilter::default());
    let containers: Vec<&str> = all
        .images
        .iter()
        .map(|i| i.workloads[0].container.as_str())
        .collect();
    assert_eq!(containers, ["app", "sidecar", "init-db"]);
    let only = |names: &[&str]| {
        let filter = ClusterFilter {
            containers: names.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        inventory(&pods, &[], &[], &filter)
    };
    let inv = only(&["init-db"]);
    assert_eq!(inv.images.len(), 1);
    assert_eq!(inv.images[0].digest, digest(3));
    assert_eq!(inv.images[0].repository, "acme/migrate");
    assert_eq!(only(&["sidecar"]).images[0].image_ref, "envoy:1.30");
    assert!(only(&["nothing"]).images.is_empty());
}

#[test]
fn combined_filters() {
    let c = cluster();
    let filter = ClusterFilter {
        namespaces: vec!["web".into()],
        kinds: vec![WorkloadKind::Deployment, WorkloadKind::Pod],
        resources: vec!["nginx".into(), "debug".into()],
        containers: vec!["nginx".into()],
    };
    assert_eq!(
        owners_of(&run(&c, &filter)),
        [(WorkloadKind::Deployment, "nginx".into())]
    );
}

#[test]
fn unresolved_containers_are_reported_with_their_pod() {
    let mut waiting = pod(
        "web",
        "pending-1",
        Some(owner("apps/v1", "StatefulSet", "db")),
        &[("db", "postgres:16", "")],
    );
    waiting["status"]["containerStatuses"][0]["state"] =
        json!({"waiting": {"reason": "ContainerCreating"}});
    let tag_only = pod(
        "web",
        "odd",
        None,
        &[("c", "nginx:1.25", "docker-pullable://nginx:1.25")],
    );
    let mut no_status = pod("web", "new", None, &[("c", "alpine:3", "")]);
    no_status["status"] = json!({"phase": "Pending"});
    let ok = pod(
        "web",
        "fine",
        None,
        &[("c", "alpine:3", &format!("alpine@{}", digest(1)))],
    );
    let pods: Vec<Pod> = [waiting, tag_only, no_status, ok]
        .into_iter()
        .map(to_pod)
        .collect();
    let inv = inventory(&pods, &[], &[], &ClusterFilter::default());
    assert_eq!(inv.images.len(), 1);
    let got: Vec<(&str, &str, &str, WorkloadKind)> = inv
        .unresolved
        .iter()
        .map(|u| {
            (
                u.pod.as_str(),
                u.container.as_str(),
                u.image_ref.as_str(),
                u.workload.kind,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("new", "c", "alpine:3", WorkloadKind::Pod),
            ("odd", "c", "nginx:1.25", WorkloadKind::Pod),
            ("pending-1", "db", "postgres:16", WorkloadKind::StatefulSet),
        ]
    );
    assert!(
        inv.unresolved[0].reason.contains("no status"),
        "{:?}",
        inv.unresolved[0]
    );
    assert!(
        inv.unresolved[1].reason.contains("names no digest"),
        "{:?}",
        inv.unresolved[1]
    );
    assert!(
        inv.unresolved[2].reason.contains("no imageID"),
        "{:?}",
        inv.unresolved[2]
    );
    // Filters apply to unresolved containers too.
    let filter = ClusterFilter {
        kinds: vec![WorkloadKind::StatefulSet],
        ..Default::default()
    };
    assert_eq!(inventory(&pods, &[], &[], &filter).unresolved.len(), 1);
}

#[test]
fn the_image_id_forms() {
    let d = digest(0xab);
    assert_eq!(
        digest_of_image_id(&format!("docker-pullable://nginx@{d}")),
        Some(d.as_str())
    );
    assert_eq!(
        digest_of_image_id(&format!("registry.local:5000/team/app@{d}")),
        Some(d.as_str())
    );
    assert_eq!(digest_of_image_id(&d), Some(d.as_str()));
    assert_eq!(
        digest_of_image_id(&format!("docker://{d}")),
        Some(d.as_str())
    );
    let sha512 = format!("sha512:{}", "0f".repeat(64));
    assert_eq!(digest_of_image_id(&sha512), Some(sha512.as_str()));
    for bad in [
        "",
        "nginx:1.25",
        "docker-pullable://nginx:1.25",
        "sha256:abc",
        "md5:0123456789abcdef0123456789abcdef",
    ] {
        assert_eq!(digest_of_image_id(bad), None, "{bad:?}");
    }
    assert_eq!(
        digest_of_image_id(&d.to_uppercase().replace("SHA256", "sha256")),
        None
    );

    // All three forms in one inventory: one digest each, all resolved.
    let pods: Vec<Pod> = [
        pod(
            "ns",
            "a",
            None,
            &[(
                "c",
                "nginx:1",
                &format!("docker-pullable://nginx@{}", digest(1)),
            )],
        ),
        pod(
            "ns",
            "b",
            None,
            &[("c", "nginx:2", &format!("nginx@{}", digest(2)))],
        ),
        pod("ns", "c", None, &[("c", "nginx:3", &digest(3))]),
    ]
    .into_iter()
    .map(to_pod)
    .collect();
    let inv = inventory(&pods, &[], &[], &ClusterFilter::default());
    let digests: Vec<&str> = inv.images.iter().map(|i| i.digest.as_str()).collect();
    assert_eq!(digests, [digest(1), digest(2), digest(3)]);
    assert!(inv.unresolved.is_empty());
}

#[test]
fn repositories() {
    assert_eq!(repository_of("nginx:1.25"), "nginx");
    assert_eq!(repository_of("nginx"), "nginx");
    assert_eq!(
        repository_of("localhost:5000/team/app:v1"),
        "localhost:5000/team/app"
    );
    assert_eq!(
        repository_of("localhost:5000/team/app"),
        "localhost:5000/team/app"
    );
    assert_eq!(
        repository_of(&format!("ghcr.io/a/b:v1@{}", digest(1))),
        "ghcr.io/a/b"
    );
    assert_eq!(
        repository_of(&format!("ghcr.io/a/b@{}", digest(1))),
        "ghcr.io/a/b"
    );
}

#[test]
fn pull_secrets_by_digest() {
    let id = format!("acme/private@{}", digest(1));
    let mut a = pod("team-a", "a", None, &[("c", "acme/private:1", &id)]);
    a["spec"]["imagePullSecrets"] = json!([{"name": "regcred"}, {"name": "backup"}]);
    let mut b = pod("team-b", "b", None, &[("c", "acme/private:1", &id)]);
    b["spec"]["imagePullSecrets"] = json!([{"name": "regcred"}]);
    let mut b2 = pod("team-b", "b2", None, &[("c", "acme/private:1", &id)]);
    b2["spec"]["imagePullSecrets"] = json!([{"name": "regcred"}]);
    let public = pod(
        "team-b",
        "p",
        None,
        &[("c", "nginx", &format!("nginx@{}", digest(2)))],
    );
    let pods: Vec<Pod> = [a, b, b2, public].into_iter().map(to_pod).collect();

    let map = pull_secrets(&pods);
    assert_eq!(map.len(), 1);
    assert_eq!(
        map[&digest(1)],
        [
            ("team-a".to_string(), "backup".to_string()),
            ("team-a".to_string(), "regcred".to_string()),
            ("team-b".to_string(), "regcred".to_string()),
        ]
    );
    let inv = inventory(&pods, &[], &[], &ClusterFilter::default());
    assert_eq!(inv.images[0].pull_secrets.len(), 3);
    assert_eq!(
        inv.images[0].pull_secrets[0],
        PullSecret {
            namespace: "team-a".into(),
            name: "backup".into()
        }
    );
    assert!(inv.images[1].pull_secrets.is_empty());
    // Only the Pods selected by the filter contribute their secrets.
    let filter = ClusterFilter {
        namespaces: vec!["team-b".into()],
        ..Default::default()
    };
    assert_eq!(
        inventory(&pods, &[], &[], &filter).images[0].pull_secrets,
        [PullSecret {
            namespace: "team-b".into(),
            name: "regcred".into()
        }]
    );
}

#[test]
fn inventory_serializes() {
    let inv = run(&cluster(), &ClusterFilter::default());
    let v = serde_json::to_value(&inv).unwrap();
    assert_eq!(v["images"][0]["workloads"][0]["kind"], "deployment");
    assert_eq!(v["images"][0]["digest"], digest(1));
}
