//! Custom scanners: commands from the configuration file that receive their targets through
//! environment variables and report findings as `scanplane-json` or SARIF.
//!
//! The command is an argv list run without a shell, in the scan's work directory, with the
//! configured `env` plus:
//!
//! | variable             | value                                                          |
//! |----------------------|----------------------------------------------------------------|
//! | `SCANPLANE_TARGETS`  | canonical targets, one per line                                |
//! | `TARGETS`            | canonical targets, comma-separated                             |
//! | `ACCOUNT_IDS`        | ids of the `account://` targets, comma-separated               |
//! | `BILLING`            | `true` or `false`                                              |
//! | `SCANPLANE_OPTIONS`  | the scan's options as JSON (`{}` when none)                    |
//! | `SCAN_RUN_ID`        | the scan run id                                                |
//! | `SCANPLANE_OUTPUT`   | a file path in the work directory the scanner may write its report to |
//!
//! Where findings are read from: if the first non-blank stdout line is a complete
//! `scanplane-json` finding (NDJSON) and `$SCANPLANE_OUTPUT` does not exist yet, stdout is
//! the report and is parsed line by line while the command runs, so findings stream out.
//! Otherwise stdout is kept (up to 512 MiB) until the command exits; then `$SCANPLANE_OUTPUT`
//! is the report if the scanner wrote it (stdout is only logged), else stdout is. An NDJSON
//! report file is read line by line too. A streamed line may be at most
//! [`RECORD_MAX`](crate::RECORD_MAX) bytes. The report format is the
//! configured `output`: `scanplane-json` (see [`crate::scanplane_json`]) or `sarif` (see
//! [`crate::sarif`]). Findings without a target are attributed to the scan's only target.
//!
//! A non-zero exit status fails the scan with the last lines of stderr.
//!
//! Severity mapping and fingerprint recipe: those of the report format, namespaced by the
//! custom scanner's name.
//!
//! Configuration (YAML):
//! ```yaml
//! scanners:
//!   - name: cloud-audit
//!     command: ["/opt/audit/run", "--fast"]
//!     env: { AUDIT_REGION: eu-west-1 }
//!     provider: aws
//!     timeout: 5m
//!     output: scanplane-json   # or sarif
//!     accepts: [account]       # default: every target kind
//!     image: registry.example/audit:1.2
//!     description: Audits cloud accounts
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use scanplane_core::duration::parse_duration;
use scanplane_core::finding::Finding;
use scanplane_core::scanner::{validate_scanner_name, OutputFormat, ScannerDef, ScannerKind};
use scanplane_core::target::{Target, TargetKind};
use serde::{Deserialize, Deserializer};
use tokio::io::AsyncRead;
use tokio::sync::mpsc;

use crate::error::{ConfigError, ParseError, ScanError, ValidationError};
use crate::parsed::{too_long, Parsed, Rejections, Streamed};
use crate::process::{find_program, Line, Output, Tool, DOCUMENT_MAX, RECORD_MAX};
use crate::registry::Parser;
use crate::{check_target_kinds, emit, sarif, scanplane_json, RunRequest, ScanOutcome, Scanner};

/// The parsers of the report formats a custom scanner may write.
pub(crate) const FORMATS: &[Parser] = &[scanplane_json::PARSER, sarif::PARSER];

/// Environment variables scanplane sets itself; configuration may not override them.
pub const RESERVED_ENV: &[&str] = &[
    "SCANPLANE_TARGETS",
    "TARGETS",
    "ACCOUNT_IDS",
    "BILLING",
    "SCANPLANE_OPTIONS",
    "SCAN_RUN_ID",
    "SCANPLANE_OUTPUT",
];

const ALL_KINDS: [TargetKind; 8] = [
    TargetKind::Account,
    TargetKind::Host,
    TargetKind::Network,
    TargetKind::Url,
    TargetKind::Image,
    TargetKind::Registry,
    TargetKind::Cluster,
    TargetKind::Path,
];

