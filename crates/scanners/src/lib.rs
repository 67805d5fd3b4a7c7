//! Scanner adapters for scanplane: the built-in TCP and HTTP scanners, wrappers around
//! external tools (nmap, trivy, nuclei, grype), custom commands from the configuration file,
//! and the pure parsers that turn each tool's output into [`Finding`]s.
//!
//! Every adapter implements [`Scanner`]; the [`Registry`] maps scanner names to adapters.
//! Parsers are plain synchronous functions over bytes so they can be tested against captured
//! tool output without running anything.

pub mod custom;
pub mod error;
pub mod grype;
pub mod http;
pub mod nmap;
pub mod nuclei;
mod options;
pub mod parsed;
mod process;
pub mod registry;
pub mod sarif;
pub mod scanplane_json;
pub mod tcp;
#[cfg(test)]
mod testutil;
pub mod trivy;

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use scanplane_core::finding::Finding;
use scanplane_core::scanner::{ScannerDef, ScannerKind};
use scanplane_core::target::{Target, TargetKind};
use tokio::sync::mpsc;

pub use custom::CustomScannerConfig;
pub use error::{ConfigError, ParseError, ScanError, UnknownScanner, ValidationError};
pub use parsed::{Parsed, Rejections};
pub use process::{locate_program, RECORD_MAX};
pub use registry::{Component, Registry};

/// The built-in scanners, one line each: adding a scanner is its module (which exports its
/// `COMPONENT`), its fixtures under `tests/data/<tool>/`, and a line here.
pub const BUILTIN: &[Component] = &[
    tcp::COMPONENT,
    http::COMPONENT,
    nmap::COMPONENT,
    trivy::COMPONENT,
    nuclei::COMPONENT,
    grype::COMPONENT,
];

/// Everything a scanner needs to run one scan attempt. (Not the API's `ScanRequest`, which is
/// what a client asks for; this is what a unit of work hands to its scanner.)
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The scan run id, passed to custom scanners as `SCAN_RUN_ID`.
    pub scan_id: String,
    pub targets: Vec<Target>,
    /// Whether the scan may touch billing data (passed to custom scanners as `BILLING`).
    pub billing: bool,
    /// Scanner-specific options, already checked by [`Scanner::validate`].
    pub options: serde_json::Value,
    /// A private directory the scanner may write to; external processes run in it.
    pub work_dir: PathBuf,
    /// How long the scan may take before it is stopped.
    pub timeout: Duration,
}

/// What a finished scan reports besides its findings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanOutcome {
    /// Canonical strings of the targets that were actually scanned.
    pub targets_scanned: Vec<String>,
    /// Records of the tool's output that were dropped (malformed or too large); the
    /// findings of the others were sent.
    pub rejected: Rejections,
}

/// A scanner scanplane can run.
#[async_trait]
pub trait Scanner: Send + Sync {
    fn definition(&self) -> &ScannerDef;

    /// Checks targets (kinds accepted) and options (unknown option names and bad values
    /// rejected with a message naming the option) before a scan is queued.
    fn validate(
        &self,
        targets: &[Target],
        options: &serde_json::Value,
    ) -> Result<(), ValidationError>;

    /// What this machine lacks to run the scanner at all (`scan` is `None`) or this scan of
    /// it, as one sentence saying what to install; `None` when nothing is missing. Asked
    /// when a scan is submitted to a server whose units of work run on its own machine (the
    /// local executor), so that a scan that cannot run is a 422 rather than three failed
    /// attempts.
    fn missing_here(&self, _scan: Option<(&[Target], &serde_json::Value)>) -> Option<String> {
        None
    }

    /// Runs the scan, sending findings as they are produced.
    async fn run(
        &self,
        req: &RunRequest,
        findings: mpsc::Sender<Finding>,
    ) -> Result<ScanOutcome, ScanError>;
}

/// The definition of a built-in adapter (built in or an external tool): its name,
/// description, kind, accepted targets and option names; no provider, timeout or image of
/// its own, which only custom scanners configure.
pub(crate) fn adapter_def(
    name: &str,
    description: &str,
    kind: ScannerKind,
    accepts: Vec<TargetKind>,
    options: &[&'static str],
    scope_options: &[&'static str],
) -> ScannerDef {
    ScannerDef {
        name: name.to_string(),
        description: description.to_string(),
        kind,
        provider: None,
        timeout: None,
        image: None,
        accepts,
        options: options.to_vec(),
        scope_options: Some(scope_options.to_vec()),
    }
}

/// Checks that every target is of a kind the scanner accepts; shared by all adapters.
pub(crate) fn check_target_kinds(
    def: &ScannerDef,
    targets: &[Target],
) -> Result<(), ValidationError> {
    if targets.is_empty() {
        return Err(ValidationError::NoTargets {
            scanner: def.name.clone(),
        });
    }
    for (index, t) in targets.iter().enumerate() {
        if !def.accepts(t.kind()) {
            return Err(ValidationError::Target {
                scanner: def.name.clone(),
                index,
                target: t.to_string(),
                reason: format!(
                    "{} targets are not accepted; this scanner accepts {}",
                    t.kind().as_str(),
                    def.accepts
                        .iter()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
    }
    Ok(())
}

/// Refuses network ranges of more than `max` addresses: a scanner that expands them must
/// stay bounded, and a typo like `/8` for `/28` should fail at submit, not run for days.
pub(crate) fn check_network_size(
    def: &ScannerDef,
    targets: &[Target],
    max: u128,
) -> Result<(), ValidationError> {
    for (index, t) in targets.iter().enumerate() {
        if let Target::Network(range) = t {
            if range.len() > max {
                return Err(ValidationError::Target {
                    scanner: def.name.clone(),
                    index,
                    target: t.to_string(),
                    reason: format!(
                        "the range holds {} addresses; {} scans at most {max} per target (split it into smaller ranges)",
                        if range.len() == u128::MAX {
                            "2^128".to_string()
                        } else {
                            range.len().to_string()
                        },
                        def.name
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Sends a finding to the collector; a closed channel means the receiver gave up on the
/// scan, which is reported as an error so the scanner stops doing work nobody will read.
pub(crate) async fn emit(
    scanner: &str,
    tx: &mpsc::Sender<Finding>,
    finding: Finding,
) -> Result<(), ScanError> {
    tx.send(finding).await.map_err(|_| ScanError::Cancelled {
        scanner: scanner.to_string(),
    })
}
