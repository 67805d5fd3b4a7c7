//! The workload inventory of a cluster: which image digests its Pods run, grouped by digest,
//! each with the workloads (Deployment, StatefulSet, CronJob, ...) and containers that run
//! it. Pure: the caller lists Pods, ReplicaSets and Jobs; nothing here talks to a cluster.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde::Serialize;

use crate::model::{ClusterFilter, WorkloadKind};

/// The namespace of an object that names none (never the case for listed objects).
const DEFAULT_NAMESPACE: &str = "default";

/// The workload that owns a Pod.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Workload {
    pub kind: WorkloadKind,
    pub name: String,
}

/// One container of one workload.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct WorkloadContainer {
    pub namespace: String,
    pub kind: WorkloadKind,
    /// The workload's name (the Deployment's, not its Pods').
    pub name: String,
    pub container: String,
}

/// An image pull secret of a Pod (`spec.imagePullSecrets`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PullSecret {
    pub namespace: String,
    pub name: String,
}

/// One image digest running in the cluster, and everything that runs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InventoryImage {
    /// `sha256:<hex>`, from the container statuses' `imageID`.
    pub digest: String,
    /// The image as the Pod spec names it (`nginx:1.25`); when several references run
    /// this digest, the first in byte order.
    pub image_ref: String,
    /// `image_ref` without its tag and digest (`nginx`).
    pub repository: String,
    /// Sorted, each entry once however many Pods the workload has.
    pub workloads: Vec<WorkloadContainer>,
    /// The pull secrets of the Pods that run this digest, sorted.
    pub pull_secrets: Vec<PullSecret>,
}

/// A container whose running digest is not known (not started yet, or an `imageID`
/// without a digest).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Unresolved {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub image_ref: String,
    pub workload: Workload,
    pub reason: String,
}

/// The images of the selected workloads, sorted by digest, and the containers whose
/// digest is unknown, sorted by namespace, Pod and container.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Inventory {
    pub images: Vec<InventoryImage>,
    pub unresolved: Vec<Unresolved>,
}

/// Resolves Pods to their owning workloads through the listed ReplicaSets and Jobs.
#[derive(Debug, Clone, Default)]
pub struct Owners<'a> {
    replica_sets: HashMap<(&'a str, &'a str), &'a ObjectMeta>,
    jobs: HashMap<(&'a str, &'a str), &'a ObjectMeta>,
}

impl<'a> Owners<'a> {
    pub fn new(replica_sets: &'a [ReplicaSet], jobs: &'a [Job]) -> Self {
        Owners {
            replica_sets: replica_sets
                .iter()
                .map(|r| index_key(&r.metadata))
                .collect(),
            jobs: jobs.iter().map(|j| index_key(&j.metadata)).collect(),
        }
    }

    /// The workload that owns `pod`: via its controller owner reference, a ReplicaSet
    /// resolves to its Deployment and a Job to its CronJob (when the listed ReplicaSet or
    /// Job has such a controller; otherwise the ReplicaSet or Job itself). A Pod without a
    /// controller, or whose controller is not one of the workload kinds (a static Pod's
    /// Node, a custom resource), is its own workload of kind `pod`.
    pub fn owner(&self, pod: &Pod) -> Workload {
        let namespace = namespace_of(&pod.metadata);
        let bare = || Workload {
            kind: WorkloadKind::Pod,
            name: pod_name(pod).to_string(),
        };
        let Some(owner) = controller(&pod.metadata) else {
            return bare();
        };
        let workload = |kind| Workload {
            kind,
            name: owner.name.clone(),
        };
        match (api_group(&owner.api_version), owner.kind.as_str()) {
            ("apps", "ReplicaSet") => {
                match lookup(&self.replica_sets, namespace, owner)
                    .and_then(controller)
                    .filter(|o| api_group(&o.api_version) == "apps" && o.kind == "Deployment")
                {
                    Some(deployment) => Workload {
                        kind: WorkloadKind::Deployment,
                        name: deployment.name.clone(),
                    },
                    None => workload(WorkloadKind::ReplicaSet),
                }
            }
            ("apps", "StatefulSet") => workload(WorkloadKind::StatefulSet),
            ("apps", "DaemonSet") => workload(WorkloadKind::DaemonSet),
            ("batch", "Job") => {
                match lookup(&self.jobs, namespace, owner)
                    .and_then(controller)
                    .filter(|o| api_group(&o.api_version) == "batch" && o.kind == "CronJob")
                {
                    Some(cron_job) => Workload {
                        kind: WorkloadKind::CronJob,
                        name: cron_job.name.clone(),
                    },
                    None => workload(WorkloadKind::Job),
                }
            }
            _ => bare(),
        }
    }
}

