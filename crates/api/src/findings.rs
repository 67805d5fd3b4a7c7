//! Finding endpoints across runs: `GET /api/v1/findings` (identities with filters, sorting
//! and cursor pagination), `PATCH /api/v1/findings/:id` (triage), `GET
//! /api/v1/scans/:id/diff` against the previous comparable run, and the export formats of a
//! scan's findings and of a diff (`?format=json|sarif|csv`).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use scanplane_core::finding::Severity;
use scanplane_core::identity::{FindingStatus, Triage};
use scanplane_store::{FindingFilter, FindingIdentity, IdentityFilter, StoredFinding};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::report::FindingView;
use crate::scans::page_limit;
use crate::{export, fmt_ts, parse_ts, AppJson, AppQuery, AppState, Page};

/// A finding across runs: its latest attributes, lifecycle and triage.
#[derive(Debug, Serialize, ToSchema)]
pub struct IdentityView {
    pub id: String,
    pub scanner: String,
    pub target: String,
    pub rule_id: String,
    pub severity: String,
    pub title: String,
    pub location: String,
    pub detail: String,
    pub fingerprint: String,
    /// `open`, `fixed` or `reopened`.
    pub status: String,
    pub first_seen: String,
    pub last_seen: String,
    /// The scan that first reported it.
    pub introduced_by: String,
    pub last_scan: String,
    /// The complete run that no longer reported it.
    pub fixed_by: Option<String>,
    pub fixed_at: Option<String>,
    /// `none`, `accepted_risk` or `false_positive`.
    pub triage: String,
    pub triage_comment: Option<String>,
    pub triaged_by: Option<String>,
    pub triaged_at: Option<String>,
}

impl From<FindingIdentity> for IdentityView {
    fn from(i: FindingIdentity) -> Self {
        IdentityView {
            id: i.id,
            scanner: i.scanner,
            target: i.finding.target,
            rule_id: i.finding.rule_id,
            severity: i.finding.severity.to_string(),
            title: i.finding.title,
            location: i.finding.location,
            detail: i.finding.detail,
            fingerprint: i.finding.fingerprint,
            status: i.status.to_string(),
            first_seen: fmt_ts(i.first_seen),
            last_seen: fmt_ts(i.last_seen),
            introduced_by: i.introduced_by,
            last_scan: i.last_scan,
            fixed_by: i.fixed_by,
            fixed_at: i.fixed_at.map(fmt_ts),
            triage: i.triage.as_str().to_string(),
            triage_comment: i.triage_comment,
            triaged_by: i.triaged_by,
            triaged_at: i.triaged_at.map(fmt_ts),
        }
    }
}

/// Page of findings across runs.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct IdentityPage {
    items: Vec<IdentityView>,
    next_cursor: Option<String>,
}

/// Query of `GET /api/v1/findings`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct IdentityQuery {
    pub severity: Option<String>,
    /// `open`, `fixed` or `reopened`.
    pub status: Option<String>,
    pub scanner: Option<String>,
    pub target: Option<String>,
    pub rule_id: Option<String>,
    /// RFC 3339 bounds of first and last sighting.
    pub first_seen_after: Option<String>,
    pub first_seen_before: Option<String>,
    pub last_seen_after: Option<String>,
    pub last_seen_before: Option<String>,
    /// Case-insensitive text in the title.
    pub text: Option<String>,
    /// `-first_seen` (default, newest first) or `first_seen`.
    pub sort: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

fn opt_ts(field: &str, v: Option<&str>) -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
    v.map(|s| parse_ts(field, s)).transpose()
}

