//! The Helm chart rendered by Helm's own engine and every document parsed into its
//! k8s-openapi type, strictly: re-serializing must give back the very same document, so a
//! misspelt or misplaced field fails here instead of being dropped by the API server.
//!
//! Rendering uses `helm template` when a `helm` binary is on `PATH`, else Helm's Go SDK
//! from PyPI (`pip install helm-python-sdk==0.2.2`) through `tests/render_chart.py`. With
//! neither, the test fails and says what to install.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

const RELEASE: &str = "demo";
const NS: &str = "scans";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn chart() -> PathBuf {
    repo().join("deploy/helm/scanplane")
}

fn on_path(bin: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
        .unwrap_or(false)
}

/// Renders the chart with optional values (JSON is YAML, so both renderers take it).
fn render(values: Option<&Value>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let values_file = values.map(|v| {
        let path = dir.path().join("values.json");
        std::fs::write(&path, serde_json::to_vec(v).unwrap()).unwrap();
        path
    });
    let output = if on_path("helm") {
        let mut cmd = Command::new("helm");
        cmd.args(["template", RELEASE])
            .arg(chart())
            .args(["--namespace", NS]);
        if let Some(f) = &values_file {
            cmd.arg("--values").arg(f);
        }
        cmd.output().unwrap()
    } else {
        let python = if on_path("python3") {
            "python3"
        } else {
            "python"
        };
        let mut cmd = Command::new(python);
        cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/render_chart.py"))
            .arg(chart())
            .args([RELEASE, NS]);
        if let Some(f) = &values_file {
            cmd.arg(f);
        }
        cmd.output().unwrap_or_else(|e| {
            panic!("cannot run {python} to render the chart ({e}); install helm, or python3 and `pip install helm-python-sdk==0.2.2`")
        })
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "rendering the chart failed ({}):\n{stderr}\nNeeds a helm binary on PATH, or `pip install helm-python-sdk==0.2.2`.",
        output.status
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Every non-empty document, as JSON values.
fn documents(stream: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(stream)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

/// Parses `doc` as `T` and checks that nothing was dropped or changed on the way.
fn strict<T: DeserializeOwned + Serialize>(doc: &Value) -> T {
    let name = format!("{} {}", doc["kind"], doc["metadata"]["name"]);
    let typed: T = serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(
        &back, doc,
        "{name}: fields were dropped or changed by the type"
    );
    typed
}

struct Rendered {
    deployment: Deployment,
    service: Service,
    config: ConfigMap,
    secret: Option<Secret>,
    accounts: Vec<ServiceAccount>,
    role: Role,
    binding: RoleBinding,
}

fn parse(stream: &str) -> Rendered {
    let mut deployment = None;
    let mut service = None;
    let mut config = None;
    let mut secret = None;
    let mut accounts = Vec::new();
    let mut role = None;
    let mut binding = None;
    for doc in documents(stream) {
        assert_eq!(
            doc["metadata"].get("namespace"),
            None,
            "namespaced by the release, not the template"
        );
        match (doc["apiVersion"].as_str(), doc["kind"].as_str()) {
            (Some("apps/v1"), Some("Deployment")) => deployment = Some(strict(&doc)),
            (Some("v1"), Some("Service")) => service = Some(strict(&doc)),
            (Some("v1"), Some("ConfigMap")) => config = Some(strict(&doc)),
            (Some("v1"), Some("Secret")) => secret = Some(strict(&doc)),
            (Some("v1"), Some("ServiceAccount")) => accounts.push(strict(&doc)),
            (Some("rbac.authorization.k8s.io/v1"), Some("Role")) => role = Some(strict(&doc)),
            (Some("rbac.authorization.k8s.io/v1"), Some("RoleBinding")) => {
                binding = Some(strict(&doc))
            }
            other => panic!("unexpected document {other:?}: nothing cluster-wide belongs here"),
        }
    }
    Rendered {
        deployment: deployment.expect("no Deployment"),
        service: service.expect("no Service"),
        config: config.expect("no ConfigMap"),
        secret,
        accounts,
        role: role.expect("no Role"),
        binding: binding.expect("no RoleBinding"),
    }
}

/// The server container's env: literal values, and `from:<source>` for references.
fn env(d: &Deployment) -> BTreeMap<String, String> {
    let pod = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    pod.containers[0]
        .env
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| {
            let v = match (&e.value, &e.value_from) {
                (Some(v), _) => v.clone(),
                (None, Some(from)) => match (&from.secret_key_ref, &from.field_ref) {
                    (Some(s), _) => format!("secret:{}/{}", s.name, s.key),
                    (_, Some(f)) => format!("field:{}", f.field_path),
                    _ => panic!("{}: unexpected source", e.name),
                },
                _ => String::new(),
            };
            (e.name.clone(), v)
        })
        .collect()
}

#[test]
fn default_values_render_valid_objects() {
    let r = parse(&render(None));
    let env = env(&r.deployment);
    let expect = [
        (
            "SCANPLANE_DATABASE_URL",
            "secret:demo-scanplane/database-url",
        ),
        ("SCANPLANE_ADMIN_TOKEN", "secret:demo-scanplane/admin-token"),
        ("SCANPLANE_LISTEN", "0.0.0.0:8080"),
        ("SCANPLANE_EXECUTOR", "kubernetes"),
        (
            "SCANPLANE_SERVER_URL",
            "http://demo-scanplane.scans.svc:8080",
        ),
        ("SCANPLANE_CONFIG", "/etc/scanplane/config.yaml"),
        ("SCANPLANE_K8S_NAMESPACE", "field:metadata.namespace"),
        ("SCANPLANE_INSTANCE", "demo"),
        ("SCANNER_IMAGE", "scanplane:0.1.0"),
        ("SCANNER_TIMEOUT", "30m"),
        ("MAX_CONCURRENT_JOBS", "5"),
        ("JOB_TTL_AFTER_FINISHED", "3600"),
        ("SCANNER_BACKOFF_LIMIT", "2"),
        ("SCANPLANE_JOB_BACKOFF_LIMIT", "0"),
        ("SCANNER_PENDING_GRACE", "5m"),
        (
            "SCANPLANE_SCANNER_SERVICE_ACCOUNT",
            "demo-scanplane-scanner",
        ),
        ("SCANNER_CPU_REQUEST", "100m"),
        ("SCANNER_MEMORY_REQUEST", "256Mi"),
        ("SCANNER_CPU_LIMIT", "1"),
        ("SCANNER_MEMORY_LIMIT", "1Gi"),
        ("SCANNER_NODE_SELECTOR", ""),
        ("SCANNER_TOLERATIONS", "[]"),
    ];
    for (k, v) in expect {
        assert_eq!(env.get(k).map(String::as_str), Some(v), "{k}");
    }

    // The config file the server reads parses and has the sections it expects.
    let text = &r.config.data.as_ref().unwrap()["config.yaml"];
    let cfg: Value = serde_yaml::from_str(text).unwrap();
    assert!(
        cfg.get("rate_limits").is_some() && cfg.get("scanners").is_some(),
        "{cfg}"
    );

    let secret = r.secret.expect("the chart's Secret");
    let data = secret.string_data.unwrap();
    assert!(data.contains_key("database-url") && data.contains_key("admin-token"));

    // Probes and the restricted security context.
    let pod = r.deployment.spec.unwrap().template.spec.unwrap();
    let c = &pod.containers[0];
    let path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        p.as_ref().unwrap().http_get.as_ref().unwrap().path.clone()
    };
    assert_eq!(path(&c.liveness_probe).as_deref(), Some("/healthz"));
    assert_eq!(path(&c.readiness_probe).as_deref(), Some("/readyz"));
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(
        sc.capabilities.as_ref().unwrap().drop.as_deref(),
        Some(&["ALL".to_string()][..])
    );
    assert_eq!(sc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
    assert_eq!(pod.service_account_name.as_deref(), Some("demo-scanplane"));
    assert_eq!(r.service.spec.unwrap().ports.unwrap()[0].port, 8080);

    // RBAC: exactly what the executor does, bound only to the server's account.
    let rules: BTreeSet<(String, String, String)> = r
        .role
        .rules
        .unwrap()
        .iter()
        .flat_map(|rule| {
            let groups = rule.api_groups.clone().unwrap_or_default();
            let resources = rule.resources.clone().unwrap_or_default();
            let verbs = rule.verbs.clone();
            assert!(rule.resource_names.is_none() && rule.non_resource_urls.is_none());
            groups.into_iter().flat_map(move |g| {
                let verbs = verbs.clone();
                resources.clone().into_iter().flat_map(move |r| {
                    let g = g.clone();
                    verbs
                        .clone()
                        .into_iter()
                        .map(move |v| (g.clone(), r.clone(), v))
                })
            })
        })
        .collect();
    let mut want = BTreeSet::new();
    let mut allow = |g: &str, r: &str, verbs: &[&str]| {
        for v in verbs {
            want.insert((g.to_string(), r.to_string(), v.to_string()));
        }
    };
    allow(
        "batch",
        "jobs",
        &["create", "get", "list", "watch", "delete"],
    );
    allow("", "pods", &["get", "list", "watch"]);
    allow("", "pods/log", &["get", "list", "watch"]);
    allow("", "secrets", &["create", "get", "delete", "patch"]);
    allow("", "events", &["create", "patch"]);
    allow("events.k8s.io", "events", &["create", "patch"]);
    assert_eq!(rules, want);
    let subjects = r.binding.subjects.unwrap();
    assert_eq!(subjects.len(), 1);
    assert_eq!(subjects[0].name, "demo-scanplane");
    assert_eq!(r.binding.role_ref.kind, "Role");

    // Two accounts; the scanners' has no token and no binding.
    let names: BTreeSet<String> = r
        .accounts
        .iter()
        .map(|a| a.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "demo-scanplane".to_string(),
            "demo-scanplane-scanner".to_string()
        ])
    );
    let scanner = r
        .accounts
        .iter()
        .find(|a| a.metadata.name.as_deref() == Some("demo-scanplane-scanner"))
        .unwrap();
    assert_eq!(scanner.automount_service_account_token, Some(false));
}

