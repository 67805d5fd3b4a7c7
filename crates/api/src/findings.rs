//! Finding endpoints across runs: `GET /api/v1/findings` (identities with filters, sorting
//! and cursor pagination), `PATCH /api/v1/findings/:id` (triage), `GET
//! /api/v1/scans/:id/diff` against the previous comparable run, and the export formats of a
//! scan's findings and of a diff (`?format=json|sarif|csv`). Exports are streamed (see
//! [`crate::stream`]): a scan's findings are read page by page while the body is sent.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use scanplane_core::finding::Severity;
use scanplane_core::identity::{FindingStatus, Triage};
use scanplane_store::{
    DiffList, DiffSummary, FindingFilter, FindingIdentity, IdentityFilter, StoredFinding,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::{self, ApiError};
use crate::export::{self, SarifRules, SarifWriter};
use crate::extract::{cursor, AppJson, AppPath, AppQuery};
use crate::scans::page_limit;
use crate::stream::{self, DiffPages, FindingPages, Sink, Stop};
use crate::tenancy::{listing_scope, tenant_name, TenantNames};
use crate::{fmt_ts, parse_ts, AppState, Page};

/// A finding across runs: its latest attributes, lifecycle and triage.
#[derive(Debug, Serialize, ToSchema)]
pub struct IdentityView {
    pub id: String,
    /// The owning tenant's name.
    pub tenant: String,
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
            tenant: i.tenant_id.clone(),
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

/// Query of `GET /api/v1/findings`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct IdentityQuery {
    /// `critical`, `high`, `medium`, `low`, `info` or `unknown`.
    pub severity: Option<String>,
    /// `open`, `fixed` or `reopened`.
    pub status: Option<String>,
    /// `none`, `accepted_risk` or `false_positive`.
    pub triage: Option<String>,
    /// Only this tenant's findings (a tenant name; the admin sees every tenant's by default).
    pub tenant: Option<String>,
    pub scanner: Option<String>,
    pub target: Option<String>,
    pub rule_id: Option<String>,
    /// RFC 3339: first seen at or after.
    pub first_seen_after: Option<String>,
    /// RFC 3339: first seen before.
    pub first_seen_before: Option<String>,
    /// RFC 3339: last seen at or after.
    pub last_seen_after: Option<String>,
    /// RFC 3339: last seen before.
    pub last_seen_before: Option<String>,
    /// Case-insensitive text in the title.
    pub text: Option<String>,
    /// `-first_seen` (default, newest first) or `first_seen`.
    pub sort: Option<String>,
    /// Cursor from the previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size, 1-1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

fn opt_ts(field: &str, v: Option<&str>) -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
    v.map(|s| parse_ts(field, s)).transpose()
}

/// Findings across runs, one per identity.
#[utoipa::path(get, path = "/api/v1/findings", params(IdentityQuery), tag = "findings",
    security(("bearer" = [])),
    responses((status = 200, body = Page<IdentityView>), error::Auth, error::QueryParams, error::Common))]
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
        triage: q
            .triage
            .as_deref()
            .map(str::parse::<Triage>)
            .transpose()
            .map_err(|e| ApiError::invalid("triage", e))?,
        scanner: q.scanner,
        target: q.target,
        rule_id: q.rule_id,
        first_seen_after: opt_ts("first_seen_after", q.first_seen_after.as_deref())?,
        first_seen_before: opt_ts("first_seen_before", q.first_seen_before.as_deref())?,
        last_seen_after: opt_ts("last_seen_after", q.last_seen_after.as_deref())?,
        last_seen_before: opt_ts("last_seen_before", q.last_seen_before.as_deref())?,
        text: q.text.filter(|t| !t.is_empty()),
        oldest_first,
        after: cursor(q.cursor)?,
        limit,
    };
    let scope = listing_scope(&state, &caller, q.tenant.as_deref()).await?;
    let rows = state
        .store
        .list_identities(scope.as_deref(), &filter)
        .await?;
    let names = TenantNames::for_caller(&state, &caller).await?;
    Ok(Json(Page::of(
        rows,
        limit,
        |r| &r.id,
        |r| {
            let mut v = IdentityView::from(r);
            names.name(&mut v.tenant);
            v
        },
    )))
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
    params(("id" = String, Path, description = "Finding (identity) id")),
    security(("bearer" = [])),
    responses((status = 200, body = IdentityView), error::Auth, error::PathId, error::JsonBody, error::Common))]
