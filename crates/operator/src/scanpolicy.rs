//! What a `ScanPolicy` resource declares: one scan execution policy, stored as if it were an
//! entry of a `scan_execution_policy` document (checked by the same schema), named
//! `k8s:<namespace>/<name>` in the namespace's tenant. Pure.

use chrono::{DateTime, Utc};
use kube::ResourceExt;
use scanplane_core::declared::{DeclaredPolicy, RESOURCE_NAME_PREFIX};

use crate::crd::{ScanPolicy, ScanPolicyStatus};
use crate::scheduled::TenantMapping;
use crate::status::condition;

/// The finalizer that deletes the stored policy first.
pub const FINALIZER: &str = "scanplane.io/policy";
pub const READY: &str = "Ready";

/// The policy `obj` declares.
pub fn declared(obj: &ScanPolicy, tenants: TenantMapping) -> Result<DeclaredPolicy, String> {
    let namespace = obj
        .namespace()
        .ok_or_else(|| "metadata.namespace: missing".to_string())?;
    let tenant = tenants.tenant_of(obj)?;
    let name = format!("{RESOURCE_NAME_PREFIX}{namespace}/{}", obj.name_any());
    // The spec is the document entry, field for field (the seed's names).
    let mut entry = serde_json::to_value(&obj.spec).map_err(|e| format!("spec: {e}"))?;
    if let Some(o) = entry.as_object_mut() {
        o.insert("name".into(), name.clone().into());
    }
    Ok(DeclaredPolicy {
        tenant,
        name,
        entry_json: entry.to_string(),
    })
}

/// The status after an apply that answered `problem` (`None`: stored).
pub fn next_status(
    obj: &ScanPolicy,
    problem: Option<&str>,
    now: DateTime<Utc>,
) -> ScanPolicyStatus {
    let current = obj.status.clone().unwrap_or_default();
    let generation = obj.metadata.generation;
    let (status, reason, message) = match problem {
        None => (
            "True",
            "Stored",
            "policy stored; policies are not run yet".to_string(),
        ),
        Some(p) => ("False", "InvalidSpec", p.to_string()),
    };
    ScanPolicyStatus {
        conditions: vec![condition(
            &current.conditions,
            READY,
            status,
            reason,
            message,
            generation,
            now,
        )],
        last_error: problem.map(String::from),
        observed_generation: generation,
        ..current
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn a_scan_policy_is_one_document_entry_under_its_namespaced_name() {
        let obj: ScanPolicy = serde_json::from_value(json!({
            "apiVersion": "scanplane.io/v1alpha1", "kind": "ScanPolicy",
            "metadata": {"name": "nightly", "namespace": "team-a", "generation": 1},
            "spec": {"enabled": true, "description": "images of production",
                     "rules": [{"type": "schedule", "cadence": "0 0 * * *",
                                "time_window": {"distribution": "random", "value": 600},
                                "clusters": {"production": {"namespaces": ["shop"]}}}],
                     "actions": [{"scan": "cluster_image_scanning"}]}
        }))
        .unwrap();
        let d = declared(&obj, TenantMapping::default()).unwrap();
        assert_eq!(d.tenant, "team-a");
        assert_eq!(d.name, "k8s:team-a/nightly");
        let entry: serde_json::Value = serde_json::from_str(&d.entry_json).unwrap();
        assert_eq!(entry["name"], "k8s:team-a/nightly");
        assert_eq!(entry["rules"][0]["time_window"]["value"], 600);
        assert_eq!(
            entry["rules"][0]["clusters"]["production"]["namespaces"][0],
            "shop"
        );
        assert_eq!(entry["actions"][0]["scan"], "cluster_image_scanning");
        let st = next_status(&obj, Some("spec.rules[0].cadence: bad"), Utc::now());
        assert_eq!(st.conditions[0].status, "False");
        assert_eq!(st.last_error.as_deref(), Some("spec.rules[0].cadence: bad"));
    }
}
