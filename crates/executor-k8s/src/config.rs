//! How scanner Jobs are shaped: namespace, image, service account, limits and scheduling.
//!
//! Every field comes from one env var of `scanplane serve` (the CLI wires them); the
//! table is in each field's doc and in the crate's README section of `deploy/README.md`.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Toleration;

/// A config value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid node selector entry {0:?}: expected key=value pairs separated by commas")]
    NodeSelector(String),
    #[error("invalid tolerations: expected a JSON array of Kubernetes tolerations: {0}")]
    Tolerations(String),
    #[error("invalid instance name {0:?}: it must be a valid label value (at most 63 of [A-Za-z0-9-_.], alphanumeric at both ends)")]
    Instance(String),
}

/// CPU and memory requests and limits of the scanner container, as Kubernetes quantities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannerResources {
    /// `SCANNER_CPU_REQUEST`, default `100m`.
    pub cpu_request: Option<String>,
    /// `SCANNER_MEMORY_REQUEST`, default `256Mi`.
    pub memory_request: Option<String>,
    /// `SCANNER_CPU_LIMIT`, default `1`.
    pub cpu_limit: Option<String>,
    /// `SCANNER_MEMORY_LIMIT`, default `1Gi`.
    pub memory_limit: Option<String>,
}

impl Default for ScannerResources {
    /// Defaults sized for one scanner pod: modest requests, a hard memory limit.
    fn default() -> Self {
        Self {
            cpu_request: Some("100m".into()),
            memory_request: Some("256Mi".into()),
            cpu_limit: Some("1".into()),
            memory_limit: Some("1Gi".into()),
        }
    }
}

/// Everything the Kubernetes executor needs besides a client.
#[derive(Debug, Clone, PartialEq)]
pub struct KubernetesConfig {
    /// `SCANPLANE_K8S_NAMESPACE`: where Jobs, Secrets and Events are created (the Helm chart
    /// sets it to the release namespace through the downward API). Default `default`.
    pub namespace: String,
    /// `SCANNER_IMAGE`: the image of scanner pods unless a scan names its own.
    pub scanner_image: String,
    /// `SCANPLANE_SCANNER_SERVICE_ACCOUNT`: the scanner pods' service account, which should
    /// have no RBAC at all. Empty leaves the namespace's `default`. Default `scanplane-scanner`.
    pub service_account: String,
    /// `SCANPLANE_JOB_BACKOFF_LIMIT`: the Job's `backoffLimit`, i.e. pod retries inside one
    /// attempt. Default 0, because retries belong to the control plane (`SCANNER_BACKOFF_LIMIT`
    /// counts new attempts, each with its own token); a Job re-running a scanner that already
    /// reported would only report twice, and the two limits would multiply.
    pub backoff_limit: i32,
    /// `JOB_TTL_AFTER_FINISHED`, in seconds: how long finished Jobs (and so their pods' logs)
    /// are kept. Default 3600.
    pub ttl_after_finished: i32,
    /// `SCANNER_CPU_REQUEST`, `SCANNER_MEMORY_REQUEST`, `SCANNER_CPU_LIMIT`, `SCANNER_MEMORY_LIMIT`.
    pub resources: ScannerResources,
    /// `SCANNER_NODE_SELECTOR`, as `key=value,key2=value2` (see [`parse_node_selector`]).
    pub node_selector: BTreeMap<String, String>,
    /// `SCANNER_TOLERATIONS`, as a JSON array (see [`parse_tolerations`]).
    pub tolerations: Vec<Toleration>,
    /// `SCANNER_PENDING_GRACE`, e.g. `5m`: how long a pod may wait on an image pull failure
    /// or an unschedulable condition before the attempt is reported failed. Default 5 minutes.
    pub pending_grace: Duration,
    /// `SCANPLANE_INSTANCE`: the `app.kubernetes.io/instance` label, so two installations in
    /// one namespace never adopt each other's Jobs. The Helm chart sets the release name.
    /// Default `scanplane`.
    pub instance: String,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        Self {
            namespace: "default".into(),
            scanner_image: "scanplane:latest".into(),
            service_account: "scanplane-scanner".into(),
            backoff_limit: 0,
            ttl_after_finished: 3600,
            resources: ScannerResources::default(),
            node_selector: BTreeMap::new(),
            tolerations: Vec::new(),
            pending_grace: Duration::from_secs(300),
            instance: "scanplane".into(),
        }
    }
}

impl KubernetesConfig {
    /// Checks what would otherwise only fail at the API server, on the first launch.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !crate::job::is_valid_label_value(&self.instance) || self.instance.is_empty() {
            return Err(ConfigError::Instance(self.instance.clone()));
        }
        Ok(())
    }
}

/// Parses `SCANNER_NODE_SELECTOR`: `key=value` pairs separated by commas; empty is none.
pub fn parse_node_selector(text: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut out = BTreeMap::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (key, value) = entry
            .split_once('=')
            .ok_or_else(|| ConfigError::NodeSelector(entry.to_string()))?;
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() {
            return Err(ConfigError::NodeSelector(entry.to_string()));
        }
        out.insert(key.to_string(), value.to_string());
    }
    Ok(out)
}

/// Parses `SCANNER_TOLERATIONS`: a JSON array of tolerations as in a pod spec; empty is none.
pub fn parse_tolerations(text: &str) -> Result<Vec<Toleration>, ConfigError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(text).map_err(|e| ConfigError::Tolerations(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_selector_parses_pairs_and_rejects_junk() {
        let sel = parse_node_selector("kubernetes.io/os=linux, pool = scanners").unwrap();
        assert_eq!(
            sel.get("kubernetes.io/os").map(String::as_str),
            Some("linux")
        );
        assert_eq!(sel.get("pool").map(String::as_str), Some("scanners"));
        assert!(parse_node_selector("").unwrap().is_empty());
        assert_eq!(
            parse_node_selector("pool"),
            Err(ConfigError::NodeSelector("pool".into()))
        );
        assert!(parse_node_selector("=x").is_err());
    }

    #[test]
    fn tolerations_parse_from_json() {
        let t = parse_tolerations(
            r#"[{"key":"dedicated","operator":"Equal","value":"scanners","effect":"NoSchedule"}]"#,
        )
        .unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].key.as_deref(), Some("dedicated"));
        assert!(parse_tolerations("").unwrap().is_empty());
        assert!(parse_tolerations("{").is_err());
    }

    #[test]
    fn instance_must_be_a_label_value() {
        assert!(KubernetesConfig::default().validate().is_ok());
        let bad = KubernetesConfig {
            instance: "not a label".into(),
            ..KubernetesConfig::default()
        };
        assert!(bad.validate().is_err());
    }
}
