//! The pure builder of one scan attempt's Job and the Secret holding its report token.
//!
//! The Secret is created after the Job, carrying an ownerReference to it (see
//! [`secret_owned_by`]): a token then never exists without the Job that uses it, and the
//! garbage collector deletes it with the Job (TTL, cancel or cleanup), so no Secret can be
//! orphaned by a crash between the two calls. The pod may start before the Secret exists;
//! the kubelet retries a missing `secretKeyRef` (`CreateContainerConfigError`) until it
//! appears, so the only cost is a few seconds in the rare race.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EnvVar, EnvVarSource, PodSecurityContext, PodSpec, PodTemplateSpec,
    ResourceRequirements, SeccompProfile, Secret, SecretKeySelector, SecurityContext,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use scanplane_executor::{env, job_env, LaunchSpec};

use crate::config::KubernetesConfig;

/// Label keys of every scanner Job and pod: Jobs are labelled with the scan run id (and
/// scanner, tenant, trigger) so that logs and pods can be collected per run.
pub mod labels {
    pub const SCAN_RUN_ID: &str = "scanplane.io/scan-run-id";
    pub const SCANNER: &str = "scanplane.io/scanner";
    pub const TENANT: &str = "scanplane.io/tenant";
    pub const SCHEDULE: &str = "scanplane.io/schedule";
    pub const TRIGGER: &str = "scanplane.io/trigger";
    pub const ATTEMPT: &str = "scanplane.io/attempt";
    pub const NAME: &str = "app.kubernetes.io/name";
    pub const COMPONENT: &str = "app.kubernetes.io/component";
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    pub const INSTANCE: &str = "app.kubernetes.io/instance";
}

/// Annotation keys: the unabridged values labels cannot hold.
pub mod annotations {
    /// The exact scan id (its label is sanitized and may be cut).
    pub const SCAN_RUN_ID: &str = "scanplane.io/scan-run-id";
    /// The targets as a JSON array, cut to [`super::TARGETS_ANNOTATION_BUDGET`] bytes.
    pub const TARGETS: &str = "scanplane.io/targets";
    /// How many targets the scan has, since the targets annotation may be cut.
    pub const TARGET_COUNT: &str = "scanplane.io/target-count";
    pub const SCHEDULE_ID: &str = "scanplane.io/schedule-id";
}

/// The scanner container's name.
pub const CONTAINER_NAME: &str = "scanner";
/// The key of the report token inside the per-scan Secret.
pub const TOKEN_KEY: &str = "report-token";
/// The key of the Secret holding a custom scanner's definition.
pub const DEFINITION_KEY: &str = "scanner-definition";
/// The uid and gid scanner pods run as (never root), matching the Containerfile's user.
pub const SCANNER_UID: i64 = 65532;
/// The targets annotation stays far below the 256 KiB limit on all annotations together.
pub const TARGETS_ANNOTATION_BUDGET: usize = 8 * 1024;

/// The label selector of every Job and pod this installation manages.
pub fn selector(cfg: &KubernetesConfig) -> String {
    format!(
        "{}=scanplane,{}=scanner,{}={}",
        labels::MANAGED_BY,
        labels::COMPONENT,
        labels::INSTANCE,
        label_value(&cfg.instance)
    )
}

/// The Job name of one attempt: `scan-<id>-<attempt>`, a valid DNS-1123 label. Ids that
/// are not already short lowercase DNS labels are cut and given a hash of the full id, so
/// two scans never share a name and the same attempt always gets the same one.
pub fn job_name(scan_id: &str, attempt: u32) -> String {
    let clean = dns_label_part(scan_id);
    let id_part = if clean == scan_id && clean.len() <= 40 {
        clean
    } else {
        let mut cut: String = clean.chars().take(24).collect();
        while cut.ends_with('-') {
            cut.pop();
        }
        let hash = format!("{:016x}", fnv1a(scan_id.as_bytes()));
        if cut.is_empty() {
            hash[..12].to_string()
        } else {
            format!("{cut}-{}", &hash[..12])
        }
    };
    format!("scan-{id_part}-{attempt}")
}

/// The Secret holding one attempt's report token.
pub fn secret_name(job_name: &str) -> String {
    format!("{job_name}-token")
}

