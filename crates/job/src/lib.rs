//! Scanner mode (`scanplane job`): stateless and configured only by env vars (the contract
//! in `scanplane-protocol`), so the same binary runs as a child process, in a Kubernetes Job
//! or on a worker. It runs one scan attempt and streams its findings and final summary
//! (status, targets and accounts scanned, duration, `scan_run_id`) to the control plane
//! through the report endpoint. Chunks are retried with backoff until the deadline, which is safe
//! because the server ignores findings it already has; a server restart mid-report costs
//! nothing.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use scanplane_core::finding::Finding;
use scanplane_core::target::Target;
use scanplane_protocol::env::{self, UnitEnv};
use scanplane_protocol::report::{ReportLine, CONTENT_TYPE};
use scanplane_scanners::{Registry, RunRequest};
use tokio::sync::mpsc;

/// Findings per report request.
const CHUNK: usize = 5000;
/// Longest time findings wait before they are sent.
const FLUSH_EVERY: Duration = Duration::from_secs(2);
/// Extra time after the scan's own timeout during which reports are still retried.
const REPORT_SLACK: Duration = Duration::from_secs(120);

/// Failures of scanner mode, each with its exit code.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("scanner {scanner} failed: {message}")]
    Scan { scanner: String, message: String },
    #[error("reporting to {url} failed: {message}")]
    Report { url: String, message: String },
}

impl JobError {
    pub fn exit_code(&self) -> i32 {
        match self {
            JobError::Scan { .. } => 1,
            JobError::Config(_) => 2,
            JobError::Report { .. } => 3,
        }
    }
}

/// Everything scanner mode is told, from env vars.
#[derive(Debug, Clone)]
pub struct JobConfig {
    pub scan_id: String,
    pub server_url: String,
    pub report_token: String,
    pub scanner: String,
    pub targets: Vec<String>,
    pub billing: bool,
    pub options: serde_json::Value,
    pub timeout: Duration,
    pub work_dir: PathBuf,
}

impl JobConfig {
    /// Reads the configuration from an env lookup (the process env in production).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, JobError> {
        let unit = UnitEnv::from_lookup(&get).map_err(|e| JobError::Config(e.to_string()))?;
        let report_token = get(env::REPORT_TOKEN)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| JobError::Config(format!("{} is not set", env::REPORT_TOKEN)))?;
        let options = serde_json::from_str(&unit.options)
            .map_err(|e| JobError::Config(format!("{}: {e}", env::OPTIONS)))?;
        Ok(JobConfig {
            scan_id: unit.scan_id,
            server_url: unit.server_url,
            report_token,
            scanner: unit.scanner,
            targets: unit.targets,
            billing: unit.billing,
            options,
            timeout: unit.timeout,
            work_dir: std::env::current_dir()
                .map_err(|e| JobError::Config(format!("working directory: {e}")))?,
        })
    }
}

/// Sends report chunks with retries until a deadline.
struct Reporter {
    client: reqwest::Client,
    url: String,
    token: String,
    deadline: Instant,
    final_sent_once: bool,
}

