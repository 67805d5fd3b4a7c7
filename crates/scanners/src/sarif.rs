//! A parser for SARIF 2.1.0 logs from any tool, used for custom scanners with
//! `output: sarif` and usable on its own.
//!
//! Each `runs[].results[]` entry is one finding:
//! - rule id: `ruleId`, else `rule.id`, else the id of the rule at `ruleIndex`;
//! - severity: the rule's `properties.security-severity` score via [`Severity::from_score`]
//!   (the convention GitHub code scanning uses), else the result's `level` (or the rule's
//!   `defaultConfiguration.level`, else SARIF's default `warning`):
//!   error → high, warning → medium, note → low, none → info;
//! - title: the rule's `shortDescription`, else the first line of `message.text`;
//! - location: `uri:startLine` of the first physical location (just `uri` without a region);
//! - target: the result's `properties.target` if the tool set it, else the scan target the
//!   caller passes, else the run's `originalUriBaseIds.ROOTPATH`, else the artifact URI.
//!
//! Fingerprint recipe: `fingerprint(scanner, [target, ruleId, partialFingerprints as sorted
//! key=value lines])` when the tool provides `partialFingerprints` (the tool knows best what
//! identifies its result), else `fingerprint(scanner, [target, ruleId, location])`.

use std::collections::BTreeMap;

use scanplane_core::finding::{fingerprint, Finding, Severity};
use serde::Deserialize;
use serde_json::Value;

use crate::error::{json_document, ParseError};
use crate::parsed::{typed_records, Parsed};
use crate::registry::Parser;

pub const NAME: &str = "sarif";