/// Builds the Job of one attempt and its token Secret (without the ownerReference, which
/// needs the created Job's uid: see [`secret_owned_by`]).
pub fn build_job(spec: &LaunchSpec, cfg: &KubernetesConfig) -> (Job, Secret) {
    let name = job_name(&spec.scan_id, spec.attempt);
    let secret_name = secret_name(&name);
    let labels = job_labels(spec, cfg);
    let annotations = job_annotations(spec);

    let mut env: Vec<EnvVar> = job_env(spec)
        .into_iter()
        .map(|(name, value)| EnvVar {
            name,
            value: Some(value),
            value_from: None,
        })
        .collect();
    let from_secret = |var: &str, key: &str| EnvVar {
        name: var.into(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret_name.clone(),
                key: key.into(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
    };
    env.push(from_secret(env::REPORT_TOKEN, TOKEN_KEY));
    if spec.scanner_definition.is_some() {
        env.push(from_secret(env::SCANNER_DEFINITION, DEFINITION_KEY));
    }

    let container = Container {
        name: CONTAINER_NAME.into(),
        image: Some(
            spec.image
                .clone()
                .filter(|i| !i.trim().is_empty())
                .unwrap_or_else(|| cfg.scanner_image.clone()),
        ),
        args: Some(vec!["job".into()]),
        env: Some(env),
        resources: Some(resources(cfg)),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(SCANNER_UID),
            run_as_group: Some(SCANNER_UID),
            allow_privilege_escalation: Some(false),
            // Scanners write temporary files; the root filesystem stays read-only.
            read_only_root_filesystem: Some(false),
            capabilities: Some(Capabilities {
                add: None,
                drop: Some(vec!["ALL".into()]),
            }),
            seccomp_profile: Some(runtime_default()),
            ..SecurityContext::default()
        }),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Container::default()
    };

    let pod_spec = PodSpec {
        restart_policy: Some("Never".into()),
        service_account_name: Some(cfg.service_account.clone()).filter(|s| !s.is_empty()),
        // Scanner pods never talk to the API server: they report over HTTP with their token.
        automount_service_account_token: Some(false),
        node_selector: Some(cfg.node_selector.clone()).filter(|s| !s.is_empty()),
        tolerations: Some(cfg.tolerations.clone()).filter(|t| !t.is_empty()),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(SCANNER_UID),
            run_as_group: Some(SCANNER_UID),
            fs_group: Some(SCANNER_UID),
            seccomp_profile: Some(runtime_default()),
            ..PodSecurityContext::default()
        }),
        containers: vec![container],
        ..PodSpec::default()
    };

    let job = Job {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(cfg.namespace.clone()),
            labels: Some(labels.clone()),
            annotations: Some(annotations.clone()),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(cfg.backoff_limit),
            active_deadline_seconds: Some(deadline_seconds(spec)),
            ttl_seconds_after_finished: Some(cfg.ttl_after_finished),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels.clone()),
                    annotations: Some(annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod_spec),
            },
            ..JobSpec::default()
        }),
        status: None,
    };

    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(secret_name),
            namespace: Some(cfg.namespace.clone()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        immutable: Some(true),
        string_data: Some(
            [(TOKEN_KEY.to_string(), spec.report_token.clone())]
                .into_iter()
                .chain(
                    spec.scanner_definition
                        .clone()
                        .map(|d| (DEFINITION_KEY.to_string(), d)),
                )
                .collect(),
        ),
        ..Secret::default()
    };
    (job, secret)
}

/// The Secret made a dependent of the created Job, so the garbage collector removes it with
/// the Job. `blockOwnerDeletion` stays unset: setting it needs `update` on `jobs/finalizers`,
/// which the executor's Role deliberately lacks.
pub fn secret_owned_by(mut secret: Secret, job_name: &str, job_uid: &str) -> Secret {
    secret.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        name: job_name.into(),
        uid: job_uid.into(),
        controller: Some(false),
        block_owner_deletion: None,
    }]);
    secret
}

/// The scan id a Job was created for: the exact annotation, else the label.
pub fn scan_id_of(meta: &ObjectMeta) -> Option<String> {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(annotations::SCAN_RUN_ID))
        .or_else(|| {
            meta.labels
                .as_ref()
                .and_then(|l| l.get(labels::SCAN_RUN_ID))
        })
        .cloned()
}

fn job_labels(spec: &LaunchSpec, cfg: &KubernetesConfig) -> BTreeMap<String, String> {
    let mut l = BTreeMap::new();
    l.insert(labels::SCAN_RUN_ID.into(), label_value(&spec.scan_id));
    l.insert(labels::SCANNER.into(), label_value(&spec.scanner));
    l.insert(labels::TENANT.into(), label_value(&spec.tenant));
    if let Some(schedule) = &spec.schedule_id {
        l.insert(labels::SCHEDULE.into(), label_value(schedule));
    }
    l.insert(labels::TRIGGER.into(), spec.trigger.as_str().into());
    l.insert(labels::ATTEMPT.into(), spec.attempt.to_string());
    l.insert(labels::NAME.into(), "scanplane".into());
    l.insert(labels::COMPONENT.into(), "scanner".into());
    l.insert(labels::MANAGED_BY.into(), "scanplane".into());
    l.insert(labels::INSTANCE.into(), label_value(&cfg.instance));
    l
}

