//! Result reporting from scanner mode: `POST /api/v1/scans/:id/report`, NDJSON, one
//! `ReportLine` per line, authenticated by the scan's own report token (valid for that scan
//! only, until it ends).
//!
//! A report is ingested in bounded memory: lines are split and parsed as chunks arrive and
//! findings are stored in batches, so a report of a million findings never sits in memory,
//! and at most one line ([`MAX_LINE`]) plus one chunk is ever buffered. Ingestion is
//! idempotent: a finding already stored for the scan (same fingerprint) is ignored, so a
//! retried chunk never duplicates.
//!
//! One bad record does not lose the others: a line that is too long (whatever the chunking),
//! is not UTF-8 or not a valid line, or a finding without target or rule, is counted,
//! skipped, and reported back (`rejected`, the first `MAX_REJECTIONS` reasons naming their
//! lines), while the valid findings of the same request are stored. NUL characters in a
//! finding's strings are replaced with U+FFFD (and counted as `sanitized`), so both backends
//! store the same thing. Structural errors stay errors: anything after the final line, or a
//! final line of another scan.

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use futures::StreamExt;
use scanplane_core::finding::{fingerprint, Finding, Severity};
use scanplane_core::scan::Scan;
use scanplane_core::scan::Trigger;
use scanplane_core::secret;
use scanplane_protocol::registry::{
    pipeline_provider, DiscoveryOptions, DISCOVERY_SCANNER, SBOM_SCANNER,
};
use scanplane_protocol::report::{
    ReportAccepted, ReportLine, CHUNK_HEADER, MAX_LINE, MAX_REJECTIONS,
};
use scanplane_store::{NewImage, NewScan, ReportChunk, ScanChange};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::hash_token;
use crate::error::{self, ApiError, ErrorBody};
use crate::extract::AppPath;
use crate::AppState;

/// Findings stored per transaction while a report streams in.
const BATCH: usize = 2000;

fn line_error(n: u64, problem: impl std::fmt::Display) -> ApiError {
    ApiError::invalid(&format!("line {n}"), problem)
}

/// What a [`LineSplitter`] hands on.
#[derive(Debug, PartialEq, Eq)]
pub enum LineEvent<'a> {
    /// A complete line (1-based number, without its `\n` and a trailing `\r`).
    Line(u64, &'a [u8]),
    /// A line longer than [`MAX_LINE`]; its bytes were dropped as they came.
    TooLong(u64),
}

/// Splits a byte stream into lines, holding at most one line of [`MAX_LINE`] bytes: the
/// length of a line is counted across chunks, so whether a line is too long does not depend
/// on how it was chunked, and an overlong line is dropped without being buffered.
#[derive(Debug, Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
    /// The current line is already too long: drop its bytes up to the next newline.
    overlong: bool,
    line: u64,
}

