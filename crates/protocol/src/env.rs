//! Scanner mode is configured by env vars only, so one unit of work runs the same way as a
//! child process, in a Kubernetes Job or on a worker. [`UnitEnv`] is what those vars carry;
//! executors write it with [`UnitEnv::to_vars`], scanner mode reads it back with
//! [`UnitEnv::from_lookup`]. The report token travels separately ([`REPORT_TOKEN`]), each
//! executor delivering it its own private way (process env, a Secret), never in a spec
//! that others can read.

use std::time::Duration;

use scanplane_core::duration::{format_duration, parse_duration};

pub const SCAN_ID: &str = "SCANPLANE_SCAN_ID";
pub const SERVER_URL: &str = "SCANPLANE_SERVER_URL";
pub const REPORT_TOKEN: &str = "SCANPLANE_REPORT_TOKEN";
pub const SCANNER: &str = "SCANPLANE_SCANNER";
/// Newline-separated canonical targets (targets may contain commas).
pub const TARGETS: &str = "SCANPLANE_TARGETS";
/// Comma-separated cloud account ids, for scanners that scan accounts.
pub const ACCOUNT_IDS: &str = "ACCOUNT_IDS";
/// `true` or `false`: whether the scan also collects billing data.
pub const BILLING: &str = "BILLING";
/// Scanner options as JSON.
pub const OPTIONS: &str = "SCANPLANE_OPTIONS";
/// The scan's timeout, e.g. `30m`.
pub const TIMEOUT: &str = "SCANNER_TIMEOUT";
pub const ATTEMPT: &str = "SCANPLANE_ATTEMPT";
/// The definition of the custom scanner the unit runs, as JSON (the configuration file's
/// entry, resolved by `serve`): a unit of work never reads the server's configuration file,
/// which is not where it runs. Unset for built-in scanners. Like the report token it is
/// delivered privately (process env, a Secret): a definition's `env` may hold credentials.
pub const SCANNER_DEFINITION: &str = "SCANPLANE_SCANNER_DEFINITION";

/// Timeout scanner mode assumes when [`TIMEOUT`] is not set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// A scanner-mode env var that is missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}: {problem}")]
pub struct EnvError {
    pub var: &'static str,
    pub problem: String,
}

/// What a unit of work is told about the attempt it runs (all but the report token).
#[derive(Debug, Clone, PartialEq)]
pub struct UnitEnv {
    /// The `scan_run_id`.
    pub scan_id: String,
    pub attempt: u32,
    /// Base URL the job reports to, e.g. `http://127.0.0.1:8080`.
    pub server_url: String,
    pub scanner: String,
    /// Canonical target strings, accounts included as `account://ID`.
    pub targets: Vec<String>,
    pub billing: bool,
    /// Scanner options as JSON text.
    pub options: String,
    pub timeout: Duration,
}

impl UnitEnv {
    /// The env vars, in a fixed order (golden tests of Job specs rely on it).
    pub fn to_vars(&self) -> Vec<(String, String)> {
        let accounts: Vec<&str> = self
            .targets
            .iter()
            .filter_map(|t| t.strip_prefix("account://"))
            .collect();
        vec![
            (SCAN_ID.into(), self.scan_id.clone()),
            (SERVER_URL.into(), self.server_url.clone()),
            (SCANNER.into(), self.scanner.clone()),
            (TARGETS.into(), self.targets.join("\n")),
            (ACCOUNT_IDS.into(), accounts.join(",")),
            (BILLING.into(), self.billing.to_string()),
            (OPTIONS.into(), self.options.clone()),
            (TIMEOUT.into(), format_duration(self.timeout)),
            (ATTEMPT.into(), self.attempt.to_string()),
        ]
    }

    /// Reads the env back through a lookup (the process env in production). Unset optional
    /// vars take defaults: timeout [`DEFAULT_TIMEOUT`], options `{}`, billing false,
    /// attempt 1.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, EnvError> {
        let set = |var: &'static str| get(var).filter(|v| !v.is_empty());
        let need = |var: &'static str| {
            set(var).ok_or(EnvError {
                var,
                problem: "is not set".into(),
            })
        };
        let bad = |var: &'static str, problem: String| EnvError { var, problem };
        let timeout = match set(TIMEOUT) {
            Some(t) => parse_duration(&t).map_err(|e| bad(TIMEOUT, e.to_string()))?,
            None => DEFAULT_TIMEOUT,
        };
        let options = match set(OPTIONS) {
            Some(o) if !o.trim().is_empty() => {
                serde_json::from_str::<serde_json::Value>(&o)
                    .map_err(|e| bad(OPTIONS, e.to_string()))?;
                o
            }
            _ => "{}".to_string(),
        };
        let billing = match set(BILLING).as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => return Err(bad(BILLING, format!("{other:?} is not true or false"))),
        };
        let attempt = match set(ATTEMPT) {
            Some(a) => a
                .parse::<u32>()
                .map_err(|_| bad(ATTEMPT, format!("{a:?} is not a whole number")))?,
            None => 1,
        };
        let targets = get(TARGETS)
            .unwrap_or_default()
            .lines()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
        Ok(UnitEnv {
            scan_id: need(SCAN_ID)?,
            attempt,
            server_url: need(SERVER_URL)?.trim_end_matches('/').to_string(),
            scanner: need(SCANNER)?,
            targets,
            billing,
            options,
            timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> UnitEnv {
        UnitEnv {
            scan_id: "s".into(),
            attempt: 2,
            server_url: "http://127.0.0.1:8080".into(),
            scanner: "inventory".into(),
            targets: vec![
                "account://111".into(),
                "account://222".into(),
                "10.0.0.1".into(),
            ],
            billing: true,
            options: r#"{"a":1}"#.into(),
            timeout: Duration::from_secs(1800),
        }
    }

    #[test]
    fn vars_carry_accounts_billing_and_timeout() {
        let vars = sample().to_vars();
        let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get(ACCOUNT_IDS), Some("111,222"));
        assert_eq!(get(BILLING), Some("true"));
        assert_eq!(get(TIMEOUT), Some("30m"));
        assert_eq!(
            get(REPORT_TOKEN),
            None,
            "the token never travels with the env"
        );
    }

    #[test]
    fn what_is_written_reads_back() {
        let vars = sample().to_vars();
        let back =
            UnitEnv::from_lookup(|k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()));
        assert_eq!(back, Ok(sample()));
    }

    #[test]
    fn bad_values_name_the_variable() {
        let mut vars = sample().to_vars();
        vars.retain(|(k, _)| k != BILLING);
        vars.push((BILLING.into(), "yes".into()));
        let err =
            UnitEnv::from_lookup(|k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
                .unwrap_err();
        assert_eq!(err.var, BILLING);
        let missing = UnitEnv::from_lookup(|_| None).unwrap_err();
        assert_eq!(missing.var, SCAN_ID);
    }
}