fn index_key(meta: &ObjectMeta) -> ((&str, &str), &ObjectMeta) {
    (
        (namespace_of(meta), meta.name.as_deref().unwrap_or_default()),
        meta,
    )
}

/// The listed object an owner reference names, unless its uid says it is another object
/// of the same name.
fn lookup<'a>(
    index: &HashMap<(&str, &str), &'a ObjectMeta>,
    namespace: &str,
    owner: &OwnerReference,
) -> Option<&'a ObjectMeta> {
    let meta = index.get(&(namespace, owner.name.as_str()))?;
    match meta.uid.as_deref() {
        Some(uid) if !uid.is_empty() && !owner.uid.is_empty() && uid != owner.uid => None,
        _ => Some(meta),
    }
}

fn controller(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_deref()?
        .iter()
        .find(|o| o.controller == Some(true))
}

/// `apps` of `apps/v1`; `""` (the core group) of `v1`.
fn api_group(api_version: &str) -> &str {
    api_version.split_once('/').map_or("", |(group, _)| group)
}

fn namespace_of(meta: &ObjectMeta) -> &str {
    meta.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE)
}

fn pod_name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or_default()
}

/// The digest an `imageID` names: `docker-pullable://repo@sha256:…`, `repo@sha256:…` or a
/// bare `sha256:…` (any `scheme://` prefix is ignored). `None` for an empty or
/// digest-less `imageID`.
pub fn digest_of_image_id(image_id: &str) -> Option<&str> {
    let id = image_id.trim();
    let id = id.split_once("://").map_or(id, |(_, rest)| rest);
    let digest = id.rsplit_once('@').map_or(id, |(_, digest)| digest);
    is_digest(digest).then_some(digest)
}

fn is_digest(digest: &str) -> bool {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return false;
    };
    let len = match algorithm {
        "sha256" => 64,
        "sha512" => 128,
        _ => return false,
    };
    hex.len() == len && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// An image reference without its tag and digest: `nginx` of `nginx:1.25`,
/// `registry:5000/team/app` of `registry:5000/team/app:v1@sha256:…`.
pub fn repository_of(image_ref: &str) -> &str {
    let name = image_ref
        .split_once('@')
        .map_or(image_ref, |(name, _)| name);
    let last = name.rfind('/').map_or(0, |i| i + 1);
    match name[last..].rfind(':') {
        Some(colon) => &name[..last + colon],
        None => name,
    }
}

/// One container of a Pod, and what its status says it runs.
struct ContainerRun<'p> {
    name: &'p str,
    image_ref: &'p str,
    digest: Result<&'p str, String>,
}

/// Init containers first, then the app containers, in spec order.
fn containers(pod: &Pod) -> Vec<ContainerRun<'_>> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    let status = pod.status.as_ref();
    let init_statuses = status.and_then(|s| s.init_container_statuses.as_deref());
    let statuses = status.and_then(|s| s.container_statuses.as_deref());
    let init = spec.init_containers.as_deref().unwrap_or_default();
    init.iter()
        .map(|c| run(c, init_statuses))
        .chain(spec.containers.iter().map(|c| run(c, statuses)))
        .collect()
}

fn run<'p>(container: &'p Container, statuses: Option<&'p [ContainerStatus]>) -> ContainerRun<'p> {
    let status = statuses
        .unwrap_or_default()
        .iter()
        .find(|s| s.name == container.name);
    let image_ref = container
        .image
        .as_deref()
        .filter(|i| !i.is_empty())
        .or_else(|| status.map(|s| s.image.as_str()))
        .unwrap_or_default();
    let digest = match status {
        None => Err("the container has no status yet".to_string()),
        Some(s) if s.image_id.trim().is_empty() => {
            Err("the container has not started: its status has no imageID".to_string())
        }
        Some(s) => digest_of_image_id(&s.image_id)
            .ok_or_else(|| format!("imageID {:?} names no digest", s.image_id)),
    };
    ContainerRun {
        name: &container.name,
        image_ref,
        digest,
    }
}

