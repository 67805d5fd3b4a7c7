//! Scanner definitions: which tools exist, what they accept, and which provider's rate
//! limit they count against.

use std::time::Duration;

use crate::target::TargetKind;

/// How findings come back from a custom command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// scanplane's own report JSON (one object per finding, or `{"findings": [...]}`).
    ScanplaneJson,
    /// SARIF 2.1.0.
    Sarif,
}

impl OutputFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            OutputFormat::ScanplaneJson => "scanplane-json",
            OutputFormat::Sarif => "sarif",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "scanplane-json" => Some(OutputFormat::ScanplaneJson),
            "sarif" => Some(OutputFormat::Sarif),
            _ => None,
        }
    }
}

/// Where a scanner's code comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScannerKind {
    /// Implemented inside scanplane; needs nothing installed.
    Builtin,
    /// A well-known tool run as a program found on `PATH` (nmap, trivy, nuclei, grype).
    External { program: String },
    /// A command (or, on Kubernetes, an image) from the configuration file that receives
    /// its targets through env vars (`TARGETS`, `ACCOUNT_IDS`, `BILLING`) and args.
    Custom {
        command: Vec<String>,
        env: Vec<(String, String)>,
        output: OutputFormat,
    },
}

/// A scanner scanplane can run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannerDef {
    pub name: String,
    pub description: String,
    pub kind: ScannerKind,
    /// Provider whose rate limit this scanner counts against (`aws`, `gcp`, ...).
    pub provider: Option<String>,
    /// Per-scanner timeout overriding `SCANNER_TIMEOUT`.
    pub timeout: Option<Duration>,
    /// Container image overriding `SCANNER_IMAGE` on Kubernetes.
    pub image: Option<String>,
    /// Target kinds the scanner accepts.
    pub accepts: Vec<TargetKind>,
    /// Option names the scanner understands; others are rejected at the API.
    pub options: Vec<&'static str>,
    /// The options that change what the scanner can report (which checks, ports,
    /// severities): runs are comparable only when these are equal, so a narrower run never
    /// marks a wider run's findings fixed. `None`: every option is scope (custom scanners,
    /// whose options scanplane cannot interpret).
    pub scope_options: Option<Vec<&'static str>>,
}

impl ScannerDef {
    pub fn kind_str(&self) -> &'static str {
        match self.kind {
            ScannerKind::Builtin => "builtin",
            ScannerKind::External { .. } => "external",
            ScannerKind::Custom { .. } => "custom",
        }
    }

    /// Whether option `name` is scope (see [`ScannerDef::scope_options`]).
    pub fn is_scope_option(&self, name: &str) -> bool {
        self.scope_options
            .as_ref()
            .is_none_or(|scope| scope.contains(&name))
    }

    pub fn accepts(&self, kind: TargetKind) -> bool {
        self.accepts.contains(&kind)
    }
}

/// Why a scanner name was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("scanner name {0:?} must be 1-63 characters of a-z, 0-9, '-' and '_'")]
pub struct InvalidScannerName(pub String);

pub fn validate_scanner_name(name: &str) -> Result<(), InvalidScannerName> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(InvalidScannerName(name.to_string()))
    }
}
