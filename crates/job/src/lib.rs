//! Scanner mode (`scanplane job`): stateless and configured only by env vars (the contract
//! in `scanplane-protocol`), so the same binary runs as a child process, in a Kubernetes Job
//! or on a worker. It runs one scan attempt and streams its findings and final summary
//! (status, targets and accounts scanned, duration, `scan_run_id`) to the control plane
//! through the report endpoint. Chunks are retried with backoff until the deadline, which is safe
//! because the server ignores findings it already has; a server restart mid-report costs
//! nothing.
//!
//! One finding never costs the others: a finding whose report line would be longer than
//! [`MAX_LINE`] has its detail cut to fit (with a marker saying so), or, if even that is too
//! long, is dropped. Both are counted, together with the records the scanner itself dropped,
//! in the final line's `findings_rejected`, with the first [`MAX_REJECTIONS`] reasons.

mod discovery;
mod sbom;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use scanplane_core::finding::Finding;
use scanplane_core::target::Target;
use scanplane_protocol::env::{self, UnitEnv};
use scanplane_protocol::report::{
    ReportLine, CHUNK_HEADER, CONTENT_TYPE, MAX_LINE, MAX_REJECTIONS,
};
use scanplane_scanners::{Registry, Rejections, RunRequest};
use tokio::sync::mpsc;

/// Findings per report request.
const CHUNK: usize = 5000;
/// Most bytes of findings per report request, so large findings are sent, and held, in
/// bounded pieces.
const CHUNK_BYTES: usize = 8 * 1024 * 1024;
/// Longest target or rule id quoted in a rejection reason.
const QUOTED_MAX: usize = 80;
/// Longest rejection reason sent; the scanner's reasons may quote its output.
const REASON_MAX: usize = 300;
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
    Scan {
        scanner: String,
        message: String,
        /// Another attempt would fail the same way (see [`ScanError::is_permanent`]).
        permanent: bool,
    },
    #[error("reporting to {url} failed: {message}")]
    Report { url: String, message: String },
}

impl JobError {
    pub fn exit_code(&self) -> i32 {
        match self {
            JobError::Scan {
                permanent: true, ..
            } => scanplane_core::lifecycle::EXIT_PERMANENT,
            JobError::Scan { .. } => 1,
            JobError::Config(_) => scanplane_core::lifecycle::EXIT_CONFIG,
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
    /// The number the next chunk is sent with; retries repeat it.
    next_chunk: u64,
}

fn http_client() -> Result<reqwest::Client, JobError> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| JobError::Config(format!("HTTP client: {e}")))
}

impl Reporter {
    /// The reporter of the unit `config` describes, started at `started`.
    fn new(config: &JobConfig, client: reqwest::Client, started: Instant) -> Reporter {
        Reporter {
            client,
            url: format!(
                "{}/api/v1/scans/{}/report",
                config.server_url, config.scan_id
            ),
            token: config.report_token.clone(),
            deadline: started + config.timeout + REPORT_SLACK,
            final_sent_once: false,
            next_chunk: 0,
        }
    }