/// One entry of the configuration file's `scanners` list.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomScannerConfig {
    pub name: String,
    /// Program and arguments; run without a shell.
    pub command: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Provider whose rate limit the scanner counts against (`aws`, `gcp`, ...).
    #[serde(default)]
    pub provider: Option<String>,
    /// Written like `90s` or `5m`.
    #[serde(default, deserialize_with = "de_timeout")]
    pub timeout: Option<Duration>,
    /// `scanplane-json` (default) or `sarif`.
    #[serde(default = "default_output", deserialize_with = "de_output")]
    pub output: OutputFormat,
    /// Target kinds accepted; every kind when omitted.
    #[serde(default = "default_accepts", deserialize_with = "de_accepts")]
    pub accepts: Vec<TargetKind>,
    /// Container image to run on Kubernetes instead of `SCANNER_IMAGE`.
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub description: String,
}

fn default_output() -> OutputFormat {
    OutputFormat::ScanplaneJson
}

fn default_accepts() -> Vec<TargetKind> {
    ALL_KINDS.to_vec()
}

fn de_timeout<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    s.map(|s| parse_duration(&s).map_err(serde::de::Error::custom))
        .transpose()
}

fn de_output<'de, D: Deserializer<'de>>(d: D) -> Result<OutputFormat, D::Error> {
    let s = String::deserialize(d)?;
    OutputFormat::parse(&s).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "unknown output format {s:?}; expected scanplane-json or sarif"
        ))
    })
}

fn de_accepts<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<TargetKind>, D::Error> {
    let names = Vec::<String>::deserialize(d)?;
    names
        .iter()
        .map(|n| {
            ALL_KINDS
                .into_iter()
                .find(|k| k.as_str() == n)
                .ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "unknown target kind {n:?}; expected one of {}",
                        ALL_KINDS.map(TargetKind::as_str).join(", ")
                    ))
                })
        })
        .collect()
}

/// A scanner defined in the configuration file.
pub struct CustomScanner {
    def: ScannerDef,
    config: CustomScannerConfig,
}

