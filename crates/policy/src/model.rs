//! The typed model of a scan execution policy document, as parsed by [`crate::parse()`] and
//! serialized back (to JSON for storage, or YAML) in the same shape it was written in.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use scanplane_core::schedule::{Cadence, CadenceError};
use scanplane_core::target::ClusterSelector;
use serde::{Deserialize, Serialize};

/// The time zone of a rule that names none.
pub const DEFAULT_TIMEZONE: &str = "UTC";

/// A whole document: `scan_execution_policy: [...]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDocument {
    #[serde(rename = "scan_execution_policy")]
    pub policies: Vec<Policy>,
}

/// One policy: when to scan ([`Rule`]s) and what ([`Action`]s).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// 1-255 characters, unique within the document.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub enabled: bool,
    /// Never empty.
    pub rules: Vec<Rule>,
    /// Never empty.
    pub actions: Vec<Action>,
}

impl Policy {
    /// Whether one of the actions scans cluster workloads.
    pub fn scans_clusters(&self) -> bool {
        self.actions
            .iter()
            .any(|a| matches!(a, Action::ClusterImageScanning))
    }
}

/// The type of a rule; `schedule` is the only one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleType {
    #[default]
    Schedule,
}

/// When a policy runs, and on which clusters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    #[serde(rename = "type")]
    pub kind: RuleType,
    /// A 5-field cron expression, evaluated in `timezone`.
    pub cadence: String,
    /// An IANA time zone name; [`DEFAULT_TIMEZONE`] when the document names none.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_window: Option<TimeWindow>,
    /// Cluster name → which of its workloads to scan. Empty only for policies without a
    /// `cluster_image_scanning` action.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub clusters: BTreeMap<String, ClusterFilter>,
}

fn default_timezone() -> String {
    DEFAULT_TIMEZONE.to_string()
}

impl Rule {
    /// The rule's cadence as a schedule cadence (validated by [`crate::parse()`] already).
    pub fn schedule(&self) -> Result<Cadence, CadenceError> {
        Cadence::cron(&self.cadence, &self.timezone)
    }

    /// One cluster target selector per cluster of the rule, in cluster name order.
    pub fn selectors(&self) -> Vec<ClusterSelector> {
        self.clusters
            .iter()
            .map(|(cluster, filter)| filter.selector(cluster))
            .collect()
    }
}

/// Spreads the runs of a rule over a window after each tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeWindow {
    pub distribution: Distribution,
    /// The window length in seconds, 1..=86400.
    pub value: u32,
}

impl TimeWindow {
    pub fn duration(&self) -> Duration {
        Duration::from_secs(u64::from(self.value))
    }
}

/// How runs are spread over a [`TimeWindow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Distribution {
    Random,
}

/// Which workloads of one cluster to scan. Every list empty (or absent) means "all".
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFilter {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Names of the owning workloads (a Deployment's name, not its Pods').
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<String>,
    /// Kinds of the owning workloads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<WorkloadKind>,
}

impl ClusterFilter {
    /// The cluster target selector of this filter on `cluster`.
    pub fn selector(&self, cluster: &str) -> ClusterSelector {
        ClusterSelector {
            cluster: cluster.to_string(),
            namespaces: self.namespaces.clone(),
            kinds: self.kinds.iter().map(|k| k.as_str().to_string()).collect(),
            resources: self.resources.clone(),
            containers: self.containers.clone(),
        }
    }

    pub fn matches_namespace(&self, namespace: &str) -> bool {
        self.namespaces.is_empty() || self.namespaces.iter().any(|n| n == namespace)
    }

    pub fn matches_kind(&self, kind: WorkloadKind) -> bool {
        self.kinds.is_empty() || self.kinds.contains(&kind)
    }

    pub fn matches_resource(&self, name: &str) -> bool {
        self.resources.is_empty() || self.resources.iter().any(|r| r == name)
    }

    pub fn matches_container(&self, name: &str) -> bool {
        self.containers.is_empty() || self.containers.iter().any(|c| c == name)
    }
}

/// The kind of a workload that owns Pods, lowercase in documents (`deployment`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
    ReplicaSet,
    Job,
    CronJob,
    /// A Pod without a (known) controller.
    Pod,
}

impl WorkloadKind {
    pub const ALL: [WorkloadKind; 7] = [
        WorkloadKind::Deployment,
        WorkloadKind::StatefulSet,
        WorkloadKind::DaemonSet,
        WorkloadKind::ReplicaSet,
        WorkloadKind::Job,
        WorkloadKind::CronJob,
        WorkloadKind::Pod,
    ];

    /// The lowercase name used in policy documents.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployment",
            WorkloadKind::StatefulSet => "statefulset",
            WorkloadKind::DaemonSet => "daemonset",
            WorkloadKind::ReplicaSet => "replicaset",
            WorkloadKind::Job => "job",
            WorkloadKind::CronJob => "cronjob",
            WorkloadKind::Pod => "pod",
        }
    }

    /// The Kubernetes `kind` (`StatefulSet`).
    pub fn kubernetes_kind(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::ReplicaSet => "ReplicaSet",
            WorkloadKind::Job => "Job",
            WorkloadKind::CronJob => "CronJob",
            WorkloadKind::Pod => "Pod",
        }
    }

    /// The workload kind of a Kubernetes `kind`, if it is one of ours.
    pub fn from_kubernetes_kind(kind: &str) -> Option<Self> {
        WorkloadKind::ALL
            .into_iter()
            .find(|k| k.kubernetes_kind() == kind)
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a policy runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scan", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Scan the images running in the rules' clusters.
    ClusterImageScanning,
    /// Scan a registry, by id or name.
    Registry { registry: String },
}
