//! Vulnerability matching: which advisories affect which packages of an SBOM.
//!
//! A [`Matcher`] indexes advisories by the (ecosystem without release, package name) keys
//! they affect; [`Matcher::match_index`] looks each package of an SBOM's index up by the key
//! it is published under (`scanplane_osv::package_key`: OS packages by their source package
//! and distribution release) and evaluates the candidates with the OSV rules
//! (`scanplane_osv::affected_by`) in the ecosystem's own version order
//! ([`EcosystemOrder`], over `scanplane-versions`). Pure: what it reads is passed in.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use scanplane_osv::{affected_by, Advisory, PackageRef, Severity, VersionOrder};
use scanplane_sbom::{Index, Package};
use serde::Serialize;

/// Each ecosystem's version order, for the OSV ecosystem names advisories use.
#[derive(Debug, Clone, Copy, Default)]
pub struct EcosystemOrder;

impl VersionOrder for EcosystemOrder {
    fn compare(&self, ecosystem: &str, a: &str, b: &str) -> Result<Ordering, String> {
        let eco = scanplane_versions::Ecosystem::from_osv(ecosystem)
            .ok_or_else(|| format!("no version order is known for ecosystem {ecosystem:?}"))?;
        scanplane_versions::compare(eco, a, b).map_err(|e| e.to_string())
    }
}

/// One vulnerability of one package, as reports and the CLI show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VulnMatch {
    /// The advisory id (OSV, GHSA, an OS vendor's id).
    pub id: String,
    /// Other ids of the same vulnerability, CVE ids among them.
    pub aliases: Vec<String>,
    pub purl: Option<String>,
    /// The package as installed (binary package name for OS packages).
    pub package: String,
    pub installed_version: String,
    pub fixed_versions: Vec<String>,
    /// critical, high, medium, low or unknown.
    pub severity: String,
    pub cvss_score: Option<f64>,
    /// The OSV ecosystem and name it matched under (e.g. `Alpine:v3.19`, `openssl`).
    pub ecosystem: String,
    pub matched_name: String,
    /// The image layer that added the package, when the SBOM says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer_diff_id: Option<String>,
}

impl VulnMatch {
    /// The severity as ordered for thresholds (`--fail-on`).
    pub fn severity_rank(&self) -> Severity {
        Severity::from_label(&self.severity)
    }
}

/// The (ecosystem without release, name) key advisories are indexed by.
pub fn key_of(ecosystem: &str, name: &str) -> (String, String) {
    let base = ecosystem.split(':').next().unwrap_or(ecosystem);
    let name = if base == "PyPI" {
        scanplane_osv::normalize_pypi_name(name)
    } else {
        name.to_string()
    };
    (base.to_string(), name)
}

/// The advisory key a package is stored and looked up under (ecosystem without release,
/// name as the ecosystem normalises it), from what the SBOM says of it.
pub fn match_key(
    purl: &str,
    source_name: Option<&str>,
    distro: Option<&str>,
) -> Option<(String, String)> {
    let (ecosystem, name) = scanplane_osv::package_key(purl, source_name, distro)?;
    Some(key_of(&ecosystem, &name))
}

/// The OSV key of an indexed package and the version to compare: the source package's
/// version when it is matched by its source package and the SBOM knows that version.
pub fn package_ref(p: &Package) -> Option<PackageRef> {
    let purl = p.purl.as_deref()?;
    let (ecosystem, name) =
        scanplane_osv::package_key(purl, p.source_name.as_deref(), p.distro.as_deref())?;
    let by_source = p.source_name.as_deref() == Some(name.as_str()) && name != p.name;
    let version = if by_source {
        p.source_version.clone().or_else(|| p.version.clone())
    } else {
        p.version.clone()
    }?;
    Some(PackageRef {
        ecosystem,
        name,
        version,
    })
}

/// Advisories indexed for matching.
#[derive(Debug, Default)]
pub struct Matcher {
    advisories: Vec<Arc<Advisory>>,
    by_key: HashMap<(String, String), Vec<usize>>,
}

impl Matcher {
    pub fn new(advisories: Vec<Advisory>) -> Matcher {
        Matcher::shared(advisories.into_iter().map(Arc::new).collect())
    }

    /// A matcher over advisories parsed once and shared (a cache of them, across SBOMs).
    pub fn shared(advisories: Vec<Arc<Advisory>>) -> Matcher {
        let mut by_key: HashMap<(String, String), Vec<usize>> = HashMap::new();
        for (i, a) in advisories.iter().enumerate() {
            let mut keys: Vec<(String, String)> = a
                .affected
                .iter()
                .filter_map(|af| af.package.as_ref())
                .map(|p| key_of(&p.ecosystem, &p.name))
                .collect();
            keys.sort_unstable();
            keys.dedup();
            for k in keys {
                by_key.entry(k).or_default().push(i);
            }
        }
        Matcher { advisories, by_key }
    }

    /// How many advisories it holds.
    pub fn len(&self) -> usize {
        self.advisories.len()
    }

    pub fn is_empty(&self) -> bool {
        self.advisories.is_empty()
    }

    /// The (ecosystem, name) keys of every advisory, for a store to index by.
    pub fn keys(&self) -> impl Iterator<Item = &(String, String)> {
        self.by_key.keys()
    }

    /// Every match of every package of `index`, sorted by package then advisory id.
    pub fn match_index(&self, index: &Index, order: &dyn VersionOrder) -> Vec<VulnMatch> {
        self.match_packages(&index.packages, order)
    }

    /// Every match of every package of `packages`, sorted by package then advisory id.
    pub fn match_packages(&self, packages: &[Package], order: &dyn VersionOrder) -> Vec<VulnMatch> {
        let mut out = Vec::new();
        for p in packages {
            let Some(package) = package_ref(p) else {
                continue;
            };
            let key = key_of(&package.ecosystem, &package.name);
            let Some(candidates) = self.by_key.get(&key) else {
                continue;
            };
            for &i in candidates {
                let Some(m) = affected_by(&self.advisories[i], &package, order) else {
                    continue;
                };
                out.push(VulnMatch {
                    id: m.id,
                    aliases: m.aliases,
                    purl: p.purl.clone(),
                    package: p.name.clone(),
                    installed_version: package.version.clone(),
                    fixed_versions: m.fixed,
                    severity: m.severity.as_str().to_string(),
                    cvss_score: m.cvss_score,
                    ecosystem: package.ecosystem.clone(),
                    matched_name: package.name.clone(),
                    layer_diff_id: p.layer_diff_id.clone(),
                });
            }
        }
        out.sort_by(|a, b| {
            (a.purl.as_deref(), a.package.as_str(), a.id.as_str()).cmp(&(
                b.purl.as_deref(),
                b.package.as_str(),
                b.id.as_str(),
            ))
        });
        out.dedup_by(|a, b| a.id == b.id && a.purl == b.purl && a.package == b.package);
        out
    }
}