#[derive(Deserialize)]
struct Log {
    version: Option<String>,
    runs: Option<Vec<Run>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Run {
    #[serde(default)]
    tool: Tool,
    /// Read one by one, so a malformed result is dropped alone.
    #[serde(default)]
    results: Vec<Value>,
    #[serde(default)]
    original_uri_base_ids: BTreeMap<String, ArtifactLocation>,
}

#[derive(Deserialize, Default)]
struct Tool {
    #[serde(default)]
    driver: Driver,
}

#[derive(Deserialize, Default)]
struct Driver {
    #[serde(default)]
    name: String,
    #[serde(default)]
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    #[serde(default)]
    id: String,
    short_description: Option<Message>,
    default_configuration: Option<Configuration>,
    #[serde(default)]
    properties: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
struct Configuration {
    level: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    text: Option<String>,
}

#[derive(Deserialize, Default)]
struct ArtifactLocation {
    uri: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SarifResult {
    rule_id: Option<String>,
    rule_index: Option<usize>,
    rule: Option<RuleRef>,
    level: Option<String>,
    message: Option<Message>,
    #[serde(default)]
    locations: Vec<Location>,
    #[serde(default)]
    partial_fingerprints: BTreeMap<String, Value>,
    #[serde(default)]
    properties: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
struct RuleRef {
    id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Location {
    physical_location: Option<PhysicalLocation>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PhysicalLocation {
    artifact_location: Option<ArtifactLocation>,
    region: Option<Region>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Region {
    start_line: Option<u64>,
}

/// The parser of this format, for tests and the fuzzer (see [`crate::registry::parsers`]).
pub const PARSER: Parser = Parser { name: NAME, parse };

/// Parses a SARIF 2.1.0 log; fingerprints are namespaced as `sarif`.
pub fn parse(input: &[u8]) -> Result<Parsed, ParseError> {
    parse_with(input, NAME, None)
}

/// Parses a SARIF log for `scanner` (errors and fingerprints carry that name), attributing
/// results without their own target to `target`. A malformed result is dropped with where it
/// was (`runs[r].results[i]`); a document that is not a SARIF 2.1 log is an error.
pub fn parse_with(input: &[u8], scanner: &str, target: Option<&str>) -> Result<Parsed, ParseError> {
    let log: Log = json_document(scanner, input)?;
    match log.version.as_deref() {
        Some(v) if v.starts_with("2.1") => {}
        Some(v) => {
            return Err(ParseError::new(
                scanner,
                format!("unsupported SARIF version {v:?}; expected 2.1.0"),
            ))
        }
        None => {
            return Err(ParseError::new(
                scanner,
                "not a SARIF log: missing \"version\"",
            ))
        }
    }
    let runs = log
        .runs
        .ok_or_else(|| ParseError::new(scanner, "not a SARIF log: missing \"runs\""))?;
    let mut parsed = Parsed::default();
    for (i, run) in runs.iter().enumerate() {
        let root = run
            .original_uri_base_ids
            .get("ROOTPATH")
            .and_then(|a| a.uri.clone());
        let path = format!("runs[{i}].results");
        let results: Vec<SarifResult> =
            typed_records(scanner, &path, &run.results, &mut parsed.rejected);
        for r in &results {
            parsed
                .findings
                .push(result_finding(scanner, target, root.as_deref(), run, r));
        }
    }
    parsed.unless_all_rejected()
}

fn level_severity(level: &str) -> Severity {
    match level {
        "error" => Severity::High,
        "warning" => Severity::Medium,
        "note" => Severity::Low,
        "none" => Severity::Info,
        _ => Severity::Unknown,
    }
}

fn score(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn result_finding(
    scanner: &str,
    default_target: Option<&str>,
    root: Option<&str>,
    run: &Run,
    r: &SarifResult,
) -> Finding {
    let rules = &run.tool.driver.rules;
    let rule_id = r
        .rule_id
        .clone()
        .or_else(|| r.rule.as_ref().and_then(|x| x.id.clone()))
        .or_else(|| {
            r.rule_index
                .and_then(|i| rules.get(i))
                .map(|x| x.id.clone())
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "sarif-result".to_string());
    let rule = r
        .rule_index
        .and_then(|i| rules.get(i))
        .filter(|x| x.id == rule_id)
        .or_else(|| rules.iter().find(|x| x.id == rule_id));
    let security_score = rule
        .and_then(|x| x.properties.get("security-severity"))
        .and_then(score);
    let level = r
        .level
        .clone()
        .or_else(|| {
            rule.and_then(|x| x.default_configuration.as_ref())
                .and_then(|c| c.level.clone())
        })
        .unwrap_or_else(|| "warning".to_string());
    let severity = match security_score {
        Some(s) => Severity::from_score(s),
        None => level_severity(&level),
    };
    let message = r
        .message
        .as_ref()
        .and_then(|m| m.text.clone())
        .unwrap_or_default();
    let title = rule
        .and_then(|x| x.short_description.as_ref())
        .and_then(|d| d.text.clone())
        .filter(|t| !t.trim().is_empty())
        .or_else(|| {
            message
                .lines()
                .find(|l| !l.trim().is_empty())
                .map(str::to_string)
        })
        .unwrap_or_else(|| rule_id.clone());
    let physical = r
        .locations
        .iter()
        .find_map(|l| l.physical_location.as_ref());
    let uri = physical
        .and_then(|p| p.artifact_location.as_ref())
        .and_then(|a| a.uri.clone())
        .unwrap_or_default();
    let line = physical
        .and_then(|p| p.region.as_ref())
        .and_then(|g| g.start_line);
    let location = match line {
        Some(l) if !uri.is_empty() => format!("{uri}:{l}"),
        _ => uri.clone(),
    };
    let target = r
        .properties
        .get("target")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| default_target.map(str::to_string))
        .or_else(|| root.map(str::to_string))
        .unwrap_or_else(|| uri.clone());
    let mut detail = message;
    if !run.tool.driver.name.is_empty() {
        detail = format!("[{}] {detail}", run.tool.driver.name);
    }
    let mut f = Finding::new(
        scanner,
        target.clone(),
        rule_id.clone(),
        severity,
        title,
        location,
    )
    .with_detail(detail);
    if !r.partial_fingerprints.is_empty() {
        let partial: Vec<String> = r
            .partial_fingerprints
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect();
        f.fingerprint = fingerprint(scanner, &[&target, &rule_id, &partial.join("\n")]);
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = include_bytes!("../tests/data/sarif/trivy-secret.sarif");
    const MISCONFIG: &[u8] = include_bytes!("../tests/data/sarif/trivy-misconfig.sarif");

    #[test]
    fn parses_real_trivy_secret_sarif() {
        let f = parse(SECRET).and_then(Parsed::strict).unwrap();
        assert_eq!(f.len(), 3, "{f:#?}");
        let gh = f.iter().find(|x| x.rule_id == "github-pat").unwrap();
        // security-severity 9.5 wins over level "error".
        assert_eq!(gh.severity, Severity::Critical);
        assert_eq!(gh.title, "GitHub Personal Access Token");
        assert_eq!(gh.location, ".env:1");
        assert_eq!(gh.target, "file:///tmp/tv/src/");
        assert!(
            gh.detail.starts_with("[Trivy] Artifact: .env"),
            "{}",
            gh.detail
        );
        let aws = f.iter().find(|x| x.rule_id == "aws-access-key-id").unwrap();
        assert_eq!(aws.location, "config.py:2");
        let with_target = parse_with(SECRET, "acme", Some("fs:///srv/app"))
            .and_then(Parsed::strict)
            .unwrap();
        assert!(with_target.iter().all(|x| x.target == "fs:///srv/app"));
        assert_ne!(with_target[0].fingerprint, f[0].fingerprint);
    }

    #[test]
    fn parses_real_trivy_misconfig_sarif_with_scores() {
        let f = parse(MISCONFIG).and_then(Parsed::strict).unwrap();
        assert_eq!(f.len(), 20);
        let ds2 = f.iter().find(|x| x.rule_id == "DS-0002").unwrap();
        assert_eq!(ds2.severity, Severity::High);
        assert_eq!(ds2.location, "Dockerfile:3");
        assert!(f.iter().any(|x| x.severity == Severity::Low));
    }

    #[test]
    fn levels_partial_fingerprints_and_defaults() {
        let log = br#"{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"x","rules":[{"id":"R1","defaultConfiguration":{"level":"note"}}]}},
          "results":[
            {"ruleId":"R1","message":{"text":"first line\nmore"},"partialFingerprints":{"primaryLocationLineHash":"abc"},
             "locations":[{"physicalLocation":{"artifactLocation":{"uri":"src/a.rs"},"region":{"startLine":7}}}]},
            {"ruleId":"R2","level":"error","message":{"text":"boom"},"properties":{"target":"https://x.example/"}},
            {"ruleIndex":0,"message":{"text":"by index"}},
            {"message":{"text":"no rule"}}
          ]}]}"#;
        let f = parse(log).and_then(Parsed::strict).unwrap();
        assert_eq!(f[0].severity, Severity::Low);
        assert_eq!(f[0].title, "first line");
        assert_eq!(f[0].location, "src/a.rs:7");
        assert_eq!(
            f[0].fingerprint,
            fingerprint("sarif", &["src/a.rs", "R1", "primaryLocationLineHash=abc"])
        );
        assert_eq!(f[1].severity, Severity::High);
        assert_eq!(f[1].target, "https://x.example/");
        assert_eq!(f[2].rule_id, "R1");
        assert_eq!(f[3].rule_id, "sarif-result");
        assert_eq!(f[3].severity, Severity::Medium);
    }

    #[test]
    fn rejects_non_sarif_and_survives_truncation() {
        for bad in [
            &b""[..],
            b"{}",
            b"[]",
            br#"{"version":"1.0.0","runs":[]}"#,
            b"\x00\xff",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.to_string().starts_with("sarif: "), "{e}");
        }
        crate::testutil::assert_robust(NAME, SECRET, parse);
    }

    #[test]
    fn a_malformed_result_is_dropped_alone() {
        let log = br#"{"version":"2.1.0","runs":[{"results":[
            {"ruleId":"R1","message":{"text":"kept"}},
            {"ruleId":7},
            {"ruleId":"R3","message":{"text":"kept too"}}]}]}"#;
        let p = parse(log).unwrap();
        assert_eq!(
            p.findings
                .iter()
                .map(|f| f.rule_id.as_str())
                .collect::<Vec<_>>(),
            ["R1", "R3"]
        );
        assert_eq!(p.rejected.len(), 1);
        assert!(
            p.rejected[0]
                .to_string()
                .starts_with("sarif: runs[0].results[1]: invalid type"),
            "{}",
            p.rejected[0]
        );
    }
}
