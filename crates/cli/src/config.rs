//! The configuration file (`--config FILE` / `SCANPLANE_CONFIG`, YAML): per-provider rate
//! limits, concurrency limits and custom scanners. Parsed here, at the boundary, into
//! domain types.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use scanplane_core::limits::DurationLimit;
use scanplane_core::ratelimit::RateLimitPolicy;
use serde::Deserialize;

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Per-provider token buckets, e.g. `aws: {scans: 5, per: 1m}`.
    #[serde(default)]
    pub rate_limits: HashMap<String, RateLimitEntry>,
    #[serde(default)]
    pub limits: LimitsEntry,
    /// Custom scanners (YAML key `scanners`), passed to the scanner registry.
    #[serde(default)]
    pub scanners: Vec<serde_yaml::Value>,
    /// OSV advisory feeds synced on a schedule.
    #[serde(default)]
    pub advisories: AdvisoriesEntry,
    /// The clusters scan execution policies may name, e.g.
    /// `production: {kubeconfig: /etc/scanplane/prod.kubeconfig, context: prod}` or
    /// `local: {in_cluster: true}`.
    #[serde(default)]
    pub clusters: std::collections::BTreeMap<String, ClusterEntry>,
    /// The Kubernetes operator's settings (`serve --operator`).
    #[serde(default)]
    pub operator: OperatorEntry,
}

/// `operator: {defaults: {schedule: "@every 12h", severity: "high,critical"}}`: what an
/// annotated Ingress or VirtualService gets for each key it does not annotate, written with
/// the annotation keys and values (`enabled`, `scanner`, `schedule`, `timeout`,
/// `rate-limit`, `severity`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorEntry {
    #[serde(default)]
    pub defaults: std::collections::BTreeMap<String, serde_yaml::Value>,
    /// Let the `scanplane.io/tenant` annotation map a resource to another tenant than its
    /// namespace. Off by default: whoever may annotate a resource could act as any tenant.
    #[serde(default)]
    pub tenant_annotation: bool,
}

impl OperatorEntry {
    /// The defaults, checked as annotations are; an error names `operator.defaults.<key>`.
    pub fn defaults(&self) -> Result<scanplane_core::annotations::AnnotationDefaults, String> {
        let mut text = std::collections::BTreeMap::new();
        for (key, value) in &self.defaults {
            let v = match value {
                serde_yaml::Value::String(s) => s.clone(),
                serde_yaml::Value::Bool(b) => b.to_string(),
                serde_yaml::Value::Number(n) => n.to_string(),
                _ => {
                    return Err(format!(
                        "operator.defaults.{key}: expected a string, number or boolean"
                    ))
                }
            };
            text.insert(key.clone(), v);
        }
        scanplane_core::annotations::defaults_from(&text).map_err(|errors| {
            errors
                .iter()
                .map(|e| format!("{}: {}", e.annotation, e.message))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }
}

/// How to reach one cluster.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterEntry {
    /// A kubeconfig file.
    pub kubeconfig: Option<PathBuf>,
    /// Its context (default: the file's current context).
    pub context: Option<String>,
    /// The cluster this server runs in (its service account).
    #[serde(default)]
    pub in_cluster: bool,
}

impl ClusterEntry {
    fn check(&self, name: &str) -> Result<(), String> {
        if name.is_empty() || name.len() > 63 {
            return Err(format!(
                "clusters: the name {name:?} must be 1-63 characters"
            ));
        }
        match (self.in_cluster, &self.kubeconfig) {
            (true, Some(_)) => Err(format!(
                "clusters.{name}: give either in_cluster: true or kubeconfig, not both"
            )),
            (false, None) => Err(format!(
                "clusters.{name}: needs kubeconfig (a path) or in_cluster: true"
            )),
            (true, None) if self.context.is_some() => Err(format!(
                "clusters.{name}: context applies only with kubeconfig"
            )),
            _ => Ok(()),
        }
    }
}

/// `advisories: {sources: [...], every: 6h}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdvisoriesEntry {
    /// URLs serving an OSV `all.zip`, local zips, or directories of `.json` records.
    #[serde(default)]
    pub sources: Vec<String>,
    /// How often each source is checked (default 6h).
    pub every: Option<String>,
}