    async fn send(&mut self, body: Vec<u8>, is_final: bool) -> Result<(), JobError> {
        let mut backoff = Duration::from_millis(200);
        let body = bytes::Bytes::from(body);
        let chunk = self.next_chunk.to_string();
        self.next_chunk += 1;
        loop {
            let attempt = self
                .client
                .post(&self.url)
                .bearer_auth(&self.token)
                .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
                .header(CHUNK_HEADER, &chunk)
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

fn finding_line(f: &Finding, detail: String) -> ReportLine {
    ReportLine::Finding {
        target: f.target.clone(),
        rule_id: f.rule_id.clone(),
        severity: f.severity.as_str().to_string(),
        title: f.title.clone(),
        location: f.location.clone(),
        detail,
        fingerprint: Some(f.fingerprint.clone()),
    }
}

/// How a finding went into the report.
#[derive(Debug, PartialEq, Eq)]
enum Encoded {
    AsIs,
    /// Its detail was cut from `from` to `to` bytes (plus a marker) to fit [`MAX_LINE`].
    Truncated {
        from: usize,
        to: usize,
    },
    /// It was left out: its line would be `bytes` long even without its detail.
    Dropped {
        bytes: usize,
    },
}

/// Bytes `c` takes inside a JSON string as serde_json writes it.
fn json_escaped_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        c if c < ' ' => 6,
        c => c.len_utf8(),
    }
}

/// The longest start of `text` that takes at most `budget` bytes inside a JSON string.
fn json_prefix(text: &str, budget: usize) -> &str {
    let mut used = 0;
    for (i, c) in text.char_indices() {
        used += json_escaped_len(c);
        if used > budget {
            return &text[..i];
        }
    }
    text
}

/// Appends `f` to `out` as one report line of at most [`MAX_LINE`] bytes (newline aside),
/// cutting its detail or leaving it out when it is too big.
fn encode_finding(f: &Finding, out: &mut Vec<u8>) -> Encoded {
    let start = out.len();
    // Appends the line with `detail`; its length without the newline, or `None` (nothing
    // appended) when it cannot be encoded, which plain strings never fail.
    let append = |out: &mut Vec<u8>, detail: String| -> Option<usize> {
        out.truncate(start);
        match finding_line(f, detail).encode_into(out) {
            Ok(()) => Some(out.len() - start - 1),
            Err(_) => {
                out.truncate(start);
                None
            }
        }
    };
    let Some(full) = append(out, f.detail.clone()) else {
        return Encoded::Dropped { bytes: 0 };
    };
    if full <= MAX_LINE {
        return Encoded::AsIs;
    }
    let marker = format!(
        " [detail cut by scanplane from {} bytes to fit a report line]",
        f.detail.len()
    );
    let bare = append(out, String::new()).unwrap_or(usize::MAX);
    let budget = MAX_LINE
        .checked_sub(bare)
        .and_then(|b| b.checked_sub(marker.chars().map(json_escaped_len).sum()));
    if let Some(budget) = budget {
        let kept = json_prefix(&f.detail, budget);
        let to = kept.len();
        if append(out, format!("{kept}{marker}")).is_some_and(|len| len <= MAX_LINE) {
            return Encoded::Truncated {
                from: f.detail.len(),
                to,
            };
        }
    }
    out.truncate(start);
    Encoded::Dropped { bytes: full }
}

/// `text` cut to `max` characters, marked when cut.
fn quoted(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// Why the `n`th finding of the scan did not go into the report as it was.
fn rejection_reason(n: u64, f: &Finding, how: &Encoded) -> Option<String> {
    let which = format!(
        "finding {n} ({} on {})",
        quoted(&f.rule_id, QUOTED_MAX),
        quoted(&f.target, QUOTED_MAX)
    );
    match how {
        Encoded::AsIs => None,
        Encoded::Truncated { from, to } => Some(format!(
            "{which}: detail cut from {from} to {to} bytes to fit a report line of {MAX_LINE} bytes"
        )),
        Encoded::Dropped { bytes } => Some(format!(
            "{which}: dropped, its report line of {bytes} bytes is longer than {MAX_LINE} even without its detail"
        )),
    }
}

/// What the final line says was rejected: the scanner's dropped records and the findings
/// this job dropped are counted; the reasons name them first, then the findings that were
/// stored with their detail cut (noted, not counted: they were not lost).
fn final_rejections(
    scanner: Option<&Rejections>,
    dropped: &Rejections,
    cut: &Rejections,
) -> (u64, Vec<String>) {
    let count = scanner.map_or(0, |r| r.count) + dropped.count;
    let reasons = scanner
        .map(|r| r.reasons.as_slice())
        .unwrap_or_default()
        .iter()
        .chain(&dropped.reasons)
        .chain(&cut.reasons)
        .take(MAX_REJECTIONS)
        .map(|r| quoted(r, REASON_MAX))
        .collect();
    (count, reasons)
}

/// Runs the scan and reports it. Returns the number of findings reported.
pub async fn run(config: JobConfig, registry: Arc<Registry>) -> Result<u64, JobError> {
    let started = Instant::now();
    if config.scanner == scanplane_protocol::registry::DISCOVERY_SCANNER {
        // A pipeline step, not a scanner of the registry: only registries create these.
        let client = http_client()?;
        let reporter = Reporter::new(&config, client.clone(), started);
        return discovery::run(config, client, reporter).await;
    }
    if config.scanner == scanplane_protocol::registry::SBOM_SCANNER {
        let client = http_client()?;
        let reporter = Reporter::new(&config, client.clone(), started);
        return sbom::run(config, client, reporter).await;
    }
    let scanner = registry
        .lookup(&config.scanner)
        .map_err(|e| JobError::Config(e.to_string()))?;
    let targets: Vec<Target> = config
        .targets
        .iter()
        .map(|t| Target::parse(t).map_err(|e| JobError::Config(format!("target {t:?}: {e}"))))
        .collect::<Result<_, _>>()?;
    tracing::info!(scan_run_id = %config.scan_id, scanner = %config.scanner, targets = targets.len(), timeout = ?config.timeout, "scan starting");
    let mut reporter = Reporter::new(&config, http_client()?, started);

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

    // Findings are encoded as they arrive, so what waits to be sent is bounded in bytes.
    let mut pending: Vec<u8> = Vec::new();
    let mut pending_count = 0usize;
    let mut received = 0u64;
    let mut reported = 0u64;
    let mut rejected = Rejections::default();
    let mut cut = Rejections::default();
    let mut last_flush = Instant::now();
    loop {
        let next = tokio::time::timeout(FLUSH_EVERY, rx.recv()).await;
        let closed = matches!(next, Ok(None));
        if let Ok(Some(f)) = next {
            received += 1;
            let how = encode_finding(&f, &mut pending);
            if !matches!(how, Encoded::Dropped { .. }) {
                pending_count += 1;
            }
            if let Some(reason) = rejection_reason(received, &f, &how) {
                tracing::warn!(scan_run_id = %config.scan_id, %reason, "finding does not fit a report line");
                if matches!(how, Encoded::Dropped { .. }) {
                    rejected.add(reason);
                } else {
                    cut.add(reason);
                }
            }
        }
        if pending_count >= CHUNK
            || pending.len() >= CHUNK_BYTES
            || (pending_count > 0 && (closed || last_flush.elapsed() >= FLUSH_EVERY))
        {
            reporter.send(std::mem::take(&mut pending), false).await?;
            reported += pending_count as u64;
            pending_count = 0;
            last_flush = Instant::now();
        }
        if closed {
            break;
        }
    }

    let outcome = scan_task.await.map_err(|e| JobError::Scan {
        scanner: config.scanner.clone(),
        message: format!("scanner task panicked: {e}"),
        permanent: false,
    })?;
    let duration_seconds = started.elapsed().as_secs_f64();
    let (status, scanned, error) = match &outcome {
        Ok(o) => ("success", o.targets_scanned.clone(), None),
        Err(e) => ("error", Vec::new(), Some(e.to_string())),
    };
    let (findings_rejected, rejections) =
        final_rejections(outcome.as_ref().ok().map(|o| &o.rejected), &rejected, &cut);
    if findings_rejected > 0 {
        tracing::warn!(scan_run_id = %config.scan_id, findings_rejected, first = ?rejections.first(), "findings rejected");
    }
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
        findings_rejected,
        rejections,
        stats: None,
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
            permanent: e.is_permanent(),
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
    use scanplane_core::finding::Severity;
    use std::collections::HashMap;

    fn finding(title: String, detail: String) -> Finding {
        Finding::new("s", "127.0.0.1", "r", Severity::Low, title, "tcp/1").with_detail(detail)
    }

    fn decode(line: &[u8]) -> ReportLine {
        assert_eq!(line.last(), Some(&b'\n'));
        let line = &line[..line.len() - 1];
        assert!(line.len() <= MAX_LINE, "{} bytes", line.len());
        serde_json::from_slice(line).unwrap()
    }

    #[test]
    fn escaped_lengths_match_serde_json() {
        let chars = (0u8..0x80)
            .map(char::from)
            .chain(['é', '€', '😀', '\u{2028}', '\u{fffd}']);
        for c in chars {
            let json = serde_json::to_string(&c.to_string()).unwrap();
            assert_eq!(json_escaped_len(c), json.len() - 2, "{c:?}");
        }
    }

    #[test]
    fn a_finding_that_fits_is_sent_as_is() {
        let f = finding("t".into(), "d".into());
        let mut out = b"earlier\n".to_vec();
        assert_eq!(encode_finding(&f, &mut out), Encoded::AsIs);
        assert_eq!(decode(&out[8..]), finding_line(&f, "d".into()));
    }

    #[test]
    fn a_too_long_detail_is_cut_to_fit_one_line() {
        // Quotes and control characters take more room escaped than raw.
        let unit = "evidence \"quoted\"\u{1} é€😀\n";
        let detail = unit.repeat(2 * MAX_LINE / unit.len());
        let f = finding("t".into(), detail.clone());
        let mut out = Vec::new();
        let how = encode_finding(&f, &mut out);
        let Encoded::Truncated { from, to } = how else {
            panic!("{how:?}")
        };
        assert_eq!(from, detail.len());
        let ReportLine::Finding {
            detail: sent,
            title,
            ..
        } = decode(&out)
        else {
            panic!("not a finding line")
        };
        assert_eq!(title, "t");
        assert!(sent.starts_with(&detail[..to]));
        assert!(
            sent.ends_with(&format!(
                "[detail cut by scanplane from {from} bytes to fit a report line]"
            )),
            "{}",
            &sent[sent.len() - 100..]
        );
        // Cut as little as possible: the line is within one escaped character of the limit.
        assert!(out.len() - 1 > MAX_LINE - 8, "{} bytes", out.len() - 1);
        assert!(rejection_reason(3, &f, &how)
            .unwrap()
            .starts_with("finding 3 (r on 127.0.0.1): detail cut from"));
    }

    #[test]
    fn a_finding_too_long_without_its_detail_is_dropped() {
        let f = finding("t".repeat(MAX_LINE + 1), "d".into());
        let mut out = b"earlier\n".to_vec();
        let how = encode_finding(&f, &mut out);
        assert!(
            matches!(how, Encoded::Dropped { bytes } if bytes > MAX_LINE),
            "{how:?}"
        );
        assert_eq!(out, b"earlier\n", "nothing of it is sent");
        assert!(rejection_reason(1, &f, &how)
            .unwrap()
            .contains("dropped, its report line of"));
    }

    #[test]
    fn the_final_line_counts_both_and_keeps_the_first_reasons() {
        let mut scanner = Rejections::default();
        for i in 0..4 {
            scanner.add(format!("line {i}: bad"));
        }
        let mut job = Rejections::default();
        job.add("x".repeat(10_000));
        job.add("finding 9: dropped");
        let mut cut = Rejections::default();
        cut.add("finding 3: detail cut");
        let (count, reasons) = final_rejections(Some(&scanner), &job, &cut);
        assert_eq!(
            count, 6,
            "a finding stored with its detail cut is not counted"
        );
        let (count, reasons_with_room) = final_rejections(None, &Rejections::default(), &cut);
        assert_eq!(count, 0);
        assert_eq!(
            reasons_with_room,
            vec!["finding 3: detail cut".to_string()],
            "but noted"
        );
        assert_eq!(reasons.len(), MAX_REJECTIONS);
        assert_eq!(reasons[0], "line 0: bad");
        assert_eq!(
            reasons[4].chars().count(),
            REASON_MAX + 1,
            "long reasons are cut"
        );
        assert_eq!(
            final_rejections(None, &Rejections::default(), &Rejections::default()),
            (0, Vec::new())
        );
    }

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

    #[tokio::test]
    async fn an_unknown_scanner_is_named_with_the_registered_ones() {
        let config = JobConfig {
            scan_id: "s".into(),
            server_url: "http://127.0.0.1:1".into(),
            report_token: "t".into(),
            scanner: "nmapp".into(),
            targets: vec!["127.0.0.1".into()],
            billing: false,
            options: serde_json::json!({}),
            timeout: Duration::from_secs(5),
            work_dir: std::env::temp_dir(),
        };
        let mut registry = Registry::empty();
        registry
            .register((scanplane_scanners::tcp::COMPONENT.build)())
            .unwrap();
        let e = run(config, Arc::new(registry)).await.unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert_eq!(
            e.to_string(),
            "configuration: unknown scanner \"nmapp\"; registered scanners: tcp"
        );
    }
}
