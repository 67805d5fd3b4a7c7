//! What an annotated Ingress (or Istio VirtualService, see [`crate::virtualservice`]) asks
//! for: one `ScheduledScan` per host, owned by the resource (so Kubernetes deletes them with
//! it). Pure: the reconciler applies what this decides.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use scanplane_core::annotations::{
    self, AnnotatedScan, AnnotationDefaults, AnnotationError, ScanCadence,
};
use scanplane_core::duration::format_duration;
use sha2::{Digest, Sha256};

use crate::crd::{ScanSpec, ScannerConfig, ScheduledScan, ScheduledScanSpec};
use crate::scheduled::TENANT_ANNOTATION;

/// Label on every ScheduledScan made for an Ingress: its name, to find the ones to delete.
pub const INGRESS_LABEL: &str = "scanplane.io/ingress";
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "scanplane");

/// What to do for one Ingress.
#[derive(Debug, Clone, PartialEq)]
pub enum IngressIntent {
    /// Make these exist (and delete the Ingress's other ScheduledScans).
    Scan(Vec<ScheduledScan>),
    /// Scanning is off for it: delete its ScheduledScans.
    Disabled,
    /// Bad annotations: a Warning event naming each, and nothing else changes.
    Invalid(Vec<AnnotationError>),
}

/// A resource whose annotations ask for scans of its hosts.
#[derive(Debug, Clone)]
pub struct Annotated<'a> {
    pub meta: &'a ObjectMeta,
    /// The owner reference put on what it makes (garbage collection).
    pub owner: Option<OwnerReference>,
    /// The label naming the resource on what it makes, to find the ones to delete.
    pub label: &'static str,
    /// Prefix of the names of what it makes, so that an Ingress and a VirtualService of one
    /// name never share a ScheduledScan.
    pub name_prefix: &'static str,
    /// Host → URL.
    pub targets: BTreeMap<String, String>,
}

/// Decides what `ingress` asks for under the operator's `defaults`.
pub fn desired(ingress: &Ingress, defaults: &AnnotationDefaults) -> IngressIntent {
    desired_for(
        &Annotated {
            meta: &ingress.metadata,
            owner: owner_of(ingress),
            label: INGRESS_LABEL,
            name_prefix: "",
            targets: targets(ingress),
        },
        defaults,
    )
}

/// Decides what an annotated resource asks for under the operator's `defaults`.
pub fn desired_for(src: &Annotated<'_>, defaults: &AnnotationDefaults) -> IngressIntent {
    let empty = BTreeMap::new();
    let ann = src.meta.annotations.as_ref().unwrap_or(&empty);
    let scan = match annotations::parse(ann, defaults) {
        Ok(s) => s,
        Err(e) => return IngressIntent::Invalid(e),
    };
    if !scan.enabled {
        return IngressIntent::Disabled;
    }
    let name = format!(
        "{}{}",
        src.name_prefix,
        src.meta.name.clone().unwrap_or_default()
    );
    let source_name = src.meta.name.clone().unwrap_or_default();
    // The resource's tenant mapping carries over to what it makes.
    let tenant = ann.get(TENANT_ANNOTATION).cloned();
    let scans = src
        .targets
        .iter()
        .map(|(host, url)| {
            let mut s = scheduled_scan(&name, host, url.clone(), &scan, src.owner.clone());
            let labels = s.metadata.labels.get_or_insert_with(BTreeMap::new);
            labels.insert(src.label.to_string(), label_value(&source_name));
            if let Some(t) = &tenant {
                s.metadata.annotations =
                    Some(BTreeMap::from([(TENANT_ANNOTATION.to_string(), t.clone())]));
            }
            s
        })
        .collect();
    IngressIntent::Scan(scans)
}

/// The Ingress's hosts as URLs: `https://` when a TLS entry lists the host. Wildcard hosts
/// cannot be scanned and are left out; duplicates collapse.
pub fn targets(ingress: &Ingress) -> BTreeMap<String, String> {
    let Some(spec) = ingress.spec.as_ref() else {
        return BTreeMap::new();
    };
    let tls: Vec<&str> = spec
        .tls
        .iter()
        .flatten()
        .flat_map(|t| t.hosts.iter().flatten())
        .map(String::as_str)
        .collect();
    spec.rules
        .iter()
        .flatten()
        .filter_map(|r| r.host.as_deref())
        .filter(|h| !h.is_empty() && !h.contains('*'))
        .map(|h| {
            let scheme = if tls.contains(&h) { "https" } else { "http" };
            (h.to_string(), format!("{scheme}://{h}"))
        })
        .collect()
}

fn owner_of(ingress: &Ingress) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: "networking.k8s.io/v1".into(),
        kind: "Ingress".into(),
        name: ingress.metadata.name.clone()?,
        uid: ingress.metadata.uid.clone()?,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// An Ingress name as a label value (at most 63 characters; a longer name is cut and keeps a
/// hash of the whole, so two Ingresses never share a value).
pub fn label_value(ingress: &str) -> String {
    if ingress.len() <= 63 {
        return ingress.to_string();
    }
    let hash = hex::encode(&Sha256::digest(ingress.as_bytes())[..4]);
    format!("{}-{hash}", ingress[..54].trim_end_matches(['-', '.']))
}

/// `<ingress>-<host>` as a DNS-1123 label; a long one is cut and keeps a hash of the whole,
/// so two hosts never share a name.
pub fn scan_name(ingress: &str, host: &str) -> String {
    let raw: String = format!("{ingress}-{host}")
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    if raw.len() <= 63 {
        return raw.trim_matches('-').to_string();
    }
    let hash = hex::encode(&Sha256::digest(raw.as_bytes())[..4]);
    format!("{}-{hash}", raw[..54].trim_matches('-'))
}

