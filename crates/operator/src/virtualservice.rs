//! What an annotated Istio `VirtualService` asks for: the same as an Ingress
//! ([`crate::ingress::desired_for`]), one `ScheduledScan` per host of `spec.hosts`, owned by
//! the VirtualService. The resource is read untyped (Istio's types are not a dependency);
//! it is watched only when the cluster serves `networking.istio.io`.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::DynamicObject;
use scanplane_core::annotations::AnnotationDefaults;

use crate::ingress::{desired_for, Annotated, IngressIntent};

/// Istio's API group.
pub const GROUP: &str = "networking.istio.io";
pub const KIND: &str = "VirtualService";
/// Label on every ScheduledScan made for a VirtualService: its name.
pub const LABEL: &str = "scanplane.io/virtualservice";

/// Decides what `vs` (served as `api_version`, e.g. `networking.istio.io/v1`) asks for.
pub fn desired(
    vs: &DynamicObject,
    api_version: &str,
    defaults: &AnnotationDefaults,
) -> IngressIntent {
    desired_for(
        &Annotated {
            meta: &vs.metadata,
            owner: owner_of(vs, api_version),
            label: LABEL,
            // An Ingress and a VirtualService of one name for one host stay two scans.
            name_prefix: "vs-",
            targets: targets(vs),
        },
        defaults,
    )
}

/// `spec.hosts` as URLs: `https://` when a `tls` route matches the host by SNI, else
/// `http://`. Wildcards (and the mesh-wide `*`) cannot be scanned and are left out; a short
/// name (`reviews`) stays, as scanner pods in the cluster resolve it.
pub fn targets(vs: &DynamicObject) -> BTreeMap<String, String> {
    let spec = &vs.data["spec"];
    let sni: Vec<&str> = spec["tls"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|route| route["match"].as_array().into_iter().flatten())
        .flat_map(|m| m["sniHosts"].as_array().into_iter().flatten())
        .filter_map(|h| h.as_str())
        .collect();
    spec["hosts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h.as_str())
        .filter(|h| !h.is_empty() && !h.contains('*') && h.len() <= 253)
        .map(|h| {
            let scheme = if sni.contains(&h) { "https" } else { "http" };
            (h.to_string(), format!("{scheme}://{h}"))
        })
        .collect()
}

fn owner_of(vs: &DynamicObject, api_version: &str) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: api_version.to_string(),
        kind: KIND.into(),
        name: vs.metadata.name.clone()?,
        uid: vs.metadata.uid.clone()?,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use kube::ResourceExt;
    use serde_json::json;

    fn vs(annotations: serde_json::Value) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "shop", "namespace": "team-a", "uid": "vs-uid", "annotations": annotations},
            "spec": {
                "hosts": ["shop.example.test", "reviews", "*.example.test", "*"],
                "gateways": ["public"],
                "tls": [{"match": [{"sniHosts": ["shop.example.test"], "port": 443}],
                         "route": [{"destination": {"host": "shop"}}]}]
            }
        }))
        .unwrap()
    }

    #[test]
    fn each_host_is_a_scan_owned_by_the_virtual_service() {
        let IngressIntent::Scan(scans) = desired(
            &vs(json!({"scanplane.io/severity": "critical"})),
            "networking.istio.io/v1",
            &AnnotationDefaults::default(),
        ) else {
            panic!()
        };
        let by_name: BTreeMap<String, _> = scans.iter().map(|s| (s.name_any(), s)).collect();
        assert_eq!(
            by_name.keys().collect::<Vec<_>>(),
            ["vs-shop-reviews", "vs-shop-shop-example-test"]
        );
        let shop = by_name["vs-shop-shop-example-test"];
        assert_eq!(shop.spec.template.targets, ["https://shop.example.test"]);
        assert_eq!(
            by_name["vs-shop-reviews"].spec.template.targets,
            ["http://reviews"]
        );
        let owner = &shop.owner_references()[0];
        assert_eq!(
            (
                owner.kind.as_str(),
                owner.api_version.as_str(),
                owner.uid.as_str()
            ),
            ("VirtualService", "networking.istio.io/v1", "vs-uid")
        );
        assert_eq!(shop.labels()[LABEL], "shop");
        assert!(!shop.labels().contains_key(crate::ingress::INGRESS_LABEL));
    }

    #[test]
    fn the_nuclei_operator_keys_and_bad_values_work_as_on_an_ingress() {
        assert_eq!(
            desired(
                &vs(json!({"nuclei.homelab.mortenolsen.pro/enabled": "false"})),
                "networking.istio.io/v1",
                &AnnotationDefaults::default()
            ),
            IngressIntent::Disabled
        );
        let IngressIntent::Invalid(errors) = desired(
            &vs(json!({"scanplane.io/schedule": "sometimes"})),
            "networking.istio.io/v1",
            &AnnotationDefaults::default(),
        ) else {
            panic!()
        };
        assert_eq!(errors[0].annotation, "scanplane.io/schedule");
    }
}
