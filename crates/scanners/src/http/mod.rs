//! The built-in `http` scanner: passive checks of a web application's response headers,
//! well-known sensitive files, and its TLS certificate, written in pure Rust.
//!
//! Targets are URLs. Options: `request_timeout` (per request, default `10s`),
//! `check_paths` (probe sensitive paths, default true), `check_tls` (inspect the
//! certificate of https targets, default true).
//!
//! Checks and severities (rule id → severity):
//! - headers of the target URL's response (after up to 5 redirects):
//!   `missing-strict-transport-security` (https only) → medium,
//!   `missing-content-security-policy` → low, `missing-x-content-type-options` → low
//!   (also when the value is not `nosniff`), `missing-clickjacking-protection` (neither
//!   `X-Frame-Options` nor a CSP `frame-ancestors`) → low, `missing-referrer-policy` → info;
//! - version disclosure: `version-disclosure-server` / `version-disclosure-x-powered-by`
//!   when the header carries a version number → low;
//! - sensitive paths at the origin's root, reported only when the body has the file's
//!   tell-tale content (a 200 with a generic page is not enough): `exposed-git-repository`
//!   (`/.git/HEAD` with `ref:` or a commit id, `/.git/config` with `[core]`) → high,
//!   `exposed-env-file` (`/.env` with `KEY=VALUE` lines) → high, `exposed-htpasswd` → high,
//!   `exposed-actuator-env` (`/actuator/env` with `propertySources`) → high,
//!   `exposed-server-status` (Apache mod_status) → medium, `exposed-phpinfo` → medium,
//!   `exposed-ds-store` (`/.DS_Store` with the `Bud1` magic) → low;
//! - TLS certificate of https targets (fetched with a verifier that accepts anything, so a
//!   broken certificate can be inspected rather than just failing the connection):
//!   `tls-certificate-expired` → high, `tls-certificate-not-yet-valid` → high,
//!   `tls-certificate-hostname-mismatch` → high, `tls-certificate-expiring` (within
//!   [`EXPIRY_WARNING_DAYS`] days) → medium, `tls-certificate-self-signed` → medium.
//!
//! Every finding carries its evidence (header values, the start of the matching body, the
//! certificate's subject and dates) in its detail.
//!
//! Fingerprint recipe: `fingerprint("http", [rule id, normalize_url(url)])` where url is the
//! target URL for header checks, the probed URL for paths, and the origin for TLS checks.
//!
//! One module per check family: `headers`, `sensitive_paths` and `tls`; the requests
//! they share are in `request`.

mod headers;
mod request;
mod sensitive_paths;
mod tls;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use scanplane_core::finding::{fingerprint, normalize_url, Finding, Severity};
use scanplane_core::scanner::{ScannerDef, ScannerKind};
use scanplane_core::target::{Target, TargetKind};
use tokio::sync::mpsc;

use crate::error::{ScanError, ValidationError};
use crate::options::Options;
use crate::registry::Component;
use crate::{adapter_def, check_target_kinds, emit, RunRequest, ScanOutcome, Scanner};

pub use headers::check_headers;
pub use sensitive_paths::{check_path, SensitivePath, SENSITIVE_PATHS};
pub use tls::{check_certificate, EXPIRY_WARNING_DAYS};

pub const NAME: &str = "http";
const OPTIONS: &[&str] = &["request_timeout", "check_paths", "check_tls"];
/// The options that change what is checked (the rest only how long it may take).
const SCOPE_OPTIONS: &[&str] = &["check_paths", "check_tls"];
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One finding before it is tied to a target: what the pure check functions return.
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    pub rule_id: &'static str,
    pub severity: Severity,
    pub title: String,
    pub evidence: String,
}

fn issue(rule_id: &'static str, severity: Severity, title: &str, evidence: String) -> Issue {
    Issue {
        rule_id,
        severity,
        title: title.to_string(),
        evidence,
    }
}

/// The registry entry of this scanner (see [`crate::BUILTIN`]).
pub const COMPONENT: Component = Component {
    build: || Arc::new(HttpScanner::new()),
    parser: None,
};

/// The built-in HTTP scanner.
pub struct HttpScanner {
    def: ScannerDef,
}