impl Reporter {
    async fn send(&mut self, body: Vec<u8>, is_final: bool) -> Result<(), JobError> {
        let mut backoff = Duration::from_millis(200);
        let body = bytes::Bytes::from(body);
        loop {
            let attempt = self
                .client
                .post(&self.url)
                .bearer_auth(&self.token)
                .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
                .body(body.clone())
                .send()
                .await;
            let retry_reason = match attempt {
                Ok(resp) if resp.status().is_success() => {
                    if is_final {
                        self.final_sent_once = true;
                    }
                    return Ok(());
                }
                Ok(resp)
                    if resp.status() == reqwest::StatusCode::UNAUTHORIZED
                        && is_final
                        && self.final_sent_once =>
                {
                    // The final report landed before and ended the scan, which expired the token.
                    return Ok(());
                }
                Ok(resp) if resp.status().is_client_error() => {
                    let status = resp.status();
                    let text = resp.text().await.unwrap_or_default();
                    return Err(JobError::Report {
                        url: self.url.clone(),
                        message: format!("{status}: {text}"),
                    });
                }
                Ok(resp) => format!("server answered {}", resp.status()),
                Err(e) => format!("{e}"),
            };
            if is_final {
                // A final report whose answer was lost may have landed: a retry that is then
                // refused for an expired token means it did.
                self.final_sent_once = true;
            }
            if Instant::now() + backoff > self.deadline {
                return Err(JobError::Report {
                    url: self.url.clone(),
                    message: format!("gave up at the deadline: {retry_reason}"),
                });
            }
            tracing::warn!(reason = %retry_reason, retry_in = ?backoff, "report chunk not accepted; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    }
}

fn encode_findings(findings: &[Finding]) -> Vec<u8> {
    let mut out = Vec::with_capacity(findings.len() * 200);
    for f in findings {
        let line = ReportLine::Finding {
            target: f.target.clone(),
            rule_id: f.rule_id.clone(),
            severity: f.severity.as_str().to_string(),
            title: f.title.clone(),
            location: f.location.clone(),
            detail: f.detail.clone(),
            fingerprint: Some(f.fingerprint.clone()),
        };
        // A finding that cannot be encoded (never happens for strings) is skipped, not fatal.
        let _ = line.encode_into(&mut out);
    }
    out
}

/// Runs the scan and reports it. Returns the number of findings reported.
pub async fn run(config: JobConfig, registry: Arc<Registry>) -> Result<u64, JobError> {
    let started = Instant::now();
    let scanner = registry
        .lookup(&config.scanner)
        .map_err(|e| JobError::Config(e.to_string()))?;
    let targets: Vec<Target> = config
        .targets
        .iter()
        .map(|t| Target::parse(t).map_err(|e| JobError::Config(format!("target {t:?}: {e}"))))
        .collect::<Result<_, _>>()?;
    tracing::info!(scan_run_id = %config.scan_id, scanner = %config.scanner, targets = targets.len(), timeout = ?config.timeout, "scan starting");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| JobError::Config(format!("HTTP client: {e}")))?;
    let mut reporter = Reporter {
        client,
        url: format!(
            "{}/api/v1/scans/{}/report",
            config.server_url, config.scan_id
        ),
        token: config.report_token.clone(),
        deadline: started + config.timeout + REPORT_SLACK,
        final_sent_once: false,
    };

    let (tx, mut rx) = mpsc::channel::<Finding>(CHUNK * 2);
    let request = RunRequest {
        scan_id: config.scan_id.clone(),
        targets,
        billing: config.billing,
        options: config.options.clone(),
        work_dir: config.work_dir.clone(),
        timeout: config.timeout,
    };
    let scan_task = {
        let scanner = scanner.clone();
        tokio::spawn(async move { scanner.run(&request, tx).await })
    };

    let mut pending: Vec<Finding> = Vec::with_capacity(CHUNK);
    let mut reported = 0u64;
    let mut last_flush = Instant::now();
    loop {
        let next = tokio::time::timeout(FLUSH_EVERY, rx.recv()).await;
        let closed = matches!(next, Ok(None));
        if let Ok(Some(f)) = next {
            pending.push(f);
        }
        if pending.len() >= CHUNK
            || (!pending.is_empty() && (closed || last_flush.elapsed() >= FLUSH_EVERY))
        {
            let body = encode_findings(&pending);
            reporter.send(body, false).await?;
            reported += pending.len() as u64;
            pending.clear();
            last_flush = Instant::now();
        }
        if closed {
            break;
        }
    }

    let outcome = scan_task.await.map_err(|e| JobError::Scan {
        scanner: config.scanner.clone(),
        message: format!("scanner task panicked: {e}"),
    })?;
    let duration_seconds = started.elapsed().as_secs_f64();
    let (status, scanned, error) = match &outcome {
        Ok(o) => ("success", o.targets_scanned.clone(), None),
        Err(e) => ("error", Vec::new(), Some(e.to_string())),
    };
    let (accounts, others): (Vec<String>, Vec<String>) = scanned
        .into_iter()
        .partition(|t| t.starts_with("account://"));
    let final_line = ReportLine::Final {
        scan_run_id: config.scan_id.clone(),
        status: status.to_string(),
        targets_scanned: others,
        accounts_scanned: accounts
            .iter()
            .map(|a| a.trim_start_matches("account://").to_string())
            .collect(),
        duration_seconds: Some(duration_seconds),
        error: error.clone(),
        findings_rejected: 0,
        rejections: Vec::new(),
    };
    let mut body = Vec::new();
    final_line
        .encode_into(&mut body)
        .map_err(|e| JobError::Config(e.to_string()))?;
    reporter.send(body, true).await?;
    tracing::info!(scan_run_id = %config.scan_id, status, findings = reported, duration_seconds, "scan finished");
    match outcome {
        Ok(_) => Ok(reported),
        Err(e) => Err(JobError::Scan {
            scanner: config.scanner,
            message: e.to_string(),
        }),
    }
}

/// Dies with the control-plane process that started this one (local executor), so a killed
/// `serve` leaves no scanner behind. Scanner children are stopped by the next start's
/// recovery, which finds them by their environment.
pub fn die_with_parent() {
    if let Some(parent) = std::env::var("SCANPLANE_PARENT_PID")
        .ok()
        .and_then(|p| p.parse::<i32>().ok())
    {
        if nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).is_ok()
            && nix::unistd::getppid().as_raw() != parent
        {
            // The parent died before the request took effect.
            std::process::exit(137);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn config_from_env() {
        let c = JobConfig::from_lookup(lookup(&[
            ("SCANPLANE_SCAN_ID", "s1"),
            ("SCANPLANE_SERVER_URL", "http://127.0.0.1:8080/"),
            ("SCANPLANE_REPORT_TOKEN", "t"),
            ("SCANPLANE_SCANNER", "tcp"),
            ("SCANPLANE_TARGETS", "127.0.0.1:22\naccount://42\n"),
            ("BILLING", "true"),
            ("SCANNER_TIMEOUT", "5m"),
            ("SCANPLANE_OPTIONS", "{\"ports\":\"22\"}"),
        ]))
        .unwrap();
        assert_eq!(c.server_url, "http://127.0.0.1:8080");
        assert_eq!(c.targets, vec!["127.0.0.1:22", "account://42"]);
        assert!(c.billing);
        assert_eq!(c.timeout, Duration::from_secs(300));
        assert_eq!(c.options["ports"], "22");
    }

    #[test]
    fn config_errors_name_the_variable() {
        let e = JobConfig::from_lookup(lookup(&[("SCANPLANE_SCAN_ID", "s1")])).unwrap_err();
        assert!(e.to_string().contains("SCANPLANE_SERVER_URL"), "{e}");
        let e = JobConfig::from_lookup(lookup(&[
            ("SCANPLANE_SCAN_ID", "s1"),
            ("SCANPLANE_SERVER_URL", "http://x"),
            ("SCANPLANE_REPORT_TOKEN", "t"),
            ("SCANPLANE_SCANNER", "tcp"),
            ("BILLING", "yes"),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("BILLING"), "{e}");
        assert_eq!(e.exit_code(), 2);
    }
}
