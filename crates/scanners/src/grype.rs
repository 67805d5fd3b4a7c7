//! The `grype` adapter: vulnerability matching of container images and directories with
//! Anchore's grype, run as `grype <image> -o json` (or `grype dir:<path> -o json`).
//!
//! Targets: images (`image://<ref>` or a bare reference) and `fs://<path>` directories.
//! Option `only_fixed` (boolean) adds `--only-fixed`.
//!
//! Each `matches[]` entry is one finding: rule id `vulnerability.id`, location
//! `<artifact.name>@<artifact.version>`, detail with the package type, fix versions,
//! where the package was found and the advisory URL.
//!
//! Severity mapping: `vulnerability.severity` through [`Severity::normalize`]
//! (Critical, High, Medium, Low; Negligible → info; Unknown → unknown).
//!
//! Fingerprint recipe: `fingerprint("grype", [target, vulnerability.id, artifact.name,
//! artifact.version, anchor])` where the anchor is the image digest (`source.target`'s first
//! `repoDigests` entry, else `manifestDigest`, else `imageID`) or, for directories, the first
//! path the package was found at.

use async_trait::async_trait;
use scanplane_core::finding::{fingerprint, Finding, Severity};
use scanplane_core::scanner::{ScannerDef, ScannerKind};
use scanplane_core::target::{PathMode, Target, TargetKind};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::mpsc;

use crate::error::{json_document, ParseError, ScanError, ValidationError};
use crate::options::Options;
use crate::parsed::{typed_records, Parsed};
use crate::process::{find_program, TargetRun, Tool, ToolOutput};
use crate::registry::{Component, Parser};
use crate::{adapter_def, check_target_kinds, RunRequest, ScanOutcome, Scanner};

pub const NAME: &str = "grype";
pub const PROGRAM: &str = "grype";
const OPTIONS: &[&str] = &["only_fixed"];
/// `only_fixed` narrows what grype reports.
const SCOPE_OPTIONS: &[&str] = OPTIONS;

/// The report; matches are read one by one so a malformed one is dropped alone.
#[derive(Deserialize)]
struct Report {
    matches: Option<Vec<Value>>,
    source: Option<Source>,
}

#[derive(Deserialize)]
struct Source {
    target: Option<Value>,
}

#[derive(Deserialize)]
struct Match {
    vulnerability: Vulnerability,
    artifact: Artifact,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Vulnerability {
    id: String,
    #[serde(default)]
    severity: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    data_source: String,
    fix: Option<Fix>,
}

#[derive(Deserialize)]
struct Fix {
    #[serde(default)]
    versions: Vec<String>,
    #[serde(default)]
    state: String,
}

#[derive(Deserialize)]
struct Artifact {
    name: String,
    #[serde(default)]
    version: String,
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    locations: Vec<ArtifactLocation>,
}

#[derive(Deserialize)]
struct ArtifactLocation {
    #[serde(default)]
    path: String,
}

fn image_digest(source: Option<&Source>) -> Option<String> {
    let t = source?.target.as_ref()?;
    let first_digest = t
        .get("repoDigests")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_str);
    first_digest
        .or_else(|| t.get("manifestDigest").and_then(Value::as_str))
        .or_else(|| t.get("imageID").and_then(Value::as_str))
        .map(str::to_string)
}

/// Parses grype's JSON report; `target` is the canonical scan target the report is about.
/// A malformed match is dropped with where it was (`matches[i]`); a document that is not a
/// grype report is an error.
pub fn parse(input: &[u8], target: &str) -> Result<Parsed, ParseError> {
    let report: Report = json_document(NAME, input)?;
    let matches = report
        .matches
        .ok_or_else(|| ParseError::new(NAME, "not a grype JSON report: missing \"matches\""))?;
    let digest = image_digest(report.source.as_ref());
    let mut parsed = Parsed::default();
    let matches: Vec<Match> = typed_records(NAME, "matches", &matches, &mut parsed.rejected);
    parsed.findings = matches
        .iter()
        .map(|m| match_finding(target, digest.as_deref(), m))
        .collect();
    parsed.unless_all_rejected()
}

/// The parser for tests and the fuzzer, with a fixed scan target.
fn parse_captured(input: &[u8]) -> Result<Parsed, ParseError> {
    parse(input, "image://captured")
}

fn match_finding(target: &str, digest: Option<&str>, m: &Match) -> Finding {
    let v = &m.vulnerability;
    let a = &m.artifact;
    let found_at = a.locations.first().map(|l| l.path.as_str()).unwrap_or("");
    let fix = match &v.fix {
        Some(f) if !f.versions.is_empty() => format!("fixed in {}", f.versions.join(", ")),
        Some(f) if !f.state.is_empty() => format!("fix state: {}", f.state),
        _ => "no fix information".to_string(),
    };
    let mut detail = format!(
        "{} package {} {} is affected ({fix}).",
        a.kind, a.name, a.version
    );
    if !found_at.is_empty() {
        detail.push_str(&format!(" Found at {found_at}."));
    }
    if !v.description.is_empty() {
        detail.push(' ');
        detail.push_str(&v.description);
    }
    if !v.data_source.is_empty() {
        detail.push_str(&format!(" See {}", v.data_source));
    }
    let mut f = Finding::new(
        NAME,
        target,
        v.id.clone(),
        Severity::normalize(&v.severity),
        format!("{} in {} {}", v.id, a.name, a.version),
        format!("{}@{}", a.name, a.version),
    )
    .with_detail(detail.trim().to_string());
    let anchor = digest.unwrap_or(found_at);
    f.fingerprint = fingerprint(NAME, &[target, &v.id, &a.name, &a.version, anchor]);
    f
}

