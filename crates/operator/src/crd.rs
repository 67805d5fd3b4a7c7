//! The custom resources of group `scanplane.io`, version `v1alpha1`: `Scan`, `ScheduledScan`,
//! `Registry` and `ScanPolicy`. Each maps onto a scanplane concept that already exists (a
//! scan, a schedule, a registry, a scan execution policy): the resource is how Kubernetes
//! users declare it, the database keeps the record. Status is a summary (phase, counts, a
//! link to the API), never findings: results stay out of etcd.
//!
//! The CRD manifests are generated from these types ([`all`], `scanplane crds`) and checked
//! in under the Helm chart's `crds/`; a test fails when the two drift.

// Printer columns repeat `type_ = "string"`: distinct columns, not duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The API group of every scanplane resource.
pub const GROUP: &str = "scanplane.io";
/// Their one version so far.
pub const VERSION: &str = "v1alpha1";

/// One scan run: what to scan with which scanner, like `POST /api/v1/scans/now`.
#[derive(CustomResource, Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[kube(
    group = "scanplane.io",
    version = "v1alpha1",
    kind = "Scan",
    namespaced,
    status = "ScanStatus",
    derive = "PartialEq",
    shortname = "sps",
    category = "scanplane",
    doc = "One scanplane scan run. The namespace is the tenant (the scanplane.io/tenant annotation may name another where the operator allows it).",
    printcolumn(name = "Scanner", type_ = "string", json_path = ".spec.scanner"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Critical",
        type_ = "integer",
        json_path = ".status.counts.critical"
    ),
    printcolumn(name = "High", type_ = "integer", json_path = ".status.counts.high"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ScanSpec {
    /// A scanner scanplane knows (`GET /api/v1/scanners`), e.g. `nuclei`, `trivy`, `nmap`.
    pub scanner: String,
    /// Targets as the API takes them: `https://host`, `host:port`, `image://ref`, ...
    pub targets: Vec<String>,
    /// Scanner options, validated by the scanner as for the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object")]
    pub options: Option<serde_json::Value>,
    /// Overrides of how the scanner runs (Kubernetes executor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scanner_config: Option<ScannerConfig>,
}

/// How the scanner of a scan runs: the scanner's container image, its resources, its
/// timeout and where it may be placed.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScannerConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// How long one run may take, e.g. `30m` (at most 7d).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
}

/// Where a run stands, as the nuclei-operator names it.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    Pending,
    Running,
    Completed,
    Failed,
}

/// The Job (or other unit of work) that runs a scan.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobRef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
}

/// Finding counts of a run by severity.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq, JsonSchema)]
pub struct SeverityCounts {
    pub critical: u64,
    pub high: u64,
    pub medium: u64,
    pub low: u64,
    pub info: u64,
    /// Findings whose scanner gave no severity scanplane knows.
    #[serde(default)]
    pub unknown: u64,
}