#[test]
fn overrides_reach_the_server_env() {
    let values = json!({
        "image": {"repository": "registry.example.com/scanplane", "tag": "1.2.3"},
        "database": {"existingSecret": "db", "existingSecretKey": "url"},
        "adminTokenExistingSecret": "admin",
        "scanner": {
            "image": "registry.example.com/scanners:9",
            "timeout": "45m",
            "maxConcurrent": 12,
            "nodeSelector": {"pool": "scanners", "kubernetes.io/os": "linux"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "scanners",
                             "effect": "NoSchedule"}]
        },
        "config": {"rate_limits": {"aws": {"scans": 5, "per": "1m"}}, "scanners": []}
    });
    let r = parse(&render(Some(&values)));
    assert!(
        r.secret.is_none(),
        "both secrets are external: the chart makes none"
    );
    let env = env(&r.deployment);
    assert_eq!(env["SCANPLANE_DATABASE_URL"], "secret:db/url");
    assert_eq!(env["SCANPLANE_ADMIN_TOKEN"], "secret:admin/admin-token");
    assert_eq!(env["SCANNER_IMAGE"], "registry.example.com/scanners:9");
    assert_eq!(env["SCANNER_TIMEOUT"], "45m");
    assert_eq!(env["MAX_CONCURRENT_JOBS"], "12");
    // The values the executor's own parsers accept.
    let sel = scanplane_executor_k8s::parse_node_selector(&env["SCANNER_NODE_SELECTOR"]).unwrap();
    assert_eq!(sel.len(), 2);
    assert_eq!(sel["pool"], "scanners");
    let tol = scanplane_executor_k8s::parse_tolerations(&env["SCANNER_TOLERATIONS"]).unwrap();
    assert_eq!(tol[0].value.as_deref(), Some("scanners"));
    let image = r.deployment.spec.unwrap().template.spec.unwrap().containers[0]
        .image
        .clone();
    assert_eq!(
        image.as_deref(),
        Some("registry.example.com/scanplane:1.2.3")
    );
    let cfg: Value = serde_yaml::from_str(&r.config.data.unwrap()["config.yaml"]).unwrap();
    assert_eq!(cfg["rate_limits"]["aws"]["per"], "1m");
}

#[test]
fn the_containerfile_builds_one_non_root_image_for_both_modes() {
    let text = std::fs::read_to_string(repo().join("Containerfile")).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    assert!(lines.contains(&"USER 65532:65532"), "{text}");
    assert!(lines.contains(&r#"ENTRYPOINT ["/usr/local/bin/scanplane"]"#));
    assert_eq!(lines.last(), Some(&r#"CMD ["serve"]"#));
}