/// The registry entry of this scanner (see [`crate::BUILTIN`]).
pub const COMPONENT: Component = Component {
    build: || Arc::new(GrypeScanner::new()),
    parser: Some(Parser {
        name: NAME,
        parse: parse_captured,
    }),
};

/// The grype adapter.
pub struct GrypeScanner {
    def: ScannerDef,
}

impl Default for GrypeScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl GrypeScanner {
    pub fn new() -> Self {
        GrypeScanner {
            def: adapter_def(
                NAME,
                "grype vulnerability matching for images and directories",
                ScannerKind::External {
                    program: PROGRAM.to_string(),
                },
                vec![TargetKind::Image, TargetKind::Path],
                OPTIONS,
                SCOPE_OPTIONS,
            ),
        }
    }
}

fn args(target: &Target, only_fixed: bool) -> Option<Vec<String>> {
    let subject = match target {
        Target::Image(i) => i.to_string(),
        Target::Path {
            mode: PathMode::Filesystem,
            path,
        } => format!("dir:{path}"),
        _ => return None,
    };
    let mut args = vec![
        subject,
        "-o".to_string(),
        "json".to_string(),
        "-q".to_string(),
    ];
    if only_fixed {
        args.push("--only-fixed".to_string());
    }
    Some(args)
}

#[async_trait]
impl Scanner for GrypeScanner {
    fn definition(&self) -> &ScannerDef {
        &self.def
    }

    fn missing_here(&self, _scan: Option<(&[Target], &serde_json::Value)>) -> Option<String> {
        crate::process::missing_program(
            NAME,
            PROGRAM,
            "install grype (https://github.com/anchore/grype) and its vulnerability database",
        )
    }

    fn validate(
        &self,
        targets: &[Target],
        options: &serde_json::Value,
    ) -> Result<(), ValidationError> {
        check_target_kinds(&self.def, targets)?;
        for (index, t) in targets.iter().enumerate() {
            if let Target::Path {
                mode: PathMode::Config,
                ..
            } = t
            {
                return Err(ValidationError::Target {
                    scanner: NAME.to_string(),
                    index,
                    target: t.to_string(),
                    reason: "grype scans fs:// directories and images, not config:// paths"
                        .to_string(),
                });
            }
        }
        Options::parse(NAME, options, OPTIONS)?.boolean("only_fixed")?;
        Ok(())
    }

    async fn run(
        &self,
        req: &RunRequest,
        findings: mpsc::Sender<Finding>,
    ) -> Result<ScanOutcome, ScanError> {
        self.validate(&req.targets, &req.options)?;
        let only_fixed = Options::parse(NAME, &req.options, OPTIONS)?
            .boolean("only_fixed")?
            .unwrap_or(false);
        let tool = Tool::new(NAME, find_program(NAME, PROGRAM)?, req);
        let runs = TargetRun::each(&req.targets, |t| args(t, only_fixed));
        tool.run_per_target(runs, ToolOutput::Document(parse), &findings)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMAGE: &[u8] = include_bytes!("../tests/data/grype/image-alpine.json");

    #[test]
    fn parses_schema_fixture() {
        let target = "image://alpine:3.19.0";
        let f = parse(IMAGE, target).and_then(Parsed::strict).unwrap();
        assert_eq!(f.len(), 3, "{f:#?}");
        assert_eq!(f[0].rule_id, "CVE-2024-0727");
        assert_eq!(f[0].severity, Severity::Medium);
        assert_eq!(f[0].location, "libcrypto3@3.1.4-r2");
        assert!(f[0].detail.contains("fixed in 3.1.4-r5"), "{}", f[0].detail);
        let digest =
            "alpine@sha256:51b67269f354137895d43f3b3d810bfacd3945438e94dc5ac55fdac340352f48";
        assert_eq!(
            f[0].fingerprint,
            fingerprint(
                "grype",
                &[target, "CVE-2024-0727", "libcrypto3", "3.1.4-r2", digest]
            )
        );
        assert_eq!(f[1].severity, Severity::Info, "Negligible maps to info");
        assert_eq!(f[2].severity, Severity::High);
    }

    #[test]
    fn garbage_and_truncation() {
        for bad in [&b""[..], b"{}", b"[]", b"{\"matches\": {}}", b"\xff\xfe"] {
            let e = parse(bad, "image://x").unwrap_err();
            assert!(e.to_string().starts_with("grype: "), "{e}");
        }
        assert!(parse(br#"{"matches": []}"#, "image://x")
            .and_then(Parsed::strict)
            .unwrap()
            .is_empty());
        crate::testutil::assert_robust(NAME, IMAGE, |b| parse(b, "image://x"));
    }

    #[test]
    fn a_malformed_match_is_dropped_alone() {
        let mut report: Value = serde_json::from_slice(IMAGE).unwrap();
        report["matches"][1]["artifact"] = Value::Null;
        let p = parse(&serde_json::to_vec(&report).unwrap(), "image://x").unwrap();
        assert_eq!(p.findings.len(), 2);
        assert_eq!(p.rejected.len(), 1);
        assert!(
            p.rejected[0].to_string().starts_with("grype: matches[1]: "),
            "{}",
            p.rejected[0]
        );
    }

    #[test]
    fn arguments_and_validation() {
        let t = Target::parse("fs:///srv/app").unwrap();
        assert_eq!(
            args(&t, true).unwrap().join(" "),
            "dir:/srv/app -o json -q --only-fixed"
        );
        let s = GrypeScanner::new();
        assert!(s
            .validate(&[Target::parse("config:///x").unwrap()], &Value::Null)
            .is_err());
        let e = s
            .validate(&[t], &serde_json::json!({"only_fixed": "yes"}))
            .unwrap_err();
        assert!(e.to_string().contains("\"only_fixed\""), "{e}");
    }
}