/// Findings across runs, one per identity.
#[utoipa::path(get, path = "/api/v1/findings", params(IdentityQuery), tag = "findings",
    responses((status = 200, body = IdentityPage), (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    AppQuery(q): AppQuery<IdentityQuery>,
) -> Result<Json<Page<IdentityView>>, ApiError> {
    let limit = page_limit(q.limit)?;
    let oldest_first = match q.sort.as_deref() {
        None | Some("-first_seen") => false,
        Some("first_seen") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                "sort",
                format!("{other:?}; expected first_seen or -first_seen"),
            ))
        }
    };
    let filter = IdentityFilter {
        severity: q
            .severity
            .as_deref()
            .map(str::parse::<Severity>)
            .transpose()
            .map_err(|e| ApiError::invalid("severity", e))?,
        status: q
            .status
            .as_deref()
            .map(str::parse::<FindingStatus>)
            .transpose()
            .map_err(|e| ApiError::invalid("status", e))?,
        scanner: q.scanner,
        target: q.target,
        rule_id: q.rule_id,
        first_seen_after: opt_ts("first_seen_after", q.first_seen_after.as_deref())?,
        first_seen_before: opt_ts("first_seen_before", q.first_seen_before.as_deref())?,
        last_seen_after: opt_ts("last_seen_after", q.last_seen_after.as_deref())?,
        last_seen_before: opt_ts("last_seen_before", q.last_seen_before.as_deref())?,
        text: q.text.filter(|t| !t.is_empty()),
        oldest_first,
        after: q.cursor,
        limit,
    };
    let rows = state.store.list_identities(caller.scope(), &filter).await?;
    let next_cursor = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| r.id.clone()))
        .flatten();
    Ok(Json(Page {
        items: rows.into_iter().map(IdentityView::from).collect(),
        next_cursor,
    }))
}

/// Body of `PATCH /api/v1/findings/:id`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriageRequest {
    /// `none`, `accepted_risk` or `false_positive`.
    pub triage: String,
    pub comment: Option<String>,
}

/// Sets the triage of a finding; it survives later runs.
#[utoipa::path(patch, path = "/api/v1/findings/{id}", request_body = TriageRequest, tag = "findings",
    responses((status = 200, body = IdentityView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn triage(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    AppJson(req): AppJson<TriageRequest>,
) -> Result<Json<IdentityView>, ApiError> {
    let triage: Triage = req
        .triage
        .parse()
        .map_err(|e| ApiError::invalid("triage", e))?;
    if req.comment.as_ref().is_some_and(|c| c.len() > 4000) {
        return Err(ApiError::invalid("comment", "longer than 4000 characters"));
    }
    let by = if caller.admin {
        "admin".to_string()
    } else {
        format!("tenant:{}", caller.tenant.name)
    };
    let updated = state
        .store
        .set_triage(
            caller.scope(),
            &id,
            triage,
            req.comment.as_deref(),
            &by,
            state.clock.now(),
        )
        .await
        .map_err(|e| match e {
            scanplane_store::StoreError::NotFound => ApiError::not_found("finding", &id),
            other => other.into(),
        })?;
    Ok(Json(updated.into()))
}

/// `?format=` of exports.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct FormatQuery {
    /// `json` (default), `sarif` or `csv` (findings only).
    pub format: Option<String>,
    pub severity: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

enum Format {
    Json,
    Sarif,
    Csv,
}

fn format_of(v: Option<&str>, csv_allowed: bool) -> Result<Format, ApiError> {
    match v {
        None | Some("json") => Ok(Format::Json),
        Some("sarif") => Ok(Format::Sarif),
        Some("csv") if csv_allowed => Ok(Format::Csv),
        Some(other) => Err(ApiError::invalid(
            "format",
            format!(
                "{other:?}; expected {}",
                if csv_allowed {
                    "json, sarif or csv"
                } else {
                    "json or sarif"
                }
            ),
        )),
    }
}

fn finding_view(f: StoredFinding) -> FindingView {
    FindingView {
        id: f.id,
        scan_id: f.scan_id,
        scanner: f.scanner,
        target: f.finding.target,
        rule_id: f.finding.rule_id,
        severity: f.finding.severity.to_string(),
        title: f.finding.title,
        location: f.finding.location,
        detail: f.finding.detail,
        fingerprint: f.finding.fingerprint,
        created_at: fmt_ts(f.created_at),
    }
}

/// Largest export of one request; beyond it, page through the JSON listing.
const MAX_EXPORT: u32 = 100_000;

/// The findings of one scan, as a JSON page or as a SARIF 2.1.0 / CSV export.
#[utoipa::path(get, path = "/api/v1/scans/{id}/findings", params(FormatQuery), tag = "scans",
    responses((status = 200, body = crate::report::FindingPage), (status = 404, body = ErrorBody)))]