fn job_annotations(spec: &LaunchSpec) -> BTreeMap<String, String> {
    let mut a = BTreeMap::new();
    a.insert(annotations::SCAN_RUN_ID.into(), spec.scan_id.clone());
    if let Some(schedule) = &spec.schedule_id {
        a.insert(annotations::SCHEDULE_ID.into(), schedule.clone());
    }
    a.insert(
        annotations::TARGET_COUNT.into(),
        spec.targets.len().to_string(),
    );
    a.insert(
        annotations::TARGETS.into(),
        targets_annotation(&spec.targets),
    );
    a
}

/// The targets as a JSON array of as many whole targets as fit the budget.
fn targets_annotation(targets: &[String]) -> String {
    let mut kept: Vec<&str> = Vec::new();
    let mut size = 2;
    for t in targets {
        // Each target costs its JSON-escaped length plus a comma.
        let cost = serde_json::Value::from(t.as_str()).to_string().len() + 1;
        if size + cost > TARGETS_ANNOTATION_BUDGET {
            break;
        }
        size += cost;
        kept.push(t);
    }
    serde_json::Value::from(kept).to_string()
}

fn resources(cfg: &KubernetesConfig) -> ResourceRequirements {
    let r = &cfg.resources;
    let pair = |cpu: &Option<String>, memory: &Option<String>| {
        let mut m = BTreeMap::new();
        if let Some(c) = cpu {
            m.insert("cpu".to_string(), Quantity(c.clone()));
        }
        if let Some(mem) = memory {
            m.insert("memory".to_string(), Quantity(mem.clone()));
        }
        Some(m).filter(|m| !m.is_empty())
    };
    ResourceRequirements {
        requests: pair(&r.cpu_request, &r.memory_request),
        limits: pair(&r.cpu_limit, &r.memory_limit),
        ..ResourceRequirements::default()
    }
}

fn runtime_default() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".into(),
        localhost_profile: None,
    }
}

/// `activeDeadlineSeconds` must be positive; a sub-second timeout still gets one second.
fn deadline_seconds(spec: &LaunchSpec) -> i64 {
    i64::try_from(spec.timeout.as_secs())
        .unwrap_or(i64::MAX)
        .max(1)
}

/// A valid label value: at most 63 of `[A-Za-z0-9-_.]`, alphanumeric at both ends. Anything
/// else becomes `-` and the result is cut, because a Job with an invalid label is rejected.
pub fn label_value(raw: &str) -> String {
    let mapped: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    mapped
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

/// Whether `value` is already a valid label value.
pub fn is_valid_label_value(value: &str) -> bool {
    label_value(value) == value
}

/// Lowercase alphanumerics and `-`, with no leading, trailing or doubled dashes.
fn dns_label_part(raw: &str) -> String {
    let mut out = String::new();
    for c in raw.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// FNV-1a: a tiny stable hash, enough to keep cut names apart (not for security).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_dns1123_label(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !s.starts_with('-')
            && !s.ends_with('-')
    }

    #[test]
    fn job_names_are_dns_labels_and_deterministic() {
        let uuid = "0192f1c4-7d2a-7b3e-9c4d-5e6f7a8b9c0d";
        assert_eq!(
            job_name(uuid, 1),
            "scan-0192f1c4-7d2a-7b3e-9c4d-5e6f7a8b9c0d-1"
        );
        for id in [
            uuid,
            "UPPER_case id/with:junk",
            "---",
            "",
            &"x".repeat(300),
            "a.b.c",
        ] {
            let n = job_name(id, u32::MAX);
            assert!(is_dns1123_label(&n), "{n:?} from {id:?}");
            assert!(is_dns1123_label(&secret_name(&n)), "secret of {n:?}");
            assert_eq!(n, job_name(id, u32::MAX));
        }
        // Ids that sanitize alike still get different names.
        assert_ne!(job_name("A_b", 1), job_name("a-b", 1));
        assert_ne!(job_name("A_b", 1), job_name("A_b", 2));
    }

    #[test]
    fn label_values_are_sanitized() {
        assert_eq!(label_value("on_demand"), "on_demand");
        assert_eq!(label_value("tenant with spaces!"), "tenant-with-spaces");
        assert_eq!(label_value(&"a".repeat(100)).len(), 63);
        assert_eq!(label_value("-x-"), "x");
        assert!(is_valid_label_value(""));
        assert!(!is_valid_label_value("a b"));
    }

    #[test]
    fn targets_annotation_keeps_whole_targets_within_budget() {
        let many: Vec<String> = (0..10_000).map(|i| format!("10.0.{i}.1")).collect();
        let text = targets_annotation(&many);
        assert!(text.len() <= TARGETS_ANNOTATION_BUDGET);
        let parsed: Vec<String> = serde_json::from_str(&text).unwrap();
        assert!(!parsed.is_empty() && parsed.len() < many.len());
        assert_eq!(parsed[..], many[..parsed.len()]);
        assert_eq!(targets_annotation(&[]), "[]");
    }
}
