//! The configuration file (`--config FILE` / `SCANPLANE_CONFIG`, YAML): per-provider rate
//! limits, concurrency limits and custom scanners. Parsed here, at the boundary, into
//! domain types.

use std::collections::HashMap;
use std::path::Path;

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
        file.policies().map_err(|message| ConfigError::Invalid {
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
