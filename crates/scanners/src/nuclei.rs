//! The `nuclei` adapter: template-based checks of web applications and hosts with
//! ProjectDiscovery's nuclei, run as `nuclei -jsonl -silent -u <target>` once per target.
//!
//! Targets are URLs and hosts. Options: `tags` (comma-separated template tags, `-tags`),
//! `severity` (comma-separated, `-severity`), `rate_limit` (requests per second, `-rl`).
//! Output is JSON Lines, parsed line by line while nuclei runs so findings stream out; a
//! malformed line (or one that is not UTF-8, or longer than [`crate::RECORD_MAX`]) is
//! dropped with its reason and the others kept.
//!
//! Each result line is one finding: rule id `template-id`, title `info.name` (plus the
//! matcher name when the template has several matchers), location the normalized
//! `matched-at`, detail the description, extracted results and references.
//!
//! Severity mapping: `info.severity` through [`Severity::normalize`]
//! (info, low, medium, high, critical; anything else is unknown).
//!
//! Fingerprint recipe: `fingerprint("nuclei", [target, template-id, matcher-name,
//! normalize_url(matched-at)])`.

use async_trait::async_trait;
use scanplane_core::finding::{fingerprint, normalize_url, Finding, Severity};
use scanplane_core::scanner::{ScannerDef, ScannerKind};
use scanplane_core::target::{Target, TargetKind};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::mpsc;

use crate::error::{ParseError, ScanError, ValidationError};
use crate::options::Options;
use crate::parsed::{check_line, Parsed};
use crate::process::{find_program, TargetRun, Tool, ToolOutput};
use crate::registry::{Component, Parser};
use crate::{adapter_def, check_target_kinds, RunRequest, ScanOutcome, Scanner};

pub const NAME: &str = "nuclei";
pub const PROGRAM: &str = "nuclei";
const OPTIONS: &[&str] = &[
    "tags",
    "severity",
    "rate_limit",
    "templates",
    "exclude_templates",
    "exclude_tags",
];
/// The options that change which templates run (the rest only how fast).
const SCOPE_OPTIONS: &[&str] = &[
    "tags",
    "severity",
    "templates",
    "exclude_templates",
    "exclude_tags",
];
const SEVERITIES: &[&str] = &["info", "low", "medium", "high", "critical", "unknown"];

#[derive(Deserialize)]
struct Line {
    #[serde(rename = "template-id")]
    template_id: String,
    #[serde(default)]
    info: Info,
    #[serde(rename = "matcher-name", default)]
    matcher_name: String,
    #[serde(rename = "matched-at", default)]
    matched_at: String,
    #[serde(default)]
    host: String,
    #[serde(default)]
    url: String,
    #[serde(rename = "extracted-results", default)]
    extracted_results: Vec<String>,
}

#[derive(Deserialize, Default)]
struct Info {
    #[serde(default)]
    name: String,
    #[serde(default)]
    severity: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    reference: Option<Value>,
}

/// Parses nuclei's JSONL output; each finding's target is the result's `url` or `host`.
pub fn parse(input: &[u8]) -> Result<Parsed, ParseError> {
    if input.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseError::empty(NAME));
    }
    let mut parsed = Parsed::default();
    for (i, line) in input.split(|b| *b == b'\n').enumerate() {
        match parse_line(line, i + 1, None) {
            Ok(Some(f)) => parsed.findings.push(f),
            Ok(None) => {}
            Err(e) => parsed.rejected.push(e),
        }
    }
    parsed.unless_all_rejected()
}

/// Parses one JSONL line (`line_no` is 1-based, for messages); blank lines give `None`.
/// `target` overrides the result's own `url`/`host` as the finding's target.
pub fn parse_line(
    line: &[u8],
    line_no: usize,
    target: Option<&str>,
) -> Result<Option<Finding>, ParseError> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let text = check_line(line, line_no).map_err(|m| ParseError::new(NAME, m))?;
    let l: Line = serde_json::from_str(text).map_err(|e| {
        ParseError::new(
            NAME,
            format!(
                "line {line_no}: malformed result at column {}: {e}",
                e.column()
            ),
        )
    })?;
    if l.template_id.is_empty() {
        return Err(ParseError::new(
            NAME,
            format!("line {line_no}: empty \"template-id\""),
        ));
    }
    let target = target
        .map(str::to_string)
        .or_else(|| Some(l.url.clone()).filter(|s| !s.is_empty()))
        .unwrap_or_else(|| l.host.clone());
    let location = if l.matched_at.contains("://") {
        normalize_url(&l.matched_at)
    } else {
        l.matched_at.clone()
    };
    let name = if l.info.name.is_empty() {
        l.template_id.clone()
    } else {
        l.info.name.clone()
    };
    let title = if l.matcher_name.is_empty() {
        name
    } else {
        format!("{name} ({})", l.matcher_name)
    };
    let mut detail = l.info.description.trim().to_string();
    if !l.extracted_results.is_empty() {
        detail.push_str(&format!("\nExtracted: {}", l.extracted_results.join(", ")));
    }
    detail.push_str(&format!("\nMatched at: {}", l.matched_at));
    let refs: Vec<String> = match &l.info.reference {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    };
    if !refs.is_empty() {
        detail.push_str(&format!("\nReferences: {}", refs.join(" ")));
    }
    let mut f = Finding::new(
        NAME,
        target.clone(),
        l.template_id.clone(),
        Severity::normalize(&l.info.severity),
        title,
        location.clone(),
    )
    .with_detail(detail.trim().to_string());
    f.fingerprint = fingerprint(NAME, &[&target, &l.template_id, &l.matcher_name, &location]);
    Ok(Some(f))
}

