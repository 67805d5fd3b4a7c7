//! Fixtures shared by the integration tests: one launch spec and one config.

pub mod api;

use std::collections::BTreeMap;
use std::time::Duration;

use scanplane_core::scan::Trigger;
use scanplane_executor::LaunchSpec;
use scanplane_executor_k8s::{parse_tolerations, KubernetesConfig};

/// The token every fixture uses; tests check it never leaks into the Job.
pub const TOKEN: &str = "tok-3f9a1c2b7d";

pub fn spec() -> LaunchSpec {
    LaunchSpec {
        scan_id: "0192f1c4-7d2a-7b3e-9c4d-5e6f7a8b9c0d".into(),
        attempt: 2,
        tenant: "acme".into(),
        schedule_id: Some("nightly-all".into()),
        trigger: Trigger::Schedule,
        scanner: "nmap".into(),
        targets: vec![
            "10.0.0.0/30".into(),
            "account://123456789012".into(),
            "https://example.com/a,b".into(),
        ],
        billing: true,
        options: r#"{"ports":"1-1024"}"#.into(),
        timeout: Duration::from_secs(1800),
        server_url: "http://scanplane.scans.svc:8080".into(),
        report_token: TOKEN.into(),
        image: None,
        scanner_definition: None,
    }
}

/// A scan of a custom scanner: its definition travels with the unit, in the Secret.
pub fn custom_spec() -> LaunchSpec {
    LaunchSpec {
        scanner: "inventory".into(),
        targets: vec!["https://example.com".into()],
        options: "{}".into(),
        image: Some("registry.example.com/inventory:2".into()),
        scanner_definition: Some(format!(
            r#"{{"name":"inventory","command":["/opt/inventory/run","--json"],"env":{{"API_KEY":"{DEFINITION_SECRET}"}},"image":"registry.example.com/inventory:2"}}"#
        )),
        ..spec()
    }
}

/// A credential inside the custom scanner's definition: it must stay out of the Job spec.
pub const DEFINITION_SECRET: &str = "def-secret-77c1";

pub fn config() -> KubernetesConfig {
    KubernetesConfig {
        namespace: "scans".into(),
        scanner_image: "registry.example.com/scanplane:1.2.3".into(),
        node_selector: BTreeMap::from([("kubernetes.io/os".into(), "linux".into())]),
        tolerations: parse_tolerations(
            r#"[{"key":"dedicated","operator":"Equal","value":"scanners","effect":"NoSchedule"}]"#,
        )
        .unwrap(),
        instance: "prod".into(),
        ..KubernetesConfig::default()
    }
}

/// An on-demand nmap scan of `10.0.0.1` for `tenant_id`, as the dispatcher tests queue it.
pub fn new_scan(tenant_id: &str) -> scanplane_store::NewScan {
    scanplane_store::NewScan {
        tenant_id: tenant_id.into(),
        project_id: None,
        schedule_id: None,
        fire_time: None,
        trigger: scanplane_core::scan::Trigger::OnDemand,
        scanner: "nmap".into(),
        provider: None,
        targets: vec!["10.0.0.1".into()],
        billing: false,
        options: "{}".into(),
        scope_options: "{}".into(),
        on_maintenance: scanplane_core::maintenance::WindowAction::Hold,
    }
}