impl CustomScanner {
    pub fn new(config: CustomScannerConfig) -> Result<Self, ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid {
            name: config.name.clone(),
            reason,
        };
        validate_scanner_name(&config.name).map_err(|e| invalid(e.to_string()))?;
        match config.command.first() {
            None => return Err(invalid("command must not be empty".into())),
            Some(p) if p.trim().is_empty() => {
                return Err(invalid("command[0] (the program) must not be empty".into()))
            }
            Some(_) => {}
        }
        if config.accepts.is_empty() {
            return Err(invalid("accepts must list at least one target kind".into()));
        }
        for key in config.env.keys() {
            if RESERVED_ENV.contains(&key.as_str()) {
                return Err(invalid(format!(
                    "env {key:?} is set by scanplane and cannot be configured"
                )));
            }
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                return Err(invalid(format!(
                    "env name {key:?} is not a valid variable name"
                )));
            }
        }
        if config.timeout.is_some_and(|t| t.is_zero()) {
            return Err(invalid("timeout must be more than 0".into()));
        }
        let def = ScannerDef {
            name: config.name.clone(),
            description: if config.description.is_empty() {
                format!("custom scanner {}", config.command.join(" "))
            } else {
                config.description.clone()
            },
            kind: ScannerKind::Custom {
                command: config.command.clone(),
                env: config
                    .env
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                output: config.output,
            },
            provider: config.provider.clone(),
            timeout: config.timeout,
            image: config.image.clone(),
            accepts: config.accepts.clone(),
            options: Vec::new(),
            // Its options go to the command as JSON; what they mean is the command's.
            scope_options: None,
        };
        Ok(CustomScanner { def, config })
    }

    fn parse_error(&self, e: ParseError) -> ScanError {
        ScanError::Parse {
            scanner: self.def.name.clone(),
            message: e.message,
        }
    }

    fn parse_document(
        &self,
        input: &[u8],
        default_target: Option<&str>,
    ) -> Result<Parsed, ScanError> {
        let name = self.def.name.as_str();
        match self.config.output {
            OutputFormat::ScanplaneJson => scanplane_json::parse_with(input, name, default_target),
            OutputFormat::Sarif => sarif::parse_with(input, name, default_target),
        }
        .map_err(|e| self.parse_error(e))
    }

    /// Reads a report from `source`. When its first non-blank line is a `scanplane-json`
    /// finding (and `unless_exists` names no file that exists by then), the report is NDJSON
    /// and parsed line by line as it arrives, so findings stream out and no line is held
    /// whole; otherwise it is kept, up to [`DOCUMENT_MAX`], and returned to be parsed as one
    /// document.
    async fn read_report<R: AsyncRead + Unpin>(
        &self,
        source: &mut Output<R>,
        unless_exists: Option<&Path>,
        out: &mut Collector<'_>,
    ) -> Result<Option<Vec<u8>>, ScanError> {
        let name = self.def.name.as_str();
        let mut kept = Vec::new();
        let mut line_no = 0;
        // Until the first non-blank line says what the report is, a line may be a whole
        // document, so it may be as long as one.
        let (line_start, first) = loop {
            match source.next_line(DOCUMENT_MAX).await? {
                None => return Ok(Some(kept)),
                Some(Line::TooLong { .. }) => {
                    return Err(ScanError::TooLarge {
                        scanner: name.to_string(),
                        limit: DOCUMENT_MAX,
                    })
                }
                Some(Line::Text(line)) => {
                    line_no += 1;
                    let start = kept.len();
                    kept.extend_from_slice(line);
                    kept.push(b'\n');
                    if !line.iter().all(u8::is_ascii_whitespace) {
                        break (start, is_finding_line(line));
                    }
                }
            }
        };
        let file_exists = match unless_exists {
            Some(path) => tokio::fs::try_exists(path).await.unwrap_or(false),
            None => false,
        };
        let streaming = first && self.config.output == OutputFormat::ScanplaneJson && !file_exists;
        if !streaming {
            source.read_rest_into(&mut kept, DOCUMENT_MAX).await?;
            return Ok(Some(kept));
        }
        let mut streamed = Streamed::default();
        // The first line without the newline kept after it.
        let first_line = &kept[line_start..kept.len() - 1];
        let record = scanplane_json::parse_line(first_line, line_no, name, out.default_target);
        out.record(record, &mut streamed).await?;
        while let Some(line) = source.next_line(RECORD_MAX).await? {
            line_no += 1;
            let record = match line {
                Line::Text(line) => {
                    scanplane_json::parse_line(line, line_no, name, out.default_target)
                }
                Line::TooLong { bytes, .. } => Err(ParseError::new(name, too_long(line_no, bytes))),
            };
            out.record(record, &mut streamed).await?;
        }
        streamed
            .unless_all_rejected()
            .map_err(|e| self.parse_error(e))?;
        Ok(None)
    }

    async fn emit_document(
        &self,
        document: &[u8],
        out: &mut Collector<'_>,
    ) -> Result<(), ScanError> {
        let parsed = self.parse_document(document, out.default_target)?;
        for e in parsed.rejected {
            out.rejected.add(e.message);
        }
        for f in parsed.findings {
            emit(&self.def.name, out.tx, f).await?;
        }
        Ok(())
    }
}

/// Where a custom scanner's findings go, and what was dropped on the way.
struct Collector<'a> {
    scanner: &'a str,
    tx: &'a mpsc::Sender<Finding>,
    /// The target of findings that name none (the scan's only target).
    default_target: Option<&'a str>,
    rejected: Rejections,
}

impl Collector<'_> {
    /// Sends a streamed record's finding on, or counts it as dropped.
    async fn record(
        &mut self,
        record: Result<Option<Finding>, ParseError>,
        streamed: &mut Streamed,
    ) -> Result<(), ScanError> {
        match record {
            Ok(Some(f)) => {
                streamed.found();
                emit(self.scanner, self.tx, f).await
            }
            Ok(None) => Ok(()),
            Err(e) => {
                streamed.rejected(&e);
                self.rejected.add(e.message);
                Ok(())
            }
        }
    }
}

