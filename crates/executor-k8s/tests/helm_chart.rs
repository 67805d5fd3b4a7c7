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
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
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

/// Runs the renderer on the chart with optional values (JSON is YAML, so both take it).
fn run_renderer(values: Option<&Value>) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let values_file = values.map(|v| {
        let path = dir.path().join("values.json");
        std::fs::write(&path, serde_json::to_vec(v).unwrap()).unwrap();
        path
    });
    if on_path("helm") {
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
    }
}

/// Renders the chart with optional values.
fn render(values: Option<&Value>) -> String {
    let output = run_renderer(values);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "rendering the chart failed ({}):\n{stderr}\nNeeds a helm binary on PATH, or `pip install helm-python-sdk==0.2.2`.",
        output.status
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Renders the chart with values it must refuse; returns the renderer's message.
fn render_error(values: &Value) -> String {
    let output = run_renderer(Some(values));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !output.status.success(),
        "rendering with {values} should fail:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
    // Exit 3 is render_chart.py's missing SDK, not the chart's refusal.
    assert_ne!(output.status.code(), Some(3), "{stderr}");
    stderr
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
    /// The server's (`serve`) Deployment.
    deployment: Deployment,
    /// The workers' Deployment, with `worker.enabled`.
    worker: Option<Deployment>,
    hpa: Option<HorizontalPodAutoscaler>,
    service: Service,
    config: ConfigMap,
    secret: Option<Secret>,
    accounts: Vec<ServiceAccount>,
    role: Role,
    binding: RoleBinding,
    /// The operator's RBAC (`operator.enabled`), each document checked strictly.
    operator: Vec<Value>,
}

fn parse(stream: &str) -> Rendered {
    let mut deployment = None;
    let mut worker = None;
    let mut hpa = None;
    let mut service = None;
    let mut config = None;
    let mut secret = None;
    let mut accounts = Vec::new();
    let mut role = None;
    let mut binding = None;
    let mut operator = Vec::new();
    for doc in documents(stream) {
        if doc["metadata"]["labels"]["app.kubernetes.io/component"] == "operator" {
            // The one kind of object that may name another namespace: a watched one.
            match doc["kind"].as_str() {
                Some("Role") => drop(strict::<Role>(&doc)),
                Some("RoleBinding") => drop(strict::<RoleBinding>(&doc)),
                Some("ClusterRole") => drop(strict::<ClusterRole>(&doc)),
                Some("ClusterRoleBinding") => drop(strict::<ClusterRoleBinding>(&doc)),
                other => panic!("an operator document of kind {other:?}"),
            }
            operator.push(doc);
            continue;
        }
        assert_eq!(
            doc["metadata"].get("namespace"),
            None,
            "namespaced by the release, not the template"
        );
        match (doc["apiVersion"].as_str(), doc["kind"].as_str()) {
            (Some("apps/v1"), Some("Deployment")) => {
                match doc["metadata"]["labels"]["app.kubernetes.io/component"].as_str() {
                    Some("server") => deployment = Some(strict(&doc)),
                    Some("worker") => worker = Some(strict(&doc)),
                    other => panic!("a Deployment of component {other:?}"),
                }
            }
            (Some("autoscaling/v2"), Some("HorizontalPodAutoscaler")) => hpa = Some(strict(&doc)),
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
        worker,
        hpa,
        service: service.expect("no Service"),
        config: config.expect("no ConfigMap"),
        secret,
        accounts,
        role: role.expect("no Role"),
        binding: binding.expect("no RoleBinding"),
        operator,
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

/// The pod spec of a Deployment.
fn pod(d: &Deployment) -> &k8s_openapi::api::core::v1::PodSpec {
    d.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
}

/// Whether the env var `name` of the first container is an optional secret reference.
fn optional_secret(d: &Deployment, name: &str) -> Option<bool> {
    pod(d).containers[0]
        .env
        .as_ref()
        .unwrap()
        .iter()
        .find(|e| e.name == name)
        .and_then(|e| e.value_from.as_ref()?.secret_key_ref.as_ref()?.optional)
}

const NATS_URL: &str = "nats://nats.nats.svc:4222";

#[test]
fn the_default_render_has_no_worker_objects() {
    let r = parse(&render(None));
    assert!(r.worker.is_none(), "no worker Deployment by default");
    assert!(r.hpa.is_none(), "no HorizontalPodAutoscaler by default");
    assert!(r
        .accounts
        .iter()
        .all(|a| a.metadata.name.as_deref() != Some("demo-scanplane-worker")));
    let env = env(&r.deployment);
    assert_eq!(env["SCANPLANE_EXECUTOR"], "kubernetes");
    assert!(
        env.keys().all(|k| !k.starts_with("SCANPLANE_NATS_")),
        "{env:?}"
    );
}

#[test]
fn enabled_workers_pull_from_nats_without_api_access() {
    let values = json!({"worker": {"enabled": true}, "nats": {"url": NATS_URL}});
    let r = parse(&render(Some(&values)));
    assert!(r.hpa.is_none(), "autoscaling is off by default");
    let worker = r.worker.expect("the worker Deployment");
    assert_eq!(
        worker.metadata.name.as_deref(),
        Some("demo-scanplane-worker")
    );
    let spec = worker.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(2));
    // Its pods are not the server's: the server's Service and Deployment do not select them.
    let labels = spec
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .clone()
        .unwrap();
    assert_eq!(labels["app.kubernetes.io/component"], "worker");
    let server_selector = r.service.spec.as_ref().unwrap().selector.clone().unwrap();
    assert!(server_selector
        .iter()
        .any(|(k, v)| labels.get(k) != Some(v)));
    let annotations = spec
        .template
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .clone()
        .unwrap();
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], "8081");

    let worker_env = env(&worker);
    let want = BTreeMap::from(
        [
            ("SCANPLANE_NATS_URL", NATS_URL),
            ("SCANPLANE_NATS_STREAM", "SCANPLANE_UNITS"),
            ("SCANPLANE_WORKER_CONCURRENCY", "4"),
            ("SCANPLANE_WORKER_LIMITS", "discovery=2,sbom=4"),
            ("SCANPLANE_WORKER_LISTEN", "0.0.0.0:8081"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    assert_eq!(
        worker_env, want,
        "no credentials without nats.existingSecret"
    );

    let pod = pod(&worker);
    // Not the server's account, and no API token at all.
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some("demo-scanplane-worker")
    );
    assert_eq!(pod.automount_service_account_token, Some(false));
    let account = r
        .accounts
        .iter()
        .find(|a| a.metadata.name.as_deref() == Some("demo-scanplane-worker"))
        .expect("the workers' ServiceAccount");
    assert_eq!(account.automount_service_account_token, Some(false));
    let subjects = r.binding.subjects.unwrap();
    assert!(subjects.iter().all(|s| s.name != "demo-scanplane-worker"));
    assert_eq!(pod.termination_grace_period_seconds, Some(60));
    assert!(pod.volumes.is_none());
    let psc = pod.security_context.as_ref().unwrap();
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(psc.run_as_user, Some(65532));

    let c = &pod.containers[0];
    assert_eq!(
        c.image.as_deref(),
        Some("scanplane:0.1.0"),
        "the server's image"
    );
    assert_eq!(c.args.as_deref(), Some(&["worker".to_string()][..]));
    let ports = c.ports.as_ref().unwrap();
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0].container_port, 8081);
    assert_eq!(ports[0].name.as_deref(), Some("health"));
    for probe in [&c.liveness_probe, &c.readiness_probe] {
        let get = probe.as_ref().unwrap().http_get.as_ref().unwrap();
        assert_eq!(get.path.as_deref(), Some("/healthz"));
        assert_eq!(
            get.port,
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("health".into())
        );
    }
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(
        sc.capabilities.as_ref().unwrap().drop.as_deref(),
        Some(&["ALL".to_string()][..])
    );
    assert_eq!(sc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");

    // The server keeps its executor: enabling workers alone does not switch it.
    assert_eq!(env(&r.deployment)["SCANPLANE_EXECUTOR"], "kubernetes");
}

#[test]
fn worker_autoscaling_renders_an_hpa_and_drops_replicas() {
    let values = json!({
        "worker": {"enabled": true, "autoscaling": {"enabled": true, "maxReplicas": 20}},
        "nats": {"url": NATS_URL}
    });
    let r = parse(&render(Some(&values)));
    let worker = r.worker.expect("the worker Deployment");
    assert_eq!(
        worker.spec.as_ref().unwrap().replicas,
        None,
        "the HPA owns the replica count"
    );
    let hpa = r.hpa.expect("the HorizontalPodAutoscaler");
    let spec = hpa.spec.unwrap();
    assert_eq!(
        spec.scale_target_ref.api_version.as_deref(),
        Some("apps/v1")
    );
    assert_eq!(spec.scale_target_ref.kind, "Deployment");
    assert_eq!(Some(spec.scale_target_ref.name), worker.metadata.name);
    assert_eq!(spec.min_replicas, Some(1));
    assert_eq!(spec.max_replicas, 20);
    let metrics = spec.metrics.unwrap();
    assert_eq!(metrics.len(), 1, "CPU only unless queueDepth is enabled");
    let cpu = metrics[0].resource.as_ref().unwrap();
    assert_eq!(metrics[0].type_, "Resource");
    assert_eq!(cpu.name, "cpu");
    assert_eq!(cpu.target.type_, "Utilization");
    assert_eq!(cpu.target.average_utilization, Some(70));

    let values = json!({
        "worker": {"enabled": true,
                   "autoscaling": {"enabled": true, "queueDepth": {"enabled": true}}},
        "nats": {"url": NATS_URL}
    });
    let metrics = parse(&render(Some(&values)))
        .hpa
        .unwrap()
        .spec
        .unwrap()
        .metrics
        .unwrap();
    assert_eq!(metrics.len(), 2);
    let external = metrics
        .iter()
        .find(|m| m.type_ == "External")
        .expect("the queue-depth metric");
    let external = external.external.as_ref().unwrap();
    assert_eq!(external.metric.name, "scanplane_nats_queue_depth");
    assert_eq!(external.target.type_, "AverageValue");
    assert_eq!(
        external.target.average_value.as_ref().map(|q| q.0.as_str()),
        Some("5")
    );

    // Autoscaling without workers renders nothing.
    let values = json!({"worker": {"autoscaling": {"enabled": true}}});
    let r = parse(&render(Some(&values)));
    assert!(r.worker.is_none() && r.hpa.is_none());
}

#[test]
fn executor_nats_sets_the_server_env_and_credentials() {
    let values = json!({"executor": "nats", "nats": {"url": NATS_URL}});
    let r = parse(&render(Some(&values)));
    let server = env(&r.deployment);
    assert_eq!(server["SCANPLANE_EXECUTOR"], "nats");
    assert_eq!(server["SCANPLANE_NATS_URL"], NATS_URL);
    assert_eq!(server["SCANPLANE_NATS_STREAM"], "SCANPLANE_UNITS");
    for k in [
        "SCANPLANE_NATS_TOKEN",
        "SCANPLANE_NATS_USER",
        "SCANPLANE_NATS_PASSWORD",
        "SCANPLANE_NATS_CREDS",
    ] {
        assert!(!server.contains_key(k), "{k} without nats.existingSecret");
    }
    // The Kubernetes executor's volumes only: no creds mount.
    let volumes = pod(&r.deployment).volumes.as_ref().unwrap();
    assert!(volumes.iter().all(|v| v.secret.is_none()));
    assert!(r.worker.is_none(), "workers are enabled on their own");

    // Credentials from a Secret of the user's, on the server and the workers alike.
    let values = json!({
        "executor": "nats",
        "nats": {"url": NATS_URL, "existingSecret": "nats-auth", "credsFile": true,
                 "stream": "SCANS"},
        "worker": {"enabled": true}
    });
    let r = parse(&render(Some(&values)));
    let worker = r.worker.expect("the worker Deployment");
    for d in [&r.deployment, &worker] {
        let env = env(d);
        assert_eq!(env["SCANPLANE_NATS_URL"], NATS_URL);
        assert_eq!(env["SCANPLANE_NATS_STREAM"], "SCANS");
        assert_eq!(env["SCANPLANE_NATS_TOKEN"], "secret:nats-auth/token");
        assert_eq!(env["SCANPLANE_NATS_USER"], "secret:nats-auth/user");
        assert_eq!(env["SCANPLANE_NATS_PASSWORD"], "secret:nats-auth/password");
        for k in [
            "SCANPLANE_NATS_TOKEN",
            "SCANPLANE_NATS_USER",
            "SCANPLANE_NATS_PASSWORD",
        ] {
            // Whichever keys the Secret lacks stay unset.
            assert_eq!(optional_secret(d, k), Some(true), "{k}");
        }
        assert_eq!(
            env["SCANPLANE_NATS_CREDS"],
            "/etc/scanplane/nats/nats.creds"
        );
        let pod = pod(d);
        let mount = pod.containers[0]
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .find(|m| m.mount_path == "/etc/scanplane/nats")
            .expect("the creds mount");
        assert_eq!(mount.read_only, Some(true));
        let volume = pod
            .volumes
            .as_ref()
            .unwrap()
            .iter()
            .find(|v| v.name == mount.name)
            .unwrap();
        let secret = volume.secret.as_ref().unwrap();
        assert_eq!(secret.secret_name.as_deref(), Some("nats-auth"));
        let items = secret.items.as_ref().unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(
            (items[0].key.as_str(), items[0].path.as_str()),
            ("nats.creds", "nats.creds")
        );
    }
}

#[test]
fn nats_settings_the_chart_cannot_use_fail_the_render() {
    // Without nats.url, for the server's executor and for the workers alike.
    for values in [
        json!({"executor": "nats"}),
        json!({"worker": {"enabled": true}}),
    ] {
        let msg = render_error(&values);
        assert!(msg.contains("nats.url"), "{values}: {msg}");
    }
    let msg =
        render_error(&json!({"executor": "nats", "nats": {"url": NATS_URL, "credsFile": true}}));
    assert!(msg.contains("nats.existingSecret"), "{msg}");
    let msg = render_error(&json!({"executor": "ssh"}));
    assert!(msg.contains("executor"), "{msg}");
}

/// The operator's documents of `kind`, as `(namespace, name)` (namespace `None`: the
/// release's).
fn operator_objects(r: &Rendered, kind: &str) -> Vec<(Option<String>, String)> {
    let mut v: Vec<_> = r
        .operator
        .iter()
        .filter(|d| d["kind"] == kind)
        .map(|d| {
            (
                d["metadata"]["namespace"].as_str().map(String::from),
                d["metadata"]["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

/// `(apiGroup, resource, verb)` triples of a Role or ClusterRole document.
fn grants(doc: &Value) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for rule in doc["rules"].as_array().unwrap() {
        for g in rule["apiGroups"].as_array().unwrap() {
            for res in rule["resources"].as_array().unwrap() {
                for verb in rule["verbs"].as_array().unwrap() {
                    out.insert((
                        g.as_str().unwrap().into(),
                        res.as_str().unwrap().into(),
                        verb.as_str().unwrap().into(),
                    ));
                }
            }
        }
    }
    out
}

#[test]
fn the_default_render_has_no_operator() {
    let r = parse(&render(None));
    assert!(r.operator.is_empty());
    let env = env(&r.deployment);
    assert!(!env.contains_key("SCANPLANE_OPERATOR"), "{env:?}");
}

#[test]
fn the_operator_is_namespace_scoped_by_default() {
    let r = parse(&render(Some(
        &json!({"operator": {"enabled": true, "namespaces": ["team-a", NS]}}),
    )));
    let env = env(&r.deployment);
    assert_eq!(env["SCANPLANE_OPERATOR"], "true");
    assert_eq!(env["SCANPLANE_OPERATOR_NAMESPACES"], format!("team-a,{NS}"));
    assert_eq!(env["POD_NAMESPACE"], "field:metadata.namespace");
    assert!(!env.contains_key("SCANPLANE_OPERATOR_ALL_NAMESPACES"));
    assert!(
        operator_objects(&r, "ClusterRole").is_empty(),
        "nothing cluster-wide"
    );
    assert!(operator_objects(&r, "ClusterRoleBinding").is_empty());
    let roles = operator_objects(&r, "Role");
    assert_eq!(
        roles,
        [
            (None, "demo-scanplane-operator".to_string()),
            (None, "demo-scanplane-operator-lease".to_string()),
            (
                Some("team-a".to_string()),
                "demo-scanplane-operator".to_string()
            ),
        ]
    );
    assert_eq!(operator_objects(&r, "RoleBinding"), roles);
    for doc in r.operator.iter().filter(|d| d["kind"] == "RoleBinding") {
        assert_eq!(doc["subjects"][0]["name"], "demo-scanplane");
        assert_eq!(doc["subjects"][0]["namespace"], NS);
    }
    let lease = r
        .operator
        .iter()
        .find(|d| d["metadata"]["name"] == "demo-scanplane-operator-lease" && d["kind"] == "Role")
        .unwrap();
    let g = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(
        grants(lease),
        BTreeSet::from([
            g("coordination.k8s.io", "leases", "create"),
            g("coordination.k8s.io", "leases", "get"),
            g("coordination.k8s.io", "leases", "update"),
        ]),
        "the Lease is all the release's namespace adds"
    );
    let watched = r
        .operator
        .iter()
        .find(|d| d["metadata"]["namespace"] == "team-a" && d["kind"] == "Role")
        .unwrap();
    let watched = grants(watched);
    for needed in [
        g("networking.k8s.io", "ingresses", "watch"),
        g("networking.k8s.io", "ingresses/finalizers", "update"),
        g("networking.istio.io", "virtualservices", "watch"),
        g(
            "networking.istio.io",
            "virtualservices/finalizers",
            "update",
        ),
        g("scanplane.io", "scheduledscans", "patch"),
        g("scanplane.io", "scheduledscans", "delete"),
        g("scanplane.io", "scheduledscans/status", "patch"),
        g("events.k8s.io", "events", "create"),
    ] {
        assert!(watched.contains(&needed), "missing {needed:?}");
    }
    let secrets: Vec<_> = watched
        .iter()
        .filter(|(group, res, _)| group.is_empty() && res == "secrets")
        .map(|(_, _, verb)| verb.as_str())
        .collect();
    assert_eq!(
        secrets,
        ["get"],
        "the operator reads a Registry's Secret by name, and lists or writes none"
    );
}

#[test]
fn cluster_wide_is_an_explicit_opt_in_with_the_same_rules() {
    let namespaced = parse(&render(Some(&json!({"operator": {"enabled": true}}))));
    assert_eq!(
        env(&namespaced.deployment)["SCANPLANE_OPERATOR_NAMESPACES"],
        NS,
        "the release's namespace by default"
    );
    let r = parse(&render(Some(
        &json!({"operator": {"enabled": true, "clusterWide": true}}),
    )));
    let env = env(&r.deployment);
    assert_eq!(env["SCANPLANE_OPERATOR_ALL_NAMESPACES"], "true");
    assert!(!env.contains_key("SCANPLANE_OPERATOR_NAMESPACES"));
    assert_eq!(operator_objects(&r, "ClusterRole").len(), 1);
    assert_eq!(operator_objects(&r, "ClusterRoleBinding").len(), 1);
    assert_eq!(
        operator_objects(&r, "Role"),
        [(None, "demo-scanplane-operator-lease".to_string())],
        "only the Lease stays namespaced"
    );
    let cluster = r
        .operator
        .iter()
        .find(|d| d["kind"] == "ClusterRole")
        .unwrap();
    let role = namespaced
        .operator
        .iter()
        .find(|d| d["kind"] == "Role" && d["metadata"]["name"] == "demo-scanplane-operator")
        .unwrap();
    assert_eq!(
        grants(cluster),
        grants(role),
        "nothing more than namespaced"
    );
    let msg = render_error(
        &json!({"operator": {"enabled": true, "clusterWide": true, "namespaces": ["a"]}}),
    );
    assert!(msg.contains("operator.namespaces"), "{msg}");
}