impl LineSplitter {
    /// Feeds one chunk, calling `on` for every line it completes.
    pub fn feed<E>(
        &mut self,
        mut chunk: &[u8],
        on: &mut impl FnMut(LineEvent<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        while let Some(pos) = chunk.iter().position(|b| *b == b'\n') {
            let head = &chunk[..pos];
            chunk = &chunk[pos + 1..];
            self.line += 1;
            let complete = if self.overlong || self.partial.len() + head.len() > MAX_LINE + 1 {
                None
            } else if self.partial.is_empty() {
                Some(head)
            } else {
                self.partial.extend_from_slice(head);
                Some(self.partial.as_slice())
            };
            let event = match complete.map(|l| l.strip_suffix(b"\r").unwrap_or(l)) {
                Some(l) if l.len() <= MAX_LINE => LineEvent::Line(self.line, l),
                _ => LineEvent::TooLong(self.line),
            };
            let result = on(event);
            self.partial.clear();
            self.overlong = false;
            result?;
        }
        if !self.overlong {
            // One byte of room for a `\r` that ends the line.
            if self.partial.len() + chunk.len() > MAX_LINE + 1 {
                self.overlong = true;
                self.partial = Vec::new();
            } else {
                self.partial.extend_from_slice(chunk);
            }
        }
        Ok(())
    }

    /// Ends the stream: a last line without a newline is handed on.
    pub fn finish<E>(
        &mut self,
        on: &mut impl FnMut(LineEvent<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.overlong {
            self.overlong = false;
            self.line += 1;
            return on(LineEvent::TooLong(self.line));
        }
        if self.partial.is_empty() {
            return Ok(());
        }
        self.line += 1;
        let partial = std::mem::take(&mut self.partial);
        let l = partial.strip_suffix(b"\r").unwrap_or(&partial);
        if l.len() > MAX_LINE {
            on(LineEvent::TooLong(self.line))
        } else {
            on(LineEvent::Line(self.line, l))
        }
    }
}

/// Replaces NUL characters; whether there were any.
fn sanitize(s: &mut String) -> bool {
    if s.contains('\0') {
        *s = s.replace('\0', "\u{FFFD}");
        true
    } else {
        false
    }
}

/// The state of one report request.
struct Ingest<'a> {
    scan: &'a Scan,
    lines: u64,
    rejected: u64,
    rejections: Vec<String>,
    sanitized: u64,
    batch: Vec<Finding>,
    /// Set when the scan is a registry discovery: the only scans that report images.
    discovery: Option<&'a DiscoveryOptions>,
    images: Vec<NewImage>,
    final_line: Option<ReportLine>,
}

/// Longest repository, tag, digest or media type an image line may carry.
const MAX_IMAGE_FIELD: usize = 512;

/// An image line as it is stored, or why it is refused.
#[allow(clippy::too_many_arguments)]
fn image_record(
    repository: String,
    tag: String,
    platform: String,
    digest: String,
    index_digest: Option<String>,
    media_type: String,
    config_digest: String,
    layers: Vec<serde_json::Value>,
    size: u64,
    created: Option<String>,
) -> Result<NewImage, String> {
    for (field, value) in [
        ("repository", &repository),
        ("tag", &tag),
        ("digest", &digest),
        ("media_type", &media_type),
    ] {
        if value.is_empty() {
            return Err(format!("{field} must be non-empty"));
        }
    }
    for (field, value) in [
        ("repository", Some(&repository)),
        ("tag", Some(&tag)),
        ("platform", Some(&platform)),
        ("digest", Some(&digest)),
        ("index_digest", index_digest.as_ref()),
        ("media_type", Some(&media_type)),
        ("config_digest", Some(&config_digest)),
        ("created", created.as_ref()),
    ] {
        if let Some(v) = value {
            if v.len() > MAX_IMAGE_FIELD || v.chars().any(char::is_control) {
                return Err(format!(
                    "{field} must be at most {MAX_IMAGE_FIELD} bytes without control characters"
                ));
            }
        }
    }
    let is_digest = |d: &str| {
        d.split_once(':').is_some_and(|(algorithm, hex)| {
            !algorithm.is_empty() && !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit())
        })
    };
    if !is_digest(&digest) {
        return Err(format!("digest {digest:?} is not ALGORITHM:HEX"));
    }
    Ok(NewImage {
        repository,
        tag,
        platform,
        digest,
        index_digest,
        media_type,
        config_digest,
        layers: serde_json::Value::Array(layers).to_string(),
        size: size.min(i64::MAX as u64),
        created,
    })
}