pub async fn scan_findings(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    AppQuery(q): AppQuery<FormatQuery>,
) -> Result<Response, ApiError> {
    let scan = state
        .store
        .scan(caller.scope(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("scan", &id))?;
    let format = format_of(q.format.as_deref(), true)?;
    let severity = q
        .severity
        .as_deref()
        .map(str::parse::<Severity>)
        .transpose()
        .map_err(|e| ApiError::invalid("severity", e))?;
    let limit = match format {
        Format::Json => page_limit(q.limit)?,
        _ => MAX_EXPORT,
    };
    let rows = state
        .store
        .list_findings(
            caller.scope(),
            &id,
            &FindingFilter {
                severity,
                after: q.cursor,
                limit,
            },
        )
        .await?;
    Ok(match format {
        Format::Json => {
            let next_cursor = (rows.len() == limit as usize)
                .then(|| rows.last().map(|f| f.id.clone()))
                .flatten();
            Json(Page {
                items: rows.into_iter().map(finding_view).collect(),
                next_cursor,
            })
            .into_response()
        }
        Format::Sarif => sarif_response(&scan.scanner, &rows),
        Format::Csv => (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            export::csv(&rows),
        )
            .into_response(),
    })
}

fn sarif_response(tool: &str, rows: &[StoredFinding]) -> Response {
    (
        [(header::CONTENT_TYPE, "application/sarif+json")],
        Json(export::sarif(tool, rows)),
    )
        .into_response()
}

/// Counts of a diff.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiffCounts {
    pub new: usize,
    pub fixed: usize,
    pub reopened: usize,
    pub unchanged: u64,
}

/// A scan compared with the previous comparable run (same tenant, scanner and targets).
#[derive(Debug, Serialize, ToSchema)]
pub struct DiffView {
    pub previous_scan_id: Option<String>,
    pub counts: DiffCounts,
    pub new: Vec<FindingView>,
    pub fixed: Vec<FindingView>,
    pub reopened: Vec<FindingView>,
}

/// What changed since the previous comparable run; `?format=sarif` exports the new and
/// reopened findings (what a code-scanning upload should alert on).
#[utoipa::path(get, path = "/api/v1/scans/{id}/diff", params(FormatQuery), tag = "scans",
    responses((status = 200, body = DiffView), (status = 404, body = ErrorBody)))]
pub async fn diff(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    AppQuery(q): AppQuery<FormatQuery>,
) -> Result<Response, ApiError> {
    let format = format_of(q.format.as_deref(), false)?;
    let scan = state
        .store
        .scan(caller.scope(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("scan", &id))?;
    let d = state.store.diff(caller.scope(), &id).await?;
    Ok(match format {
        Format::Sarif => {
            let mut alerting = d.new;
            alerting.extend(d.reopened);
            sarif_response(&scan.scanner, &alerting)
        }
        _ => Json(DiffView {
            previous_scan_id: d.previous_scan_id,
            counts: DiffCounts {
                new: d.new.len(),
                fixed: d.fixed.len(),
                reopened: d.reopened.len(),
                unchanged: d.unchanged,
            },
            new: d.new.into_iter().map(finding_view).collect(),
            fixed: d.fixed.into_iter().map(finding_view).collect(),
            reopened: d.reopened.into_iter().map(finding_view).collect(),
        })
        .into_response(),
    })
}
