//! What a `Registry` resource declares: scanplane's registry (`/api/v1/registries`) under
//! the resource's UID in its tenant, its credentials read from a Secret of its namespace,
//! and the status that reports it. Pure: the controller reads the Secret and applies this.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use scanplane_protocol::registry::{
    CatalogKind, DeclaredCadence, DeclaredRegistry, MatchConditionSpec, MatchOperatorSpec,
    PlatformSpec, RegistryAuth, RegistrySpec as StoredSpec, RepositorySpec,
};

use crate::crd::{Cadence, Registry, RegistryStatus};
use crate::scheduled::TenantMapping;
use crate::status::condition;

/// The finalizer that deletes the registry (its schedules, images, discoveries) first.
pub const FINALIZER: &str = "scanplane.io/registry";
pub const READY: &str = "Ready";

/// The registry `obj` declares with `auth` (read from its Secret), or what is wrong.
pub fn declared(
    obj: &Registry,
    auth: Option<RegistryAuth>,
    tenants: TenantMapping,
) -> Result<DeclaredRegistry, String> {
    let id = obj
        .uid()
        .ok_or_else(|| "metadata.uid: missing (not read from the API server)".to_string())?;
    let namespace = obj
        .namespace()
        .ok_or_else(|| "metadata.namespace: missing".to_string())?;
    let tenant = tenants.tenant_of(obj)?;
    let catalog = match obj.spec.catalog.as_deref() {
        None | Some("oci") => CatalogKind::Oci,
        Some("none") => CatalogKind::None,
        Some(other) => {
            return Err(format!(
                "spec.catalog: {other:?} is not a catalog kind; expected oci or none"
            ))
        }
    };
    let mut repositories = Vec::with_capacity(obj.spec.repositories.len());
    for (i, r) in obj.spec.repositories.iter().enumerate() {
        let match_operator = match r.match_operator.as_deref() {
            None | Some("and") => MatchOperatorSpec::And,
            Some("or") => MatchOperatorSpec::Or,
            Some(other) => {
                return Err(format!(
                    "spec.repositories[{i}].matchOperator: {other:?}; expected and or or"
                ))
            }
        };
        repositories.push(RepositorySpec {
            name: r.name.clone(),
            match_conditions: r
                .match_conditions
                .iter()
                .map(|c| MatchConditionSpec {
                    name: c.name.clone(),
                    expression: c.expression.clone(),
                })
                .collect(),
            match_operator,
        });
    }
    if obj.spec.scan.is_some() {
        return Err("spec.scan: scheduled image scans are not available yet; discovery queues an SBOM for every new digest".into());
    }
    Ok(DeclaredRegistry {
        id,
        tenant,
        spec: StoredSpec {
            // Unique in the tenant like every registry name, and says where it came from.
            name: format!("k8s:{namespace}/{}", obj.name_any()),
            url: obj.spec.url.clone(),
            catalog,
            insecure: obj.spec.insecure,
            ca_bundle: obj.spec.ca_bundle.clone(),
            repositories,
            platforms: obj
                .spec
                .platforms
                .iter()
                .map(|p| PlatformSpec {
                    os: p.os.clone(),
                    arch: p.arch.clone(),
                    variant: p.variant.clone(),
                })
                .collect(),
        },
        auth,
        discovery: obj.spec.discovery.as_ref().map(cadence),
    })
}

fn cadence(c: &Cadence) -> DeclaredCadence {
    DeclaredCadence {
        cron_exp: c.cron_exp.clone(),
        timezone: c.timezone.clone(),
        every: c.every.clone(),
        jitter: c.jitter.clone(),
    }
}

/// Registry credentials from a Secret: `kubernetes.io/dockerconfigjson` (its
/// `.dockerconfigjson`), or `username` and `password` keys.
pub fn auth_from_secret(secret: &Secret) -> Result<RegistryAuth, String> {
    let name = secret.name_any();
    let empty = BTreeMap::new();
    let data = secret.data.as_ref().unwrap_or(&empty);
    let text = |key: &str| -> Result<Option<String>, String> {
        data.get(key)
            .map(|b| {
                String::from_utf8(b.0.clone()).map_err(|_| {
                    format!("spec.authSecretRef: key {key} of Secret {name} is not UTF-8")
                })
            })
            .transpose()
    };
    if let Some(config_json) = text(".dockerconfigjson")? {
        return Ok(RegistryAuth::DockerConfig { config_json });
    }
    match (text("username")?, text("password")?) {
        (Some(username), Some(password)) => Ok(RegistryAuth::Basic { username, password }),
        _ => Err(format!(
            "spec.authSecretRef: Secret {name} has neither .dockerconfigjson nor username and password"
        )),
    }
}

/// What the last apply came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied { id: String },
    Invalid(String),
}