impl Ingest<'_> {
    fn reject(&mut self, n: u64, problem: impl std::fmt::Display) {
        self.rejected += 1;
        if self.rejections.len() < MAX_REJECTIONS {
            self.rejections.push(format!("line {n}: {problem}"));
        }
    }

    fn on(&mut self, event: LineEvent<'_>) -> Result<(), ApiError> {
        let (n, raw) = match event {
            LineEvent::Line(_, raw) if raw.iter().all(u8::is_ascii_whitespace) => return Ok(()),
            LineEvent::Line(n, raw) => (n, Some(raw)),
            LineEvent::TooLong(n) => (n, None),
        };
        self.lines += 1;
        if self.final_line.is_some() {
            return Err(line_error(n, "nothing may follow the final line"));
        }
        let Some(raw) = raw else {
            self.reject(n, format!("longer than {MAX_LINE} bytes"));
            return Ok(());
        };
        let line: ReportLine = match serde_json::from_slice(raw) {
            Ok(l) => l,
            Err(e) => {
                let problem = match std::str::from_utf8(raw) {
                    Err(_) => "not UTF-8".to_string(),
                    Ok(_) => format!("not a report line: {e}"),
                };
                self.reject(n, problem);
                return Ok(());
            }
        };
        match line {
            ReportLine::Finding {
                mut target,
                mut rule_id,
                mut severity,
                mut title,
                mut location,
                mut detail,
                fingerprint: mut fp,
            } => {
                let mut had_nul = false;
                for s in [
                    &mut target,
                    &mut rule_id,
                    &mut severity,
                    &mut title,
                    &mut location,
                    &mut detail,
                ] {
                    had_nul |= sanitize(s);
                }
                if let Some(f) = fp.as_mut() {
                    had_nul |= sanitize(f);
                }
                if rule_id.is_empty() || target.is_empty() {
                    self.reject(n, "target and rule_id must be non-empty");
                    return Ok(());
                }
                if fp
                    .as_deref()
                    .is_some_and(|f| f.len() > 256 || f.chars().any(char::is_control))
                {
                    self.reject(
                        n,
                        "fingerprint must be at most 256 characters without control characters",
                    );
                    return Ok(());
                }
                if had_nul {
                    self.sanitized += 1;
                }
                // A secret a scanner found is masked before anything keeps it, whatever
                // scanner printed it (a custom one may not mask).
                for s in [&mut title, &mut location, &mut detail] {
                    if let Cow::Owned(masked) = secret::mask(s) {
                        *s = masked;
                    }
                }
                let severity = severity
                    .parse::<Severity>()
                    .unwrap_or_else(|_| Severity::normalize(&severity));
                let fingerprint = fp.filter(|f| !f.is_empty()).unwrap_or_else(|| {
                    fingerprint(&self.scan.scanner, &[&target, &rule_id, &location])
                });
                self.batch.push(Finding {
                    target,
                    rule_id,
                    severity,
                    title,
                    location,
                    detail,
                    fingerprint,
                });
            }
            ReportLine::Image {
                repository,
                tag,
                platform,
                digest,
                index_digest,
                media_type,
                config_digest,
                layers,
                size,
                created,
            } => {
                if self.discovery.is_none() {
                    self.reject(n, "image lines come only from a registry discovery");
                    return Ok(());
                }
                match image_record(
                    repository,
                    tag,
                    platform,
                    digest,
                    index_digest,
                    media_type,
                    config_digest,
                    layers,
                    size,
                    created,
                ) {
                    Ok(image) => self.images.push(image),
                    Err(problem) => self.reject(n, problem),
                }
            }
            ReportLine::Final {
                mut scan_run_id,
                mut status,
                mut targets_scanned,
                mut accounts_scanned,
                duration_seconds,
                mut error,
                findings_rejected,
                mut rejections,
                stats,
            } => {
                sanitize(&mut scan_run_id);
                sanitize(&mut status);
                for s in targets_scanned
                    .iter_mut()
                    .chain(accounts_scanned.iter_mut())
                    .chain(rejections.iter_mut())
                    .chain(error.iter_mut())
                {
                    sanitize(s);
                    if let Cow::Owned(masked) = secret::mask(s) {
                        *s = masked;
                    }
                }
                self.final_line = Some(ReportLine::Final {
                    scan_run_id,
                    status,
                    targets_scanned,
                    accounts_scanned,
                    duration_seconds,
                    error,
                    findings_rejected,
                    rejections,
                    stats,
                });
            }
        }
        Ok(())
    }
}

async fn store_batch(
    state: &AppState,
    scan: &Scan,
    batch: &mut Vec<Finding>,
) -> Result<u64, ApiError> {
    let taken = std::mem::take(batch);
    let mut by_severity: std::collections::HashMap<Severity, u64> = Default::default();
    for f in &taken {
        *by_severity.entry(f.severity).or_default() += 1;
    }
    let n = state
        .store
        .insert_findings(
            &scan.tenant_id,
            &scan.id,
            &scan.scanner,
            &taken,
            state.clock.now(),
        )
        .await?;
    if n > 0 {
        for (sev, count) in by_severity {
            // Only new findings count; with a partial retry the split is approximate.
            state.metrics.finding(sev.as_str(), count.min(n));
        }
    }
    Ok(n)
}

