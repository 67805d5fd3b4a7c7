//! Registries as the API stores them and as a discovery unit receives them.
//!
//! [`RegistrySpec`] is a registry's public definition: what `GET /api/v1/registries/:id`
//! shows and what the store keeps as the registry's `definition` JSON. [`RegistryAuth`] is
//! its credentials, stored apart and never returned by the API. A discovery unit reads both,
//! with the repositories to narrow to, from `GET /api/v1/scans/:id/registry-access` with its
//! report token: a [`RegistryUnit`].
//!
//! Discovery and SBOM generation run as scans of reserved scanner names
//! ([`DISCOVERY_SCANNER`], [`SBOM_SCANNER`]) that only registries and their pipeline create.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The scanner name of a registry's discovery runs. Target `registry://HOST[:PORT]`,
/// options [`DiscoveryOptions`].
pub const DISCOVERY_SCANNER: &str = "registry-discovery";
/// The scanner name of SBOM generations, one per digest. Target `image://HOST/REPO@DIGEST`.
pub const SBOM_SCANNER: &str = "sbom";
/// The rate-limit provider of every unit that talks to a registry: `registry/HOST[:PORT]`.
pub fn provider(host: &str) -> String {
    format!("registry/{host}")
}

/// The provider of a pipeline step (`registry/HOST`) from its target, `None` for any other
/// scanner: a scheduled discovery is rate-limited per registry like an on-demand one.
pub fn pipeline_provider(scanner: &str, targets: &[String]) -> Option<String> {
    if scanner != DISCOVERY_SCANNER && scanner != SBOM_SCANNER {
        return None;
    }
    let target = targets.first()?;
    let rest = target
        .strip_prefix("registry://")
        .or_else(|| target.strip_prefix("image://"))?;
    let host = rest.split('/').next().filter(|h| !h.is_empty())?;
    Some(provider(host))
}

/// How a registry lists its repositories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CatalogKind {
    /// `GET /v2/_catalog`, paged.
    #[default]
    Oci,
    /// No catalog (Docker Hub, GHCR): `repositories` lists them.
    None,
}

/// One condition over a tag: a CEL expression over `tag` returning bool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchConditionSpec {
    pub name: String,
    /// e.g. `tag.endsWith('-prod')`, `semver(tag, true).isGreaterThan(semver('v1.12.0', true))`.
    pub expression: String,
}

/// How a repository's conditions combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MatchOperatorSpec {
    #[default]
    And,
    Or,
}

/// A repository to discover, with the tags to keep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RepositorySpec {
    pub name: String,
    /// Empty: every tag.
    #[serde(default)]
    pub match_conditions: Vec<MatchConditionSpec>,
    #[serde(default)]
    pub match_operator: MatchOperatorSpec,
}

/// A platform to keep from image indexes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlatformSpec {
    pub os: String,
    pub arch: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// A registry's public definition, as stored and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RegistrySpec {
    pub name: String,
    /// `https://host[:port]`, or `http://host[:port]` for a plain-HTTP registry.
    pub url: String,
    #[serde(default)]
    pub catalog: CatalogKind,
    /// Skip TLS certificate verification.
    #[serde(default)]
    pub insecure: bool,
    /// PEM certificates trusted besides the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
    /// Empty: every repository of the catalog.
    #[serde(default)]
    pub repositories: Vec<RepositorySpec>,
    /// Empty: every platform of an index.
    #[serde(default)]
    pub platforms: Vec<PlatformSpec>,
}

/// A registry's credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum RegistryAuth {
    /// Basic auth, and the distribution spec's bearer token exchange with these credentials.
    Basic { username: String, password: String },
    /// A docker `config.json` document (its `auths` entry for the registry's host is used).
    DockerConfig { config_json: String },
}

/// A registry declared by a resource outside the API (the operator's `Registry`): stored
/// under the resource's id in the tenant, with the same validation as the API's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredRegistry {
    pub id: String,
    pub tenant: String,
    pub spec: RegistrySpec,
    pub auth: Option<RegistryAuth>,
    pub discovery: Option<DeclaredCadence>,
}

/// When a declared registry's discovery runs: `cron_exp` (+ `timezone`) or `every`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeclaredCadence {
    pub cron_exp: Option<String>,
    pub timezone: Option<String>,
    pub every: Option<String>,
    pub jitter: Option<String>,
}

/// The options of a discovery scan.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryOptions {
    pub registry_id: String,
    /// Discover only these repositories (a narrower run marks only their tags removed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repositories: Vec<String>,
}

/// What a discovery unit receives from `GET /api/v1/scans/:id/registry-access`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RegistryUnit {
    pub registry_id: String,
    pub spec: RegistrySpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<RegistryAuth>,
    /// Narrow the run to these repositories (empty: as the spec says).
    #[serde(default)]
    pub repositories: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_forms_parse_from_the_apis_json() {
        let basic: RegistryAuth =
            serde_json::from_str(r#"{"username":"u","password":"p"}"#).unwrap();
        assert_eq!(
            basic,
            RegistryAuth::Basic {
                username: "u".into(),
                password: "p".into()
            }
        );
        let docker: RegistryAuth = serde_json::from_str(r#"{"config_json":"{}"}"#).unwrap();
        assert_eq!(
            docker,
            RegistryAuth::DockerConfig {
                config_json: "{}".into()
            }
        );
        assert!(serde_json::from_str::<RegistryAuth>(r#"{"username":"u"}"#).is_err());
    }

    #[test]
    fn pipeline_steps_are_limited_per_registry_host() {
        let t = |s: &str| vec![s.to_string()];
        assert_eq!(
            pipeline_provider(DISCOVERY_SCANNER, &t("registry://127.0.0.1:5000")).as_deref(),
            Some("registry/127.0.0.1:5000")
        );
        assert_eq!(
            pipeline_provider(SBOM_SCANNER, &t("image://r.example/a/b@sha256:00")).as_deref(),
            Some("registry/r.example")
        );
        assert_eq!(pipeline_provider("trivy", &t("registry://r.example")), None);
        assert_eq!(pipeline_provider(DISCOVERY_SCANNER, &[]), None);
    }

    #[test]
    fn a_minimal_spec_takes_the_defaults() {
        let spec: RegistrySpec =
            serde_json::from_str(r#"{"name":"r","url":"https://r.example"}"#).unwrap();
        assert_eq!(spec.catalog, CatalogKind::Oci);
        assert!(!spec.insecure && spec.repositories.is_empty() && spec.platforms.is_empty());
        let repo: RepositorySpec = serde_json::from_str(r#"{"name":"app"}"#).unwrap();
        assert_eq!(repo.match_operator, MatchOperatorSpec::And);
    }
}