impl Default for HttpScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpScanner {
    pub fn new() -> Self {
        HttpScanner {
            def: adapter_def(
                NAME,
                "HTTP security headers, version disclosure, exposed files and TLS certificate checks (built in)",
                ScannerKind::Builtin,
                vec![TargetKind::Url],
                OPTIONS,
                SCOPE_OPTIONS,
            ),
        }
    }
}

struct Settings {
    request_timeout: Duration,
    check_paths: bool,
    check_tls: bool,
}

fn settings(options: &serde_json::Value) -> Result<Settings, ValidationError> {
    let o = Options::parse(NAME, options, OPTIONS)?;
    Ok(Settings {
        request_timeout: o
            .duration("request_timeout", Duration::from_secs(300))?
            .unwrap_or(DEFAULT_REQUEST_TIMEOUT),
        check_paths: o.boolean("check_paths")?.unwrap_or(true),
        check_tls: o.boolean("check_tls")?.unwrap_or(true),
    })
}

fn finding(target: &str, url: &str, i: Issue) -> Finding {
    let location = normalize_url(url);
    let mut f = Finding::new(
        NAME,
        target,
        i.rule_id,
        i.severity,
        i.title,
        location.clone(),
    )
    .with_detail(i.evidence);
    f.fingerprint = fingerprint(NAME, &[i.rule_id, &location]);
    f
}

/// Why a target was not scanned to the end.
enum TargetError {
    /// The target could not be scanned; other targets still are.
    Unreachable(String),
    /// The scan must stop (nobody receives findings any more).
    Stop(ScanError),
}

impl From<ScanError> for TargetError {
    fn from(e: ScanError) -> Self {
        TargetError::Stop(e)
    }
}

async fn scan_url(
    target: &str,
    s: &Settings,
    main: &reqwest::Client,
    probe: &reqwest::Client,
    tx: &mpsc::Sender<Finding>,
) -> Result<(), TargetError> {
    let unreachable = TargetError::Unreachable;
    let url = reqwest::Url::parse(target).map_err(|e| unreachable(format!("invalid URL: {e}")))?;
    let resp = main
        .get(url.clone())
        .send()
        .await
        .map_err(|e| unreachable(format!("request failed: {e}")))?;
    let final_https = resp.url().scheme() == "https";
    for i in check_headers(resp.headers(), final_https) {
        emit(NAME, tx, finding(target, target, i)).await?;
    }
    drop(resp);
    if s.check_paths {
        for (probed, i) in sensitive_paths::probe(&url, probe).await {
            emit(NAME, tx, finding(target, probed.as_str(), i)).await?;
        }
    }
    if s.check_tls && url.scheme() == "https" {
        match tls::inspect(&url, s.request_timeout).await {
            Ok((origin, issues)) => {
                for i in issues {
                    emit(NAME, tx, finding(target, &origin, i)).await?;
                }
            }
            Err(e) => {
                tracing::warn!(target = %target, error = %e, "http: cannot inspect the TLS certificate")
            }
        }
    }
    Ok(())
}

#[async_trait]
impl Scanner for HttpScanner {
    fn definition(&self) -> &ScannerDef {
        &self.def
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
        let main = request::client(s.request_timeout, reqwest::redirect::Policy::limited(5))?;
        let probe = request::client(s.request_timeout, reqwest::redirect::Policy::none())?;
        let work = async {
            let mut scanned = Vec::new();
            let mut failures = Vec::new();
            for t in &req.targets {
                let Target::Url(url) = t else { continue };
                match scan_url(url, &s, &main, &probe, &findings).await {
                    Ok(()) => scanned.push(url.clone()),
                    Err(TargetError::Stop(e)) => return Err(e),
                    Err(TargetError::Unreachable(e)) => {
                        tracing::warn!(target = %url, error = %e, "http: target not scanned");
                        failures.push(format!("{url}: {e}"));
                    }
                }
            }
            if scanned.is_empty() && !failures.is_empty() {
                return Err(ScanError::Failed {
                    scanner: NAME.to_string(),
                    exit_code: None,
                    stderr_tail: failures.join("\n"),
                });
            }
            Ok(ScanOutcome {
                targets_scanned: scanned,
                ..ScanOutcome::default()
            })
        };
        tokio::time::timeout(req.timeout, work)
            .await
            .unwrap_or_else(|_| {
                Err(ScanError::Timeout {
                    scanner: NAME.to_string(),
                    after: req.timeout,
                })
            })
    }
}