/// The registry entry of this scanner (see [`crate::BUILTIN`]).
pub const COMPONENT: Component = Component {
    build: || Arc::new(NucleiScanner::new()),
    parser: Some(Parser { name: NAME, parse }),
};

/// The nuclei adapter.
pub struct NucleiScanner {
    def: ScannerDef,
}

impl Default for NucleiScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl NucleiScanner {
    pub fn new() -> Self {
        NucleiScanner {
            def: adapter_def(
                NAME,
                "nuclei template-based web and network checks",
                ScannerKind::External {
                    program: PROGRAM.to_string(),
                },
                vec![TargetKind::Url, TargetKind::Host],
                OPTIONS,
                SCOPE_OPTIONS,
            ),
        }
    }
}

fn args(target: &str, options: &serde_json::Value) -> Result<Vec<String>, ValidationError> {
    let o = Options::parse(NAME, options, OPTIONS)?;
    let mut args: Vec<String> = vec!["-jsonl".into(), "-silent".into()];
    if let Some(tags) = o.string("tags")? {
        let ok = !tags.is_empty()
            && tags
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_,.".contains(c));
        if !ok {
            return Err(o.error(
                "tags",
                "expected comma-separated tags of letters, digits, '-', '_' and '.'",
            ));
        }
        args.extend(["-tags".to_string(), tags.to_string()]);
    }
    // Template paths or ids and tags, comma-separated: never a flag, never shell syntax.
    for (option, flag) in [
        ("templates", "-t"),
        ("exclude_templates", "-et"),
        ("exclude_tags", "-etags"),
    ] {
        if let Some(list) = o.string(option)? {
            let ok = !list.is_empty()
                && list.split(',').all(|item| {
                    !item.is_empty()
                        && !item.starts_with(['-', '/'])
                        && item
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "-_./:".contains(c))
                })
                && !list.contains("..");
            if !ok {
                return Err(o.error(
                    option,
                    "expected comma-separated entries of letters, digits and -_./: (relative to the templates directory: not starting with '-' or '/', no '..')",
                ));
            }
            args.extend([flag.to_string(), list.to_string()]);
        }
    }
    if let Some(sev) = o.word_list("severity", SEVERITIES)? {
        args.extend(["-severity".to_string(), sev.join(",")]);
    }
    if let Some(rl) = o.integer("rate_limit", 1, 10_000)? {
        args.extend(["-rl".to_string(), rl.to_string()]);
    }
    args.extend(["-u".to_string(), target.to_string()]);
    Ok(args)
}

#[async_trait]
impl Scanner for NucleiScanner {
    fn definition(&self) -> &ScannerDef {
        &self.def
    }

    fn missing_here(&self, _scan: Option<(&[Target], &serde_json::Value)>) -> Option<String> {
        crate::process::missing_program(
            NAME,
            PROGRAM,
            "install nuclei (https://github.com/projectdiscovery/nuclei) and its templates",
        )
    }

    fn validate(
        &self,
        targets: &[Target],
        options: &serde_json::Value,
    ) -> Result<(), ValidationError> {
        check_target_kinds(&self.def, targets)?;
        // nuclei takes one `host:port` per `-u`; a range would reach it as a host name it
        // cannot resolve.
        if let Some((index, t)) = targets
            .iter()
            .enumerate()
            .find(|(_, t)| matches!(t, Target::Host { ports: Some(p), .. } if p.first != p.last))
        {
            return Err(ValidationError::Target {
                scanner: NAME.to_string(),
                index,
                target: t.to_string(),
                reason: "nuclei scans one port per host target: give host:PORT (one target per port), or use tcp or nmap for a range".to_string(),
            });
        }
        args("x", options).map(|_| ())
    }