fn scheduled_scan(
    ingress: &str,
    host: &str,
    url: String,
    scan: &AnnotatedScan,
    owner: Option<OwnerReference>,
) -> ScheduledScan {
    let mut options = serde_json::Map::new();
    let mut list = |key: &str, v: &[String]| {
        if !v.is_empty() {
            options.insert(key.into(), v.join(",").into());
        }
    };
    list("templates", &scan.templates);
    list("exclude_templates", &scan.exclude_templates);
    list("severity", &scan.severity);
    list("tags", &scan.tags);
    list("exclude_tags", &scan.exclude_tags);
    if let Some(rl) = scan.rate_limit {
        options.insert("rate_limit".into(), rl.into());
    }
    let schedule = match &scan.schedule {
        ScanCadence::Cron(expr) => expr.clone(),
        ScanCadence::Every(d) => format!("@every {}", format_duration(*d)),
    };
    let labels = BTreeMap::from([(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string())]);
    let mut s = ScheduledScan::new(
        &scan_name(ingress, host),
        ScheduledScanSpec {
            schedule,
            timezone: None,
            jitter: None,
            suspend: false,
            successful_scans_history_limit: None,
            failed_scans_history_limit: None,
            template: ScanSpec {
                scanner: scan.scanner.clone(),
                targets: vec![url],
                options: (!options.is_empty()).then_some(serde_json::Value::Object(options)),
                scanner_config: Some(ScannerConfig {
                    image: scan.scanner_image.clone(),
                    timeout: Some(format_duration(scan.timeout)),
                    ..ScannerConfig::default()
                }),
            },
        },
    );
    s.metadata = ObjectMeta {
        name: s.metadata.name.take(),
        labels: Some(labels),
        owner_references: owner.map(|o| vec![o]),
        ..ObjectMeta::default()
    };
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn ingress(annotations: serde_json::Value) -> Ingress {
        serde_json::from_value(json!({
            "metadata": {"name": "shop", "namespace": "team-a", "uid": "u-1", "annotations": annotations},
            "spec": {
                "tls": [{"hosts": ["shop.example.test"]}],
                "rules": [
                    {"host": "shop.example.test"},
                    {"host": "admin.example.test"},
                    {"host": "*.example.test"},
                    {"host": "shop.example.test"},
                    {}
                ]
            }
        }))
        .unwrap()
    }

    #[test]
    fn each_host_becomes_one_owned_scheduled_scan() {
        let i = ingress(json!({
            "scanplane.io/severity": "high,critical",
            "nuclei.homelab.mortenolsen.pro/schedule": "@daily",
            "scanplane.io/rate-limit": "20"
        }));
        let IngressIntent::Scan(scans) = desired(&i, &AnnotationDefaults::default()) else {
            panic!()
        };
        let names: Vec<_> = scans
            .iter()
            .map(|s| s.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["shop-admin-example-test", "shop-shop-example-test"]);
        let shop = &scans[1];
        assert_eq!(shop.spec.template.targets, ["https://shop.example.test"]);
        assert_eq!(
            scans[0].spec.template.targets,
            ["http://admin.example.test"]
        );
        assert_eq!(shop.spec.schedule, "0 0 * * *");
        assert_eq!(
            shop.spec.template.options,
            Some(json!({"severity": "high,critical", "rate_limit": 20}))
        );
        let owner = &shop.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("Ingress", "u-1")
        );
        assert_eq!(owner.controller, Some(true));
        assert_eq!(
            shop.metadata.labels.as_ref().unwrap()[INGRESS_LABEL],
            "shop"
        );
    }

    #[test]
    fn defaults_give_a_daily_interval_and_the_timeout() {
        let IngressIntent::Scan(scans) =
            desired(&ingress(json!({})), &AnnotationDefaults::default())
        else {
            panic!()
        };
        assert_eq!(scans[0].spec.schedule, "@every 1d");
        // What is written is what the ScheduledScan reconciler will read back.
        assert_eq!(
            annotations::parse_schedule(&scans[0].spec.schedule),
            Ok(ScanCadence::Every(std::time::Duration::from_secs(86_400)))
        );
        let cfg = scans[0].spec.template.scanner_config.as_ref().unwrap();
        assert_eq!(cfg.timeout.as_deref(), Some("30m"));
        assert_eq!(
            scans[0].spec.template.options,
            Some(json!({"rate_limit": 150})),
            "nuclei's default rate limit, as the nuclei-operator's"
        );
    }

    #[test]
    fn disabled_and_invalid_are_told_apart() {
        let d = AnnotationDefaults::default();
        assert_eq!(
            desired(&ingress(json!({"scanplane.io/enabled": "false"})), &d),
            IngressIntent::Disabled
        );
        let IngressIntent::Invalid(e) =
            desired(&ingress(json!({"scanplane.io/rate-limit": "lots"})), &d)
        else {
            panic!()
        };
        assert_eq!(e[0].annotation, "scanplane.io/rate-limit");
    }

    #[test]
    fn long_names_stay_labels_and_distinct() {
        let a = scan_name("ingress", &format!("{}.a.test", "x".repeat(80)));
        let b = scan_name("ingress", &format!("{}.b.test", "x".repeat(80)));
        assert!(a.len() <= 63 && b.len() <= 63, "{a} {b}");
        assert_ne!(a, b);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
    }
}