/// A `Scan`'s summary. Findings are read from the API at `url`.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScanStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The scan's id in scanplane (`GET /api/v1/scans/{scanRunId}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan_run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_ref: Option<JobRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan_start_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<SeverityCounts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The generation of the spec this status describes; a newer spec starts a new run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The scan in scanplane's API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// A scan on a schedule: scanplane's schedule (`/api/v1/scans/schedule`) as a resource.
#[derive(CustomResource, Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[kube(
    group = "scanplane.io",
    version = "v1alpha1",
    kind = "ScheduledScan",
    namespaced,
    status = "ScheduledScanStatus",
    derive = "PartialEq",
    shortname = "spss",
    category = "scanplane",
    doc = "A scanplane schedule: a scan template run on a cron schedule or an interval.",
    printcolumn(name = "Schedule", type_ = "string", json_path = ".spec.schedule"),
    printcolumn(name = "Suspend", type_ = "boolean", json_path = ".spec.suspend"),
    printcolumn(name = "Last", type_ = "string", json_path = ".status.lastPhase"),
    printcolumn(name = "Next", type_ = "date", json_path = ".status.nextRunTime"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledScanSpec {
    /// Cron (5 or 6 fields), `@daily`-style macros, or `@every 6h`.
    pub schedule: String,
    /// IANA time zone of a cron schedule (default UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Spread each run over this window, e.g. `15m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<String>,
    /// While true, no run starts.
    #[serde(default)]
    pub suspend: bool,
    /// Ended runs kept listed in status (default 3 succeeded, 1 failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successful_scans_history_limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_scans_history_limit: Option<u32>,
    /// The scan each run starts.
    pub template: ScanSpec,
}

/// A `ScheduledScan`'s summary.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledScanStatus {
    /// The schedule's id in scanplane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scan_run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_phase: Option<Phase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// A container registry whose images scanplane discovers and scans
/// (`/api/v1/registries` as a resource).
#[derive(CustomResource, Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[kube(
    group = "scanplane.io",
    version = "v1alpha1",
    kind = "Registry",
    namespaced,
    status = "RegistryStatus",
    derive = "PartialEq",
    shortname = "spreg",
    category = "scanplane",
    doc = "A container registry scanplane discovers images in and scans.",
    printcolumn(name = "URL", type_ = "string", json_path = ".spec.url"),
    printcolumn(name = "Images", type_ = "integer", json_path = ".status.images"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct RegistrySpec {
    /// `https://host[:port]`, or `http://` for a plain-HTTP registry.
    pub url: String,
    /// `oci` (list repositories with `/v2/_catalog`) or `none` (`repositories` required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<String>,
    #[serde(default)]
    pub insecure: bool,
    /// PEM bundle of the registry's CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repositories: Vec<RegistryRepository>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<Platform>,
    /// A Secret in the same namespace: `kubernetes.io/dockerconfigjson`, or `username` and
    /// `password` keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_secret_ref: Option<SecretRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery: Option<Cadence>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<Cadence>,
}

/// One repository of a registry and which of its tags are scanned.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistryRepository {
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_conditions: Vec<MatchCondition>,
    /// `and` (default) or `or`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_operator: Option<String>,
}

/// A CEL expression over `tag` that returns bool, e.g. `tag.endsWith('-prod')`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
pub struct MatchCondition {
    pub name: String,
    pub expression: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
pub struct SecretRef {
    pub name: String,
}

/// When a registry step runs: a cron schedule or an interval.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Cadence {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron_exp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<String>,
    /// e.g. `6h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistryStatus {
    /// The registry's id in scanplane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// One scan execution policy (an entry of a `scan_execution_policy` document) as a
/// resource; its name is the resource's name.
#[derive(CustomResource, Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[kube(
    group = "scanplane.io",
    version = "v1alpha1",
    kind = "ScanPolicy",
    namespaced,
    status = "ScanPolicyStatus",
    derive = "PartialEq",
    shortname = "sppol",
    category = "scanplane",
    doc = "A scan execution policy: scheduled rules (e.g. the images running in a cluster) and the scans they start.",
    printcolumn(name = "Enabled", type_ = "boolean", json_path = ".spec.enabled"),
    printcolumn(name = "Last", type_ = "string", json_path = ".status.lastPhase"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ScanPolicySpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub enabled: bool,
    #[schemars(length(min = 1))]
    pub rules: Vec<PolicyRule>,
    #[schemars(length(min = 1))]
    pub actions: Vec<PolicyAction>,
}

/// A rule of a policy; `schedule` is the only type.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
pub struct PolicyRule {
    #[serde(rename = "type")]
    pub type_: String,
    /// Cron, 5 fields.
    pub cadence: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_window: Option<TimeWindow>,
    /// Cluster name (from scanplane's configuration) → which workloads.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub clusters: BTreeMap<String, ClusterFilter>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
pub struct TimeWindow {
    /// `random`.
    pub distribution: String,
    /// Seconds.
    pub value: u32,
}

/// Which workloads of a cluster; every filter optional (absent: all).
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
pub struct ClusterFilter {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<String>,
}

/// `scan: cluster_image_scanning`, or `scan: registry` with `registry`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
pub struct PolicyAction {
    pub scan: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScanPolicyStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scan_run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_phase: Option<Phase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Scanner options are the scanner's to validate: kept as a free-form object.
fn free_form_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// Every CRD of the group, with the file name it is checked in under.
pub fn all() -> Vec<(&'static str, CustomResourceDefinition)> {
    use kube::CustomResourceExt;
    vec![
        ("scanplane.io_scans.yaml", Scan::crd()),
        ("scanplane.io_scheduledscans.yaml", ScheduledScan::crd()),
        ("scanplane.io_registries.yaml", Registry::crd()),
        ("scanplane.io_scanpolicies.yaml", ScanPolicy::crd()),
    ]
}

/// One CRD as the YAML document checked in (and printed by `scanplane crds`).
pub fn to_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_yaml::Error> {
    let body = serde_yaml::to_string(crd)?;
    Ok(format!(
        "# Generated from crates/operator/src/crd.rs by `scanplane crds`; do not edit.\n{body}"
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_crd_is_namespaced_in_the_group_and_version() {
        for (file, crd) in all() {
            assert_eq!(crd.spec.group, GROUP, "{file}");
            assert_eq!(crd.spec.scope, "Namespaced", "{file}");
            assert_eq!(crd.spec.versions.len(), 1);
            assert_eq!(crd.spec.versions[0].name, VERSION);
            assert!(
                crd.spec.versions[0]
                    .subresources
                    .as_ref()
                    .and_then(|s| s.status.as_ref())
                    .is_some(),
                "{file}: status is a subresource, so spec edits and status writes never race"
            );
            assert!(file.contains(&crd.spec.names.plural), "{file}");
        }
    }

    #[test]
    fn a_scan_resource_reads_as_users_write_it() {
        let yaml = r#"
apiVersion: scanplane.io/v1alpha1
kind: Scan
metadata: {name: web, namespace: team-a}
spec:
  scanner: nuclei
  targets: ["https://app.example.test"]
  options: {severity: "high,critical"}
  scannerConfig:
    image: projectdiscovery/nuclei:v3.3.0
    timeout: 45m
    nodeSelector: {pool: scanners}
    tolerations: [{key: dedicated, operator: Equal, value: scanners, effect: NoSchedule}]
    resources: {limits: {memory: 512Mi}}
"#;
        let scan: Scan = serde_yaml::from_str(yaml).unwrap();
        let cfg = scan.spec.scanner_config.unwrap();
        assert_eq!(cfg.timeout.as_deref(), Some("45m"));
        assert_eq!(
            cfg.tolerations.unwrap()[0].key.as_deref(),
            Some("dedicated")
        );
        assert_eq!(scan.spec.options.unwrap()["severity"], "high,critical");
    }
}