    async fn run(
        &self,
        req: &RunRequest,
        findings: mpsc::Sender<Finding>,
    ) -> Result<ScanOutcome, ScanError> {
        self.validate(&req.targets, &req.options)?;
        let tool = Tool::new(NAME, find_program(NAME, PROGRAM)?, req);
        let runs = req
            .targets
            .iter()
            .map(|t| {
                let target = t.to_string();
                args(&target, &req.options).map(|args| TargetRun { target, args })
            })
            .collect::<Result<_, _>>()?;
        // Findings are attributed to the scan target rather than nuclei's own `url`.
        let output =
            ToolOutput::Lines(|line, line_no, target| parse_line(line, line_no, Some(target)));
        tool.run_per_target(runs, output, &findings).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &[u8] = include_bytes!("../tests/data/nuclei/results.jsonl");

    #[test]
    fn parses_schema_fixture() {
        let f = parse(FIXTURE).and_then(Parsed::strict).unwrap();
        assert_eq!(f.len(), 3, "{f:#?}");
        let git = &f[0];
        assert_eq!(git.rule_id, "git-config");
        assert_eq!(git.severity, Severity::Medium);
        assert_eq!(git.title, "Git Configuration - Detect");
        assert_eq!(git.location, "https://app.example.com/.git/config");
        assert_eq!(git.target, "https://app.example.com:443");
        let hdr = &f[1];
        assert_eq!(hdr.title, "HTTP Missing Security Headers (x-frame-options)");
        assert_eq!(hdr.severity, Severity::Info);
        assert_eq!(
            hdr.fingerprint,
            fingerprint(
                "nuclei",
                &[
                    "https://app.example.com:443",
                    "http-missing-security-headers",
                    "x-frame-options",
                    "https://app.example.com/"
                ]
            )
        );
        assert!(
            f[2].detail.contains("Extracted: nginx/1.18.0"),
            "{}",
            f[2].detail
        );
        let with_target = parse_line(
            FIXTURE.split(|b| *b == b'\n').next().unwrap(),
            1,
            Some("https://app.example.com/"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(with_target.target, "https://app.example.com/");
    }

    #[test]
    fn a_host_port_range_is_refused_naming_the_target() {
        let scanner = (COMPONENT.build)();
        let ok = |t: &str| Target::parse(t).unwrap();
        let opts = serde_json::json!({});
        assert!(scanner
            .validate(&[ok("db.internal:5432"), ok("https://x.example/")], &opts)
            .is_ok());
        match scanner.validate(&[ok("db.internal:5432"), ok("10.0.0.5:8000-8100")], &opts) {
            Err(ValidationError::Target { index, reason, .. }) => {
                assert_eq!(index, 1);
                assert!(reason.contains("one port per host"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn garbage_and_truncation() {
        for bad in [&b""[..], b"not json", b"{\"info\":{}}", b"[1]"] {
            let e = parse(bad).unwrap_err();
            assert!(e.to_string().starts_with("nuclei: "), "{e}");
        }
        crate::testutil::assert_robust(NAME, FIXTURE, parse);
    }

    #[test]
    fn a_bad_line_is_dropped_and_the_others_kept() {
        let mut out = FIXTURE.to_vec();
        out.extend_from_slice(
            b"{\"template-id\": \"x\", \"info\": {\"name\": \"\xff\"}}\nnot json\n",
        );
        let p = parse(&out).unwrap();
        assert_eq!(p.findings.len(), 3);
        let reasons: Vec<String> = p.rejected.iter().map(|e| e.to_string()).collect();
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert_eq!(reasons[0], "nuclei: line 4: not valid UTF-8 (at byte 39)");
        assert!(
            reasons[1].starts_with("nuclei: line 5: malformed result"),
            "{}",
            reasons[1]
        );
    }

    #[test]
    fn options() {
        let a = args("https://x.example/", &serde_json::json!({"tags": "cve,exposure", "severity": "high,critical", "rate_limit": 50})).unwrap();
        assert_eq!(a.join(" "), "-jsonl -silent -tags cve,exposure -severity high,critical -rl 50 -u https://x.example/");
        assert!(args("x", &serde_json::json!({"tags": "a b"})).is_err());
        assert!(args("x", &serde_json::json!({"templates": "/etc"})).is_err());
        let a = args(
            "https://x.example/",
            &serde_json::json!({"templates": "cves/,exposures/git.yaml", "exclude_templates": "dos/", "exclude_tags": "intrusive"}),
        )
        .unwrap();
        assert_eq!(
            a.join(" "),
            "-jsonl -silent -t cves/,exposures/git.yaml -et dos/ -etags intrusive -u https://x.example/"
        );
        for bad in ["../x", "a,,b", "-t", "a b", "$(id)", ""] {
            for option in ["templates", "exclude_templates", "exclude_tags"] {
                let e = args("x", &serde_json::json!({ option: bad })).unwrap_err();
                assert!(e.to_string().contains(option), "{option}={bad}: {e}");
            }
        }
    }
}