/// True when `line` is one complete JSON object that is a finding, not a wrapper document.
fn is_finding_line(line: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(line)
        .is_ok_and(|v| v.is_object() && v.get("findings").is_none())
}

/// The environment a custom scanner receives, besides its configured `env`.
pub fn scan_env(req: &RunRequest, output: &Path) -> Vec<(String, String)> {
    let targets: Vec<String> = req.targets.iter().map(Target::to_string).collect();
    let accounts: Vec<&str> = req
        .targets
        .iter()
        .filter_map(|t| match t {
            Target::Account { account_id } => Some(account_id.as_str()),
            _ => None,
        })
        .collect();
    let options = if req.options.is_null() {
        "{}".to_string()
    } else {
        req.options.to_string()
    };
    vec![
        ("SCANPLANE_TARGETS".into(), targets.join("\n")),
        ("TARGETS".into(), targets.join(",")),
        ("ACCOUNT_IDS".into(), accounts.join(",")),
        ("BILLING".into(), req.billing.to_string()),
        ("SCANPLANE_OPTIONS".into(), options),
        ("SCAN_RUN_ID".into(), req.scan_id.clone()),
        ("SCANPLANE_OUTPUT".into(), output.display().to_string()),
    ]
}

#[async_trait]
impl Scanner for CustomScanner {
    fn definition(&self) -> &ScannerDef {
        &self.def
    }

    fn missing_here(&self, _scan: Option<(&[Target], &serde_json::Value)>) -> Option<String> {
        let program = self.config.command.first()?;
        crate::process::missing_program(&self.def.name, program, "install it or fix `command`")
    }

    /// Checks target kinds; options are handed to the command as JSON, so any object is
    /// accepted and the command itself judges its option names.
    fn validate(
        &self,
        targets: &[Target],
        options: &serde_json::Value,
    ) -> Result<(), ValidationError> {
        check_target_kinds(&self.def, targets)?;
        if !(options.is_null() || options.is_object()) {
            return Err(ValidationError::OptionsNotObject {
                scanner: self.def.name.clone(),
                got: "a non-object value".into(),
            });
        }
        Ok(())
    }