/// Records a discovery's images; the count is reported as `inserted`.
async fn store_images(
    state: &AppState,
    scan: &Scan,
    discovery: Option<&DiscoveryOptions>,
    images: &mut Vec<NewImage>,
) -> Result<u64, ApiError> {
    let taken = std::mem::take(images);
    let Some(options) = discovery else {
        return Ok(0);
    };
    Ok(state
        .store
        .record_images(scan, &options.registry_id, &taken, state.clock.now())
        .await?)
}

/// The SBOM generation a discovery queues for a digest it found with none.
fn sbom_scan(scan: &Scan, options: &DiscoveryOptions, repository: &str, digest: &str) -> NewScan {
    // The discovery's target is `registry://HOST[:PORT]`; the SBOM unit pulls HOST/REPO@DIGEST.
    let host = scan
        .targets
        .first()
        .and_then(|t| t.strip_prefix("registry://"))
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_string();
    let targets = vec![format!("image://{host}/{repository}@{digest}")];
    NewScan {
        tenant_id: scan.tenant_id.clone(),
        project_id: scan.project_id.clone(),
        schedule_id: None,
        fire_time: None,
        trigger: Trigger::Pipeline,
        scanner: SBOM_SCANNER.to_string(),
        // Pulls count against the registry's rate limit, like its discoveries.
        provider: pipeline_provider(SBOM_SCANNER, &targets),
        targets,
        billing: false,
        options: serde_json::json!({"registry_id": options.registry_id, "digest": digest})
            .to_string(),
        scope_options: "{}".to_string(),
        on_maintenance: scanplane_core::maintenance::WindowAction::Hold,
    }
}

/// The scan whose live report token authorizes this request: every endpoint a unit of work
/// calls authenticates this way.
pub(crate) async fn scan_of_report_token(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
) -> Result<Scan, ApiError> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::unauthorized("Authorization: expected Bearer <report token>"))?;
    state
        .store
        .scan_for_report_token(&hash_token(token.trim()))
        .await?
        .filter(|s| s.id == id)
        .ok_or_else(|| ApiError::unauthorized(format!("Authorization: not a live report token of scan {id} (it expires when the scan ends)")))
}

/// Accepts a chunk of a scan's report, authenticated by the scan's own token.
#[utoipa::path(post, path = "/api/v1/scans/{id}/report", tag = "scans",
    params(("id" = String, Path, description = "Scan id"),
        ("scanplane-report-chunk" = Option<u64>, Header, description = "The chunk's number within the attempt (0, 1, 2, ...); a retry sends the same number, so the lines it refused are counted once")),
    security(("report_token" = [])),
    request_body(content = ReportLine, content_type = "application/x-ndjson",
        description = "Newline-delimited JSON: one ReportLine object per line, findings first and one `final` line last. Each line is at most 1 MiB."),
    responses((status = 200, body = ReportAccepted, description = "Stored; `rejected` lines were skipped, each reason names its line"),
        (status = 400, body = ErrorBody, description = "The body could not be read"),
        (status = 401, body = ErrorBody, description = "Not a live report token of this scan"),
        (status = 408, body = ErrorBody, description = "The body stopped arriving for longer than the server waits"),
        (status = 409, body = ErrorBody, description = "The scan cannot take this final status now"),
        (status = 422, body = ErrorBody, description = "Something follows the final line, or the final line is of another scan or has an unknown status"),
        error::Common))]