pub async fn triage(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    AppPath(id): AppPath<String>,
    AppJson(req): AppJson<TriageRequest>,
) -> Result<Json<IdentityView>, ApiError> {
    let triage: Triage = req
        .triage
        .parse()
        .map_err(|e| ApiError::invalid("triage", e))?;
    if req.comment.as_ref().is_some_and(|c| c.len() > 4000) {
        return Err(ApiError::invalid("comment", "longer than 4000 characters"));
    }
    let by = caller.actor();
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
    let mut view = IdentityView::from(updated);
    view.tenant = tenant_name(&state, &caller, &view.tenant).await?;
    Ok(Json(view))
}

/// Query of `GET /api/v1/scans/:id/findings`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FormatQuery {
    /// `json` (default: a page), `sarif` or `csv` (every finding, streamed).
    pub format: Option<String>,
    /// `critical`, `high`, `medium`, `low`, `info` or `unknown`.
    pub severity: Option<String>,
    /// Cursor from the previous page's `next_cursor`; exports start after it too.
    pub cursor: Option<String>,
    /// Page size of `format=json`, 1-1000 (default 100); exports have no pages.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// Query of `GET /api/v1/scans/:id/diff`. The diff has no pages: `limit` and `cursor` are
/// refused rather than ignored.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DiffQuery {
    /// `json` (default) or `sarif` (the new and reopened findings).
    pub format: Option<String>,
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
    /// The triage of the finding's identity: `none` (also before the scan completed),
    /// `accepted_risk` or `false_positive`.
    pub triage: String,
    pub triage_comment: Option<String>,
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
        triage: f.triage.as_str().to_string(),
        triage_comment: f.triage_comment,
    }
}

/// Writes `f` as a [`FindingView`] without building one.
fn push_finding(out: &mut Vec<u8>, f: &StoredFinding) {
    #[derive(Serialize)]
    struct View<'a> {
        id: &'a str,
        scan_id: &'a str,
        scanner: &'a str,
        target: &'a str,
        rule_id: &'a str,
        severity: &'a str,
        title: &'a str,
        location: &'a str,
        detail: &'a str,
        fingerprint: &'a str,
        created_at: String,
        triage: &'a str,
        triage_comment: Option<&'a str>,
    }
    let view = View {
        id: &f.id,
        scan_id: &f.scan_id,
        scanner: &f.scanner,
        target: &f.finding.target,
        rule_id: &f.finding.rule_id,
        severity: f.finding.severity.as_str(),
        title: &f.finding.title,
        location: &f.finding.location,
        detail: &f.finding.detail,
        fingerprint: &f.finding.fingerprint,
        created_at: fmt_ts(f.created_at),
        triage: f.triage.as_str(),
        triage_comment: f.triage_comment.as_deref(),
    };
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &view);
}

const SARIF: &str = "application/sarif+json";
const CSV: &str = "text/csv; charset=utf-8";

/// The findings of one scan: a JSON page, or every finding as SARIF 2.1.0 or CSV, streamed.
#[utoipa::path(get, path = "/api/v1/scans/{id}/findings", params(("id" = String, Path, description = "Scan id"), FormatQuery), tag = "scans",
    security(("bearer" = [])),
    responses((status = 200, description = "A page (`format=json`), a SARIF 2.1.0 log or CSV",
        content((Page<FindingView> = "application/json"), (Object = "application/sarif+json"), (String = "text/csv"))),
        (status = 409, body = error::ErrorBody, description = "`format=csv` of a scan that did not succeed (the message gives its status and reason); SARIF of such a scan is a run with `executionSuccessful: false`"),
        error::Auth, error::PathId, error::QueryParams, error::Common))]
