//! Result reporting from scanner mode (`POST /api/v1/scans/:id/report`, NDJSON) and the
//! findings of a scan (`GET /api/v1/scans/:id/findings`).
//!
//! A report is a stream of lines, each a finding or the final summary. It is ingested in
//! bounded memory: lines are parsed as they arrive and stored in batches, so a report of a
//! million findings never sits in memory. Ingestion is idempotent: a finding already stored
//! for the scan (same fingerprint) is ignored, so a retried chunk never duplicates.
//! The per-scan token authenticates one scan only and expires when the scan ends.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use futures::StreamExt;
use scanplane_core::finding::{fingerprint, Finding, Severity};
use scanplane_protocol::report::{ReportAccepted, ReportLine, MAX_LINE};
use scanplane_store::ScanChange;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::hash_token;
use crate::error::{ApiError, ErrorBody};
use crate::AppState;

/// Findings stored per transaction while a report streams in.
const BATCH: usize = 2000;

fn line_error(n: u64, problem: impl std::fmt::Display) -> ApiError {
    ApiError::invalid(&format!("line {n}"), problem)
}

/// Accepts a chunk of a scan's report, authenticated by the scan's own token.
#[utoipa::path(post, path = "/api/v1/scans/{id}/report", tag = "scans",
    request_body(content = String, content_type = "application/x-ndjson", description = "One ReportLine JSON object per line"),
    responses((status = 200, body = ReportAccepted), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn report(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ReportAccepted>, ApiError> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::unauthorized("Authorization: expected Bearer <report token>"))?;
    let scan = state
        .store
        .scan_for_report_token(&hash_token(token.trim()))
        .await?
        .filter(|s| s.id == id)
        .ok_or_else(|| ApiError::unauthorized(format!("Authorization: not a live report token of scan {id} (it expires when the scan ends)")))?;

    let mut stream = body.into_data_stream();
    let mut buf: Vec<u8> = Vec::new();
    let mut batch: Vec<Finding> = Vec::with_capacity(BATCH);
    let mut lines = 0u64;
    let mut inserted = 0u64;
    let mut final_line: Option<ReportLine> = None;

    let flush = |batch: &mut Vec<Finding>| {
        let taken = std::mem::take(batch);
        let state = state.clone();
        let scan = scan.clone();
        async move {
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
            Ok::<u64, ApiError>(n)
        }
    };

    let mut handle_line =
        |raw: &[u8], lines: &mut u64, batch: &mut Vec<Finding>| -> Result<(), ApiError> {
            let text = raw.strip_suffix(b"\r").unwrap_or(raw);
            if text.iter().all(u8::is_ascii_whitespace) {
                return Ok(());
            }
            *lines += 1;
            if final_line.is_some() {
                return Err(line_error(*lines, "nothing may follow the final line"));
            }
            let line: ReportLine =
                serde_json::from_slice(text).map_err(|e| line_error(*lines, e))?;
            match line {
                ReportLine::Finding {
                    target,
                    rule_id,
                    severity,
                    title,
                    location,
                    detail,
                    fingerprint: fp,
                } => {
                    if rule_id.is_empty() || target.is_empty() {
                        return Err(line_error(*lines, "target and rule_id must be non-empty"));
                    }
                    let severity = severity
                        .parse::<Severity>()
                        .unwrap_or_else(|_| Severity::normalize(&severity));
                    if fp
                        .as_deref()
                        .is_some_and(|f| f.len() > 256 || f.chars().any(char::is_control))
                    {
                        return Err(line_error(
                            *lines,
                            "fingerprint must be at most 256 characters without control characters",
                        ));
                    }
                    let fingerprint = fp.filter(|f| !f.is_empty()).unwrap_or_else(|| {
                        fingerprint(&scan.scanner, &[&target, &rule_id, &location])
                    });
                    batch.push(Finding {
                        target,
                        rule_id,
                        severity,
                        title,
                        location,
                        detail,
                        fingerprint,
                    });
                }
                fin @ ReportLine::Final { .. } => final_line = Some(fin),
            }
            Ok(())
        };

    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::malformed(format!("request body: {e}")))?;
        buf.extend_from_slice(&chunk);
        let mut start = 0;
        while let Some(pos) = buf[start..].iter().position(|b| *b == b'\n') {
            handle_line(&buf[start..start + pos], &mut lines, &mut batch)?;
            start += pos + 1;
            if batch.len() >= BATCH {
                inserted += flush(&mut batch).await?;
            }
        }
        buf.drain(..start);
        if buf.len() > MAX_LINE {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("line {}: longer than {MAX_LINE} bytes", lines + 1),
            ));
        }
    }
    if !buf.is_empty() {
        handle_line(&buf, &mut lines, &mut batch)?;
    }
    if !batch.is_empty() {
        inserted += flush(&mut batch).await?;
    }

    let mut status = scan.status;
    let final_seen = final_line.is_some();
    if let Some(ReportLine::Final {
        scan_run_id,
        status: outcome,
        targets_scanned,
        accounts_scanned,
        duration_seconds,
        error,
        ..
    }) = final_line
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
                // Success folds the run into the tenant's finding identities in one transaction.
                let done = state
                    .store
                    .complete_scan(&scan.id, &change, state.clock.now())
                    .await?;
                state.metrics.scan_ended(
                    "succeeded",
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
        lines,
        inserted,
        final_seen,
        status: status.to_string(),
        rejected: 0,
        rejections: Vec::new(),
    }))
}

/// A stored finding.
#[derive(Debug, Serialize, ToSchema)]
pub struct FindingView {
    pub id: String,
    pub scan_id: String,
    pub scanner: String,
    pub target: String,
    pub rule_id: String,
    pub severity: String,
    pub title: String,
    pub location: String,
    pub detail: String,
    pub fingerprint: String,
    pub created_at: String,
}

/// Page of findings.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct FindingPage {
    items: Vec<FindingView>,
    next_cursor: Option<String>,
}