/// The default period of an advisory feed check.
pub const DEFAULT_FEED_EVERY: std::time::Duration = std::time::Duration::from_secs(6 * 3600);
/// The shortest accepted period: a feed is a download, not a poll.
pub const MIN_FEED_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl AdvisoriesEntry {
    /// The check period, validated.
    pub fn every(&self) -> Result<std::time::Duration, String> {
        let Some(text) = &self.every else {
            return Ok(DEFAULT_FEED_EVERY);
        };
        let every = DurationLimit::Interval
            .parse(text)
            .map_err(|e| format!("advisories.every: {e}"))?;
        if every < MIN_FEED_EVERY {
            return Err(format!("advisories.every: {text}: at least 1s"));
        }
        Ok(every)
    }

    /// The sources, validated: each an http(s) URL or a path, none repeated. A feed is known
    /// by its URL with credentials masked (what is stored and shown), so two sources that
    /// differ only in credentials are one listed twice, and no message repeats a password.
    pub fn sources(&self) -> Result<Vec<String>, String> {
        let mut seen = std::collections::BTreeSet::new();
        let mut sources = Vec::with_capacity(self.sources.len());
        for (i, source) in self.sources.iter().enumerate() {
            let s = source.trim();
            let shown = scanplane_core::secret::mask(s);
            if s.is_empty() {
                return Err(format!("advisories.sources[{i}]: empty"));
            }
            if s.contains("://") && !(s.starts_with("http://") || s.starts_with("https://")) {
                return Err(format!(
                    "advisories.sources[{i}]: {shown}: expected an http(s) URL or a local path"
                ));
            }
            if !seen.insert(shown.to_string()) {
                return Err(format!("advisories.sources[{i}]: {shown} is listed twice"));
            }
            sources.push(s.to_string());
        }
        Ok(sources)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitEntry {
    pub scans: u32,
    pub per: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsEntry {
    pub per_tenant: Option<u32>,
    #[serde(default)]
    pub per_scanner: HashMap<String, u32>,
}

/// Why the configuration file was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Invalid { path: String, message: String },
}

impl ConfigFile {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        let file: ConfigFile = serde_yaml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        file.policies()
            .and_then(|_| file.clusters.iter().try_for_each(|(name, c)| c.check(name)))
            .and_then(|_| file.operator.defaults().map(|_| ()))
            .and_then(|_| file.advisories.every())
            .and_then(|_| file.advisories.sources())
            .map_err(|message| ConfigError::Invalid {
                path: shown,
                message,
            })?;
        Ok(file)
    }

    pub fn policies(&self) -> Result<Vec<RateLimitPolicy>, String> {
        let mut out: Vec<RateLimitPolicy> = self
            .rate_limits
            .iter()
            .map(|(provider, e)| {
                let per = DurationLimit::RatePeriod
                    .parse(&e.per)
                    .map_err(|err| format!("rate_limits.{provider}.per: {err}"))?;
                if e.scans == 0 || per.is_zero() {
                    return Err(format!(
                        "rate_limits.{provider}: scans and per must be greater than zero"
                    ));
                }
                Ok(RateLimitPolicy {
                    provider: provider.clone(),
                    count: e.scans,
                    per,
                })
            })
            .collect::<Result<_, _>>()?;
        out.sort_by(|a, b| a.provider.cmp(&b.provider));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clusters_name_a_kubeconfig_or_the_cluster_we_run_in() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scanplane.yaml");
        std::fs::write(
            &path,
            "clusters:\n  production: {kubeconfig: /etc/k/prod, context: prod}\n  local: {in_cluster: true}\n",
        )
        .unwrap();
        let file = ConfigFile::load(&path).unwrap();
        assert_eq!(
            file.clusters.keys().collect::<Vec<_>>(),
            ["local", "production"]
        );
        for (yaml, says) in [
            ("clusters: {a: {}}", "clusters.a: needs kubeconfig"),
            (
                "clusters: {a: {in_cluster: true, kubeconfig: /k}}",
                "not both",
            ),
            (
                "clusters: {a: {in_cluster: true, context: x}}",
                "context applies only with kubeconfig",
            ),
        ] {
            std::fs::write(&path, yaml).unwrap();
            let e = ConfigFile::load(&path).unwrap_err().to_string();
            assert!(e.contains(says), "{yaml}: {e}");
        }
        std::fs::write(&path, "clusters: {a: {kubeconfig: /k, namespace: x}}").unwrap();
        assert!(ConfigFile::load(&path).is_err(), "unknown keys are refused");
    }

    #[test]
    fn operator_defaults_are_checked_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scanplane.yaml");
        std::fs::write(
            &path,
            "operator:\n  defaults: {schedule: '@every 12h', rate-limit: 40, enabled: false}\n",
        )
        .unwrap();
        let d = ConfigFile::load(&path)
            .unwrap()
            .operator
            .defaults()
            .unwrap();
        assert_eq!(d.rate_limit, Some(40));
        assert!(!d.enabled);
        std::fs::write(&path, "operator:\n  defaults: {timeout: forever}\n").unwrap();
        let e = ConfigFile::load(&path).unwrap_err().to_string();
        assert!(e.contains("operator.defaults.timeout"), "{e}");
    }

    #[test]
    fn advisory_feeds_default_to_six_hours_and_refuse_bad_entries() {
        let file: ConfigFile =
            serde_yaml::from_str("advisories:\n  sources: [https://x/all.zip, /srv/osv]\n")
                .unwrap();
        assert_eq!(file.advisories.every().unwrap(), DEFAULT_FEED_EVERY);
        assert_eq!(file.advisories.sources().unwrap().len(), 2);
        let fast: ConfigFile = serde_yaml::from_str("advisories: {every: 90m}").unwrap();
        assert_eq!(fast.advisories.every().unwrap().as_secs(), 5400);
        for (yaml, named) in [
            ("advisories: {every: soon}", "advisories.every"),
            ("advisories: {every: 0s}", "advisories.every"),
            (
                "advisories: {sources: [ftp://x/all.zip]}",
                "advisories.sources[0]",
            ),
            ("advisories: {sources: ['']}", "advisories.sources[0]"),
            ("advisories: {sources: [/a, /a]}", "advisories.sources[1]"),
        ] {
            let file: ConfigFile = serde_yaml::from_str(yaml).unwrap();
            let err = file
                .advisories
                .every()
                .and_then(|_| file.advisories.sources())
                .unwrap_err();
            assert!(err.contains(named), "{yaml}: {err}");
        }
        assert!(serde_yaml::from_str::<ConfigFile>("advisories: {feeds: []}").is_err());
        let twice: ConfigFile = serde_yaml::from_str(
            "advisories: {sources: ['https://m:first@x/all.zip', 'https://m:second@x/all.zip']}",
        )
        .unwrap();
        let err = twice.advisories.sources().unwrap_err();
        assert!(err.contains("advisories.sources[1]"), "{err}");
        assert!(!err.contains("first") && !err.contains("second"), "{err}");
        let kept: ConfigFile =
            serde_yaml::from_str("advisories: {sources: ['https://m:pw@x/all.zip', /srv/osv]}")
                .unwrap();
        assert_eq!(
            kept.advisories.sources().unwrap(),
            ["https://m:pw@x/all.zip", "/srv/osv"],
            "the credentials are kept for the request, the order is the file's"
        );
    }

    #[test]
    fn parses_rate_limits() {
        let f: ConfigFile = serde_yaml::from_str(
            "rate_limits:\n  aws: {scans: 5, per: 1m}\nlimits:\n  per_tenant: 3\n",
        )
        .unwrap();
        let p = f.policies().unwrap();
        assert_eq!(p[0].provider, "aws");
        assert_eq!(p[0].count, 5);
        assert_eq!(p[0].per, std::time::Duration::from_secs(60));
        assert_eq!(f.limits.per_tenant, Some(3));
        let bad: ConfigFile =
            serde_yaml::from_str("rate_limits:\n  aws: {scans: 5, per: soon}\n").unwrap();
        assert!(bad.policies().unwrap_err().contains("rate_limits.aws.per"));
        let huge: ConfigFile =
            serde_yaml::from_str("rate_limits:\n  aws: {scans: 5, per: 400d}\n").unwrap();
        let err = huge.policies().unwrap_err();
        assert!(
            err.contains("rate_limits.aws.per") && err.contains("at most 366d"),
            "{err}"
        );
        assert!(
            serde_yaml::from_str::<ConfigFile>("rate_limit: {}\n").is_err(),
            "typos are rejected"
        );
    }
}