fn pod_pull_secrets(pod: &Pod) -> impl Iterator<Item = PullSecret> + '_ {
    let namespace = namespace_of(&pod.metadata);
    pod.spec
        .iter()
        .flat_map(|s| s.image_pull_secrets.iter().flatten())
        .filter(|r| !r.name.is_empty())
        .map(move |r| PullSecret {
            namespace: namespace.to_string(),
            name: r.name.clone(),
        })
}

#[derive(Default)]
struct ImageAcc {
    image_refs: BTreeSet<String>,
    workloads: BTreeSet<WorkloadContainer>,
    pull_secrets: BTreeSet<PullSecret>,
}

/// The inventory of `pods` (with the ReplicaSets and Jobs of their namespaces, to resolve
/// owners), narrowed by `filter`: namespaces (of the Pod), kinds and resources (of the
/// owning workload) and containers (by name; init containers included). Empty filter lists
/// select everything.
pub fn inventory(
    pods: &[Pod],
    replica_sets: &[ReplicaSet],
    jobs: &[Job],
    filter: &ClusterFilter,
) -> Inventory {
    let owners = Owners::new(replica_sets, jobs);
    let mut images: BTreeMap<String, ImageAcc> = BTreeMap::new();
    let mut unresolved = BTreeSet::new();
    for pod in pods {
        let namespace = namespace_of(&pod.metadata);
        if !filter.matches_namespace(namespace) {
            continue;
        }
        let owner = owners.owner(pod);
        if !filter.matches_kind(owner.kind) || !filter.matches_resource(&owner.name) {
            continue;
        }
        for c in containers(pod) {
            if !filter.matches_container(c.name) {
                continue;
            }
            match c.digest {
                Ok(digest) => {
                    let acc = images.entry(digest.to_string()).or_default();
                    acc.image_refs.insert(c.image_ref.to_string());
                    acc.workloads.insert(WorkloadContainer {
                        namespace: namespace.to_string(),
                        kind: owner.kind,
                        name: owner.name.clone(),
                        container: c.name.to_string(),
                    });
                    acc.pull_secrets.extend(pod_pull_secrets(pod));
                }
                Err(reason) => {
                    unresolved.insert(Unresolved {
                        namespace: namespace.to_string(),
                        pod: pod_name(pod).to_string(),
                        container: c.name.to_string(),
                        image_ref: c.image_ref.to_string(),
                        workload: owner.clone(),
                        reason,
                    });
                }
            }
        }
    }
    Inventory {
        images: images
            .into_iter()
            .map(|(digest, acc)| {
                let image_ref = acc.image_refs.into_iter().next().unwrap_or_default();
                InventoryImage {
                    repository: repository_of(&image_ref).to_string(),
                    image_ref,
                    digest,
                    workloads: acc.workloads.into_iter().collect(),
                    pull_secrets: acc.pull_secrets.into_iter().collect(),
                }
            })
            .collect(),
        unresolved: unresolved.into_iter().collect(),
    }
}

/// Digest → the `(namespace, secret name)` pull secrets of the Pods running it, sorted and
/// deduplicated (no filter: every Pod and container with a resolved digest).
pub fn pull_secrets(pods: &[Pod]) -> BTreeMap<String, Vec<(String, String)>> {
    let mut out: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    for pod in pods {
        let secrets: Vec<PullSecret> = pod_pull_secrets(pod).collect();
        if secrets.is_empty() {
            continue;
        }
        for c in containers(pod) {
            if let Ok(digest) = c.digest {
                out.entry(digest.to_string()).or_default().extend(
                    secrets
                        .iter()
                        .map(|s| (s.namespace.clone(), s.name.clone())),
                );
            }
        }
    }
    out.into_iter()
        .map(|(digest, secrets)| (digest, secrets.into_iter().collect()))
        .collect()
}