    async fn run(
        &self,
        req: &RunRequest,
        findings: mpsc::Sender<Finding>,
    ) -> Result<ScanOutcome, ScanError> {
        self.validate(&req.targets, &req.options)?;
        let name = self.def.name.as_str();
        let program = find_program(name, &self.config.command[0])?;
        tokio::fs::create_dir_all(&req.work_dir)
            .await
            .map_err(|e| ScanError::io(name, format!("creating {}", req.work_dir.display()), e))?;
        let ext = match self.config.output {
            OutputFormat::ScanplaneJson => "json",
            OutputFormat::Sarif => "sarif",
        };
        let output: PathBuf = req.work_dir.join(format!("scanplane-output.{ext}"));
        // A report left by an earlier run in the same directory must not be mistaken for this one's.
        match tokio::fs::remove_file(&output).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(ScanError::io(
                    name,
                    format!("removing {}", output.display()),
                    e,
                ))
            }
            _ => {}
        }
        let mut env: Vec<(String, String)> = self
            .config
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        env.extend(scan_env(req, &output));
        let mut tool = Tool::new(name, program, req).with_env(env);
        if let Some(limit) = self.config.timeout {
            tool = tool.with_timeout(limit);
        }
        let mut running = tool.start(self.config.command[1..].to_vec())?;
        let default_target = match req.targets.as_slice() {
            [only] => Some(only.to_string()),
            _ => None,
        };
        let mut out = Collector {
            scanner: name,
            tx: &findings,
            default_target: default_target.as_deref(),
            rejected: Rejections::default(),
        };
        let stdout = self
            .read_report(&mut running.stdout, Some(&output), &mut out)
            .await?;
        running.finish().await?;
        if let Some(stdout) = stdout {
            if tokio::fs::try_exists(&output).await.unwrap_or(false) {
                if !stdout.is_empty() {
                    tracing::debug!(scanner = %name, stdout = %String::from_utf8_lossy(&stdout), "custom scanner stdout (report was written to SCANPLANE_OUTPUT)");
                }
                let read_err = |e| ScanError::io(name, format!("reading {}", output.display()), e);
                let file = tokio::fs::File::open(&output).await.map_err(read_err)?;
                let mut report = tool.output(file);
                if let Some(document) = self.read_report(&mut report, None, &mut out).await? {
                    self.emit_document(&document, &mut out).await?;
                }
            } else {
                self.emit_document(&stdout, &mut out).await?;
            }
        }
        Ok(ScanOutcome {
            targets_scanned: req.targets.iter().map(Target::to_string).collect(),
            rejected: out.rejected,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_from_yaml() {
        let yaml = r#"
name: cloud-audit
command: ["/opt/audit/run", "--fast"]
env: { AUDIT_REGION: eu-west-1 }
provider: aws
timeout: 5m
output: sarif
accepts: [account, url]
image: registry.example/audit:1.2
description: Audits cloud accounts
"#;
        let c: CustomScannerConfig = serde_yaml::from_str(yaml).unwrap();
        assert_eq!(c.timeout, Some(Duration::from_secs(300)));
        assert_eq!(c.output, OutputFormat::Sarif);
        assert_eq!(c.accepts, vec![TargetKind::Account, TargetKind::Url]);
        let s = CustomScanner::new(c).unwrap();
        assert_eq!(s.definition().kind_str(), "custom");
        assert_eq!(s.definition().provider.as_deref(), Some("aws"));

        let minimal: CustomScannerConfig =
            serde_yaml::from_str("name: x\ncommand: [/bin/true]\n").unwrap();
        assert_eq!(minimal.output, OutputFormat::ScanplaneJson);
        assert_eq!(minimal.accepts.len(), 8);
        assert_eq!(minimal.timeout, None);

        for (bad, why) in [
            ("name: x\ncommand: [a]\ntimeout: soon\n", "duration"),
            (
                "name: x\ncommand: [a]\noutput: xml\n",
                "unknown output format",
            ),
            (
                "name: x\ncommand: [a]\naccepts: [planet]\n",
                "unknown target kind",
            ),
            ("name: x\ncommand: [a]\ncolour: red\n", "unknown field"),
        ] {
            let e = serde_yaml::from_str::<CustomScannerConfig>(bad).unwrap_err();
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
        for bad in [
            "name: Bad Name\ncommand: [a]\n",
            "name: x\ncommand: []\n",
            "name: x\ncommand: [a]\nenv: {BILLING: 'true'}\n",
            "name: x\ncommand: [a]\naccepts: []\n",
        ] {
            let c: CustomScannerConfig = serde_yaml::from_str(bad).unwrap();
            assert!(CustomScanner::new(c).is_err(), "{bad}");
        }
    }

    #[test]
    fn environment_contract() {
        let req = RunRequest {
            scan_id: "run-1".into(),
            targets: vec![
                Target::parse("account://111").unwrap(),
                Target::parse("example.com").unwrap(),
                Target::parse("account://222").unwrap(),
            ],
            billing: true,
            options: serde_json::Value::Null,
            work_dir: PathBuf::from("/w"),
            timeout: Duration::from_secs(1),
        };
        let env: BTreeMap<String, String> = scan_env(&req, Path::new("/w/out.json"))
            .into_iter()
            .collect();
        assert_eq!(env["ACCOUNT_IDS"], "111,222");
        assert_eq!(env["TARGETS"], "account://111,example.com,account://222");
        assert_eq!(
            env["SCANPLANE_TARGETS"],
            "account://111\nexample.com\naccount://222"
        );
        assert_eq!(env["BILLING"], "true");
        assert_eq!(env["SCANPLANE_OPTIONS"], "{}");
        assert_eq!(env["SCAN_RUN_ID"], "run-1");
        assert_eq!(env["SCANPLANE_OUTPUT"], "/w/out.json");
        assert_eq!(env.len(), RESERVED_ENV.len());
    }
}