pub async fn report(
    State(state): State<Arc<AppState>>,
    AppPath(id): AppPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ReportAccepted>, ApiError> {
    let scan = scan_of_report_token(&state, &headers, &id).await?;

    let chunk = match headers.get(CHUNK_HEADER) {
        None => None,
        Some(v) => {
            let n = v
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|n| i64::try_from(*n).is_ok())
                .ok_or_else(|| {
                    ApiError::invalid(CHUNK_HEADER, "expected a chunk number from 0 to 2^63-1")
                })?;
            Some(ReportChunk {
                attempt: scan.attempts,
                chunk: n,
            })
        }
    };

    let discovery = (scan.scanner == DISCOVERY_SCANNER)
        .then(|| serde_json::from_str::<DiscoveryOptions>(&scan.options))
        .transpose()
        // Only the registry endpoints create discoveries: their options always parse.
        .map_err(|e| ApiError::internal(format!("discovery {} options: {e}", scan.id)))?;
    let mut stream = body.into_data_stream();
    let mut splitter = LineSplitter::default();
    let mut ingest = Ingest {
        scan: &scan,
        lines: 0,
        rejected: 0,
        rejections: Vec::new(),
        sanitized: 0,
        batch: Vec::with_capacity(BATCH),
        discovery: discovery.as_ref(),
        images: Vec::new(),
        final_line: None,
    };
    let mut inserted = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::from_stream_error(&e))?;
        splitter.feed(&chunk, &mut |ev| ingest.on(ev))?;
        if ingest.batch.len() >= BATCH {
            inserted += store_batch(&state, &scan, &mut ingest.batch).await?;
        }
        if ingest.images.len() >= BATCH {
            inserted += store_images(&state, &scan, ingest.discovery, &mut ingest.images).await?;
        }
    }
    splitter.finish(&mut |ev| ingest.on(ev))?;
    if !ingest.batch.is_empty() {
        inserted += store_batch(&state, &scan, &mut ingest.batch).await?;
    }
    if !ingest.images.is_empty() {
        inserted += store_images(&state, &scan, ingest.discovery, &mut ingest.images).await?;
    }
    if ingest.rejected > 0 {
        tracing::warn!(scan_run_id = %scan.id, rejected = ingest.rejected, first = ?ingest.rejections.first(), "report lines rejected");
    }
    // What was dropped stays on the scan: lines refused here, and findings the unit itself
    // dropped (counted in its final line). A numbered chunk is counted once however often
    // it is retried; stored findings never double.
    let (unit_rejected, unit_rejections) = match &ingest.final_line {
        Some(ReportLine::Final {
            findings_rejected,
            rejections,
            ..
        }) => (*findings_rejected, rejections.clone()),
        _ => (0, Vec::new()),
    };
    let rejected_total = ingest.rejected.saturating_add(unit_rejected);
    if rejected_total > 0 {
        let reasons: Vec<String> = ingest
            .rejections
            .iter()
            .cloned()
            .chain(unit_rejections)
            .collect();
        state
            .store
            .record_rejections(&scan.id, rejected_total, &reasons, chunk, state.clock.now())
            .await?;
    }

    let mut status = scan.status;
    let final_seen = ingest.final_line.is_some();
    if let Some(ReportLine::Final {
        scan_run_id,
        status: outcome,
        targets_scanned,
        accounts_scanned,
        duration_seconds,
        error,
        stats,
        ..
    }) = ingest.final_line
    {
        if scan_run_id != scan.id {
            return Err(ApiError::invalid(
                "scan_run_id",
                format!("{scan_run_id:?} is not this scan ({})", scan.id),
            ));
        }
        let mut scanned = targets_scanned;
        scanned.extend(
            accounts_scanned
                .into_iter()
                .map(|a| format!("account://{a}")),
        );
        match outcome.as_str() {
            "success" => {
                let reason = match duration_seconds {
                    Some(d) => format!("succeeded: scanner reported success after {d:.1}s"),
                    None => "succeeded: scanner reported success".to_string(),
                };
                let change = ScanChange {
                    reason,
                    targets_scanned: Some(scanned),
                    ..Default::default()
                };
                let done = match &discovery {
                    // A discovery ends by marking what it did not see removed and queueing
                    // an SBOM for every new digest, in the transaction that ends it.
                    Some(options) => {
                        let stats = stats.map(|s| s.to_string());
                        let sbom_scan = |digest: &str, repository: &str| {
                            sbom_scan(&scan, options, repository, digest)
                        };
                        let (done, outcome) = state
                            .store
                            .complete_discovery(
                                &scan,
                                &options.registry_id,
                                &options.repositories,
                                stats.as_deref(),
                                &change,
                                &sbom_scan,
                                state.clock.now(),
                            )
                            .await?;
                        tracing::info!(scan_run_id = %scan.id, registry_id = %options.registry_id, seen = outcome.images_seen, removed = outcome.images_removed, sboms_queued = outcome.sboms_queued.len(), "discovery completed");
                        done
                    }
                    // Success folds the run into the tenant's finding identities in one
                    // transaction.
                    None => {
                        state
                            .store
                            .complete_scan(&scan.id, &change, state.clock.now())
                            .await?
                    }
                };
                state.metrics.scan_ended(
                    done.duration()
                        .map(|d| d.num_milliseconds() as f64 / 1000.0),
                );
                tracing::info!(scan_run_id = %scan.id, findings = done.findings_count, "scan succeeded");
                status = done.status;
            }
            "error" => {
                // The scanner exits non-zero next; the dispatcher then retries or fails it.
                let message = error.unwrap_or_else(|| "scanner reported an error".to_string());
                state
                    .store
                    .set_error(&scan.id, &message, state.clock.now())
                    .await?;
            }
            other => {
                return Err(ApiError::invalid(
                    "status",
                    format!("{other:?}; expected success or error"),
                ))
            }
        }
    }
    state.wake_dispatcher.notify_one();
    Ok(Json(ReportAccepted {
        lines: ingest.lines,
        inserted,
        final_seen,
        status: status.to_string(),
        rejected: ingest.rejected,
        rejections: ingest.rejections,
        sanitized: ingest.sanitized,
    }))
}

pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    // The report is read as a stream in bounded memory; the JSON body limit does not apply.
    OpenApiRouter::new()
        .routes(routes!(report))
        .layer(axum::extract::DefaultBodyLimit::disable())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every line the splitter hands on for `input` cut into `chunk`-byte pieces, as
    /// `(number, Some(text))` or `(number, None)` for a too-long line.
    fn split(input: &[u8], chunk: usize) -> Vec<(u64, Option<Vec<u8>>)> {
        let mut out = Vec::new();
        let mut on = |e: LineEvent<'_>| {
            out.push(match e {
                LineEvent::Line(n, l) => (n, Some(l.to_vec())),
                LineEvent::TooLong(n) => (n, None),
            });
            Ok::<(), ()>(())
        };
        let mut s = LineSplitter::default();
        for piece in input.chunks(chunk.max(1)) {
            s.feed(piece, &mut on).unwrap();
            assert!(s.partial.len() <= MAX_LINE + 1, "buffered more than a line");
        }
        s.finish(&mut on).unwrap();
        out
    }

    #[test]
    fn lines_split_the_same_whatever_the_chunking() {
        let input = b"a\r\nbb\n\nccc";
        let want = vec![
            (1, Some(b"a".to_vec())),
            (2, Some(b"bb".to_vec())),
            (3, Some(Vec::new())),
            (4, Some(b"ccc".to_vec())),
        ];
        for chunk in [1, 2, 3, 5, 100] {
            assert_eq!(split(input, chunk), want, "chunk {chunk}");
        }
    }

    #[test]
    fn too_long_does_not_depend_on_chunking() {
        let mut input = vec![b'x'; MAX_LINE + 1];
        input.push(b'\n');
        input.extend_from_slice(&vec![b'y'; MAX_LINE]);
        input.extend_from_slice(b"\r\nok\n");
        input.extend_from_slice(&vec![b'z'; MAX_LINE + 1]);
        for chunk in [input.len(), MAX_LINE + 2, MAX_LINE, 64 * 1024, 1000] {
            let got = split(&input, chunk);
            assert_eq!(got.len(), 4, "chunk {chunk}");
            assert_eq!(
                got[0],
                (1, None),
                "1 MiB + 1 is too long in chunks of {chunk}"
            );
            assert_eq!(
                got[1].1.as_ref().map(Vec::len),
                Some(MAX_LINE),
                "exactly 1 MiB (plus CR) fits, chunk {chunk}"
            );
            assert_eq!(got[2], (3, Some(b"ok".to_vec())));
            assert_eq!(
                got[3],
                (4, None),
                "a last line without newline, chunk {chunk}"
            );
        }
    }
}