pub async fn scan_findings(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    AppPath(id): AppPath<String>,
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
    let after = cursor(q.cursor)?;
    if let Format::Json = format {
        let limit = page_limit(q.limit)?;
        let rows = state
            .store
            .list_findings(
                caller.scope(),
                &id,
                &FindingFilter {
                    severity,
                    after,
                    limit,
                },
            )
            .await?;
        return Ok(Json(Page::of(rows, limit, |f| &f.id, finding_view)).into_response());
    }
    if q.limit.is_some() {
        return Err(ApiError::invalid(
            "limit",
            "applies to format=json only; an export holds every finding",
        ));
    }
    if matches!(format, Format::Csv) {
        not_succeeded(&scan)?;
    }
    let invocation = export::invocation_of(&scan);
    let mut pages = FindingPages::new(
        state.store.clone(),
        caller.scope().map(str::to_string),
        id,
        FindingFilter {
            severity,
            after: after.clone(),
            limit: stream::PAGE,
        },
    );
    // The first page is read before answering, so that a failing store is an error status
    // rather than a broken body.
    let first = pages.next().await?;
    Ok(match format {
        Format::Sarif => stream::streamed(SARIF, move |sink| {
            sarif_export(sink, scan.scanner, invocation, pages, first, after)
        }),
        _ => stream::streamed(CSV, move |sink| csv_export(sink, pages, first)),
    })
}

async fn csv_export(
    mut sink: Sink,
    mut pages: FindingPages,
    first: Vec<StoredFinding>,
) -> Result<Sink, Stop> {
    let mut text = String::new();
    export::csv_header(&mut text);
    let mut page = first;
    while !page.is_empty() {
        for f in &page {
            export::csv_row(&mut text, f);
            if text.len() >= 16 * 1024 {
                sink.buf().extend_from_slice(text.as_bytes());
                text.clear();
                sink.flush_if_full().await?;
            }
        }
        page = pages.next().await?;
    }
    sink.buf().extend_from_slice(text.as_bytes());
    Ok(sink)
}

/// Two passes: the rule table first (it gives every result its rule index), then the
/// results as they are read, then the table.
async fn sarif_export(
    mut sink: Sink,
    tool: String,
    invocation: serde_json::Value,
    mut pages: FindingPages,
    first: Vec<StoredFinding>,
    start: Option<String>,
) -> Result<Sink, Stop> {
    let mut rules = SarifRules::default();
    let mut last: Option<String> = None;
    let mut page = first;
    while !page.is_empty() {
        page.iter().for_each(|f| rules.add(f));
        last = page.last().map(|f| f.id.clone());
        page = pages.next().await?;
    }
    let mut w = SarifWriter::new(rules);
    w.results_start(sink.buf(), &invocation);
    if let Some(until) = last {
        let mut again = pages.again(start, Some(until));
        loop {
            let page = again.next().await?;
            if page.is_empty() {
                break;
            }
            for f in &page {
                w.result(sink.buf(), f);
                sink.flush_if_full().await?;
            }
        }
    }
    sarif_rules(&mut sink, &w, &tool).await?;
    Ok(sink)
}

async fn sarif_rules(sink: &mut Sink, w: &SarifWriter, tool: &str) -> Result<(), Stop> {
    w.rules_start(sink.buf(), tool);
    for id in w.rule_ids() {
        w.rule(sink.buf(), &id);
        sink.flush_if_full().await?;
    }
    w.end(sink.buf());
    Ok(())
}

/// A scan that did not succeed has no results to compare or export: a 409 with its status
/// and reason, so that it is never read as a clean run.
fn not_succeeded(scan: &scanplane_core::scan::Scan) -> Result<(), ApiError> {
    if scan.status == scanplane_core::scan::ScanStatus::Succeeded {
        return Ok(());
    }
    Err(ApiError::conflict(format!(
        "scan {} is {}, not succeeded ({}): only a succeeded scan has results to compare or export",
        scan.id, scan.status, scan.reason
    )))
}

/// Counts of a diff.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiffCounts {
    pub new: u64,
    pub fixed: u64,
    pub reopened: u64,
    pub unchanged: u64,
}

/// A scan compared with the previous comparable run (same tenant, scanner, targets and
/// scope options).
#[derive(Debug, Serialize, ToSchema)]
pub struct DiffView {
    pub previous_scan_id: Option<String>,
    pub counts: DiffCounts,
    pub new: Vec<FindingView>,
    pub fixed: Vec<FindingView>,
    pub reopened: Vec<FindingView>,
}