/// The status after `outcome`; unchanged inputs give an unchanged status.
pub fn next_status(
    obj: &Registry,
    outcome: &Outcome,
    now: DateTime<Utc>,
    api_url: Option<&str>,
) -> RegistryStatus {
    let current = obj.status.clone().unwrap_or_default();
    let generation = obj.metadata.generation;
    let (status, reason, message) = match outcome {
        Outcome::Applied { .. } => ("True", "Stored", "registry stored".to_string()),
        Outcome::Invalid(p) => ("False", "InvalidSpec", p.clone()),
    };
    let mut next = RegistryStatus {
        conditions: vec![condition(
            &current.conditions,
            READY,
            status,
            reason,
            message,
            generation,
            now,
        )],
        observed_generation: generation,
        ..current
    };
    match outcome {
        Outcome::Applied { id } => {
            next.registry_id = Some(id.clone());
            next.last_error = None;
            next.url =
                api_url.map(|b| format!("{}/api/v1/registries/{id}", b.trim_end_matches('/')));
        }
        Outcome::Invalid(p) => next.last_error = Some(p.clone()),
    }
    next
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use k8s_openapi::ByteString;
    use serde_json::json;

    fn registry(spec: serde_json::Value) -> Registry {
        serde_json::from_value(json!({
            "apiVersion": "scanplane.io/v1alpha1", "kind": "Registry",
            "metadata": {"name": "ghcr", "namespace": "team-a", "uid": "reg-uid", "generation": 1},
            "spec": spec
        }))
        .unwrap()
    }

    #[test]
    fn a_registry_resource_declares_the_api_registry() {
        let r = registry(json!({
            "url": "https://ghcr.io", "catalog": "none",
            "repositories": [{"name": "org/app", "matchConditions": [{"name": "prod", "expression": "tag.endsWith('-prod')"}], "matchOperator": "or"}],
            "platforms": [{"os": "linux", "arch": "amd64"}],
            "discovery": {"every": "6h", "jitter": "5m"}
        }));
        let auth = RegistryAuth::Basic {
            username: "u".into(),
            password: "p".into(),
        };
        let d = declared(&r, Some(auth.clone()), TenantMapping::default()).unwrap();
        assert_eq!(d.id, "reg-uid");
        assert_eq!(d.tenant, "team-a");
        assert_eq!(d.spec.name, "k8s:team-a/ghcr");
        assert_eq!(d.spec.catalog, CatalogKind::None);
        assert_eq!(d.spec.repositories[0].match_operator, MatchOperatorSpec::Or);
        assert_eq!(
            d.spec.repositories[0].match_conditions[0].expression,
            "tag.endsWith('-prod')"
        );
        assert_eq!(d.spec.platforms[0].arch, "amd64");
        assert_eq!(d.auth, Some(auth));
        assert_eq!(d.discovery.unwrap().every.as_deref(), Some("6h"));
    }

    #[test]
    fn bad_enums_and_scan_schedules_name_the_field() {
        let e = declared(
            &registry(json!({"url": "https://x", "catalog": "ldap"})),
            None,
            TenantMapping::default(),
        )
        .unwrap_err();
        assert!(e.starts_with("spec.catalog"), "{e}");
        let e = declared(&registry(json!({"url": "https://x", "repositories": [{"name": "a", "matchOperator": "xor"}]})), None, TenantMapping::default())
        .unwrap_err();
        assert!(e.starts_with("spec.repositories[0].matchOperator"), "{e}");
        let e = declared(
            &registry(json!({"url": "https://x", "scan": {"every": "1d"}})),
            None,
            TenantMapping::default(),
        )
        .unwrap_err();
        assert!(e.starts_with("spec.scan"), "{e}");
    }

    fn secret(data: serde_json::Value) -> Secret {
        let mut s: Secret = serde_json::from_value(json!({"metadata": {"name": "creds"}})).unwrap();
        s.data = Some(
            data.as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        ByteString(v.as_str().unwrap().as_bytes().to_vec()),
                    )
                })
                .collect(),
        );
        s
    }

    #[test]
    fn credentials_come_from_a_docker_config_or_a_username_and_password() {
        assert_eq!(
            auth_from_secret(&secret(json!({".dockerconfigjson": "{\"auths\":{}}"}))).unwrap(),
            RegistryAuth::DockerConfig {
                config_json: "{\"auths\":{}}".into()
            }
        );
        assert_eq!(
            auth_from_secret(&secret(json!({"username": "bot", "password": "s3cret"}))).unwrap(),
            RegistryAuth::Basic {
                username: "bot".into(),
                password: "s3cret".into()
            }
        );
        let e = auth_from_secret(&secret(json!({"token": "x"}))).unwrap_err();
        assert!(e.contains("Secret creds has neither"), "{e}");
    }

    #[test]
    fn status_names_the_registry_and_survives_resyncs() {
        let mut r = registry(json!({"url": "https://x"}));
        let t = Utc::now();
        let s = next_status(
            &r,
            &Outcome::Applied {
                id: "reg-uid".into(),
            },
            t,
            Some("https://sp/"),
        );
        assert_eq!(s.registry_id.as_deref(), Some("reg-uid"));
        assert_eq!(
            s.url.as_deref(),
            Some("https://sp/api/v1/registries/reg-uid")
        );
        r.status = Some(s.clone());
        assert_eq!(
            next_status(
                &r,
                &Outcome::Applied {
                    id: "reg-uid".into()
                },
                t + chrono::TimeDelta::hours(1),
                Some("https://sp/")
            ),
            s
        );
        let bad = next_status(&r, &Outcome::Invalid("spec.url: no scheme".into()), t, None);
        assert_eq!(bad.conditions[0].status, "False");
        assert_eq!(bad.last_error.as_deref(), Some("spec.url: no scheme"));
    }
}