/// What changed since the previous comparable run; `?format=sarif` exports the new and
/// reopened findings (what a code-scanning upload should alert on). Streamed: each list is
/// read from the store a page at a time while the body is sent.
#[utoipa::path(get, path = "/api/v1/scans/{id}/diff", params(("id" = String, Path, description = "Scan id"), DiffQuery), tag = "scans",
    security(("bearer" = [])),
    responses((status = 200, description = "The diff, or a SARIF 2.1.0 log of its new and reopened findings",
        content((DiffView = "application/json"), (Object = "application/sarif+json"))),
        (status = 409, body = error::ErrorBody, description = "The scan did not succeed (the message gives its status and reason): it covered nothing, so it has no diff"),
        error::Auth, error::PathId, error::QueryParams, error::Common))]
pub async fn diff(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    AppPath(id): AppPath<String>,
    AppQuery(q): AppQuery<DiffQuery>,
) -> Result<Response, ApiError> {
    let format = format_of(q.format.as_deref(), false)?;
    let scan = state
        .store
        .scan(caller.scope(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("scan", &id))?;
    not_succeeded(&scan)?;
    let invocation = export::invocation_of(&scan);
    let d = Arc::new(state.store.diff_summary(caller.scope(), &id).await?);
    let store = state.store.clone();
    Ok(match format {
        Format::Sarif => stream::streamed(SARIF, move |sink| {
            diff_sarif(sink, scan.scanner, invocation, store, d)
        }),
        _ => stream::streamed("application/json", move |sink| diff_json(sink, store, d)),
    })
}

async fn diff_json(
    mut sink: Sink,
    store: Arc<dyn scanplane_store::Store>,
    d: Arc<DiffSummary>,
) -> Result<Sink, Stop> {
    let counts = DiffCounts {
        new: d.new,
        fixed: d.fixed,
        reopened: d.reopened,
        unchanged: d.unchanged,
    };
    let out = sink.buf();
    out.extend_from_slice(b"{\"previous_scan_id\":");
    let _ = serde_json::to_writer(&mut *out, &d.previous_scan_id);
    out.extend_from_slice(b",\"counts\":");
    let _ = serde_json::to_writer(&mut *out, &counts);
    for (name, list) in [
        ("new", DiffList::New),
        ("fixed", DiffList::Fixed),
        ("reopened", DiffList::Reopened),
    ] {
        sink.buf()
            .extend_from_slice(format!(",\"{name}\":[").as_bytes());
        let mut pages = DiffPages::new(store.clone(), d.clone(), list);
        let mut first = true;
        loop {
            let page = pages.next().await?;
            if page.is_empty() {
                break;
            }
            for f in &page {
                if !first {
                    sink.buf().push(b',');
                }
                first = false;
                push_finding(sink.buf(), f);
                sink.flush_if_full().await?;
            }
        }
        sink.buf().push(b']');
    }
    sink.buf().push(b'}');
    Ok(sink)
}

/// Two passes over the new and then the reopened findings, as in [`sarif_export`]: the
/// rule table first, then the results.
async fn diff_sarif(
    mut sink: Sink,
    tool: String,
    invocation: serde_json::Value,
    store: Arc<dyn scanplane_store::Store>,
    d: Arc<DiffSummary>,
) -> Result<Sink, Stop> {
    const ALERTING: [DiffList; 2] = [DiffList::New, DiffList::Reopened];
    let mut rules = SarifRules::default();
    for list in ALERTING {
        let mut pages = DiffPages::new(store.clone(), d.clone(), list);
        loop {
            let page = pages.next().await?;
            if page.is_empty() {
                break;
            }
            page.iter().for_each(|f| rules.add(f));
        }
    }
    let mut w = SarifWriter::new(rules);
    w.results_start(sink.buf(), &invocation);
    for list in ALERTING {
        let mut pages = DiffPages::new(store.clone(), d.clone(), list);
        loop {
            let page = pages.next().await?;
            if page.is_empty() {
                break;
            }
            for f in &page {
                w.result(sink.buf(), f);
                sink.flush_if_full().await?;
            }
        }
    }
    sarif_rules(&mut sink, &w, &tool).await?;
    Ok(sink)
}

pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(triage))
        .routes(routes!(scan_findings))
        .routes(routes!(diff))
}
