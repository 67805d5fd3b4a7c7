//! Vulnerability advisories: `POST /api/v1/advisories/import` (admin: an OSV `all.zip`
//! upload, for air-gapped installs), `GET /api/v1/advisories/imports` and
//! `GET /api/v1/advisories/:id` (an OSV id or an alias such as a CVE id) with the caller's
//! images it affects, matched against their stored SBOMs, never by pulling an image again.
//!
//! An import streams the upload to a temporary file (at most [`MAX_UPLOAD`]) and imports it
//! as the feed sync does (`scanplane_rematch::import`); the answer comes after the last
//! batch committed, so a 2xx means every counted record is durable. A crash
//! mid-import leaves an unfinished import with the batches stored so far; importing the same
//! file again stores the rest and counts the others unchanged.

use std::io::Write;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use futures::StreamExt;
use scanplane_rematch::import::ImportError;
use scanplane_store::{AdvisoryImport, ImageFilter, StoredAdvisory};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Admin, Caller};
use crate::error::{self, ApiError, ErrorBody};
use crate::extract::{AppPath, AppQuery};
use crate::images::ImageView;
use crate::{fmt_ts, AppState};

/// Largest upload: osv.dev's largest ecosystem exports are a few hundred MB.
pub const MAX_UPLOAD: u64 = 1024 * 1024 * 1024;
/// Stored SBOMs examined for one advisory's affected images; more are reported as truncated.
const MAX_SBOMS: u32 = 200;
/// Images listed per affected digest.
const IMAGES_PER_DIGEST: u32 = 100;

/// An import, as recorded.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ImportView {
    pub id: String,
    pub source: String,
    pub started_at: String,
    /// Null while the import runs (or if it was interrupted).
    pub finished_at: Option<String>,
    /// Records read and stored (added, modified or unchanged).
    pub records: u64,
    pub added: u64,
    pub modified: u64,
    /// Advisories newly withdrawn (also counted as modified).
    pub withdrawn: u64,
    pub unchanged: u64,
    /// Records refused (not OSV JSON, too large), with the first reasons.
    pub rejected: u64,
    pub rejections: Vec<String>,
    /// (ecosystem, package) keys whose advisories changed: what a rematch looks at.
    pub changed_keys: u64,
    /// The rematch of the stored SBOMs with a package of those keys.
    pub rematch: RematchView,
}

/// What an import's rematch did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RematchView {
    /// SBOMs examined: those with a package of a changed key.
    pub sboms_considered: u64,
    /// Of those, SBOMs whose report changed.
    pub sboms_rematched: u64,
    pub findings_new: u64,
    pub findings_fixed: u64,
    /// Null while the rematch runs.
    pub finished_at: Option<String>,
}

impl From<AdvisoryImport> for ImportView {
    fn from(i: AdvisoryImport) -> Self {
        ImportView {
            id: i.id,
            source: i.source,
            started_at: fmt_ts(i.started_at),
            finished_at: i.finished_at.map(fmt_ts),
            records: i.records,
            added: i.counts.added,
            modified: i.counts.modified,
            withdrawn: i.counts.withdrawn,
            unchanged: i.counts.unchanged,
            rejected: i.rejected,
            rejections: i.rejections,
            changed_keys: i.changed_keys,
            rematch: RematchView {
                sboms_considered: i.rematch.considered,
                sboms_rematched: i.rematch.rematched,
                findings_new: i.rematch.findings_new,
                findings_fixed: i.rematch.findings_fixed,
                finished_at: i.rematch.finished_at.map(fmt_ts),
            },
        }
    }
}

/// One of the caller's images an advisory affects.
#[derive(Debug, Serialize, ToSchema)]
pub struct AffectedImage {
    pub image: ImageView,
    pub package: String,
    pub purl: Option<String>,
    pub installed_version: String,
    pub fixed_versions: Vec<String>,
}

/// An advisory with what it affects.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdvisoryView {
    pub id: String,
    pub aliases: Vec<String>,
    pub modified: String,
    pub withdrawn: Option<String>,
    pub summary: Option<String>,
    /// critical, high, medium, low or unknown (the advisory's own rating).
    pub severity: String,
    pub cvss_score: Option<f64>,
    /// The (ecosystem, package) pairs it names.
    pub packages: Vec<[String; 2]>,
    /// The import that stored this version of it.
    pub import_id: String,
    /// The OSV record as imported.
    #[schema(value_type = Object)]
    pub document: serde_json::Value,
    /// The caller's images whose SBOM has an affected package version.
    pub images: Vec<AffectedImage>,
    /// More stored SBOMs had an affected package than were examined.
    pub images_truncated: bool,
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!(
            "request body is larger than the {} MiB limit of an advisory upload",
            MAX_UPLOAD / (1024 * 1024)
        ),
    )
}

/// Imports an OSV `all.zip` (one `<ID>.json` record per entry), as osv.dev publishes per ecosystem.
#[utoipa::path(post, path = "/api/v1/advisories/import", tag = "advisories",
    security(("bearer" = [])),
    request_body(content = Vec<u8>, content_type = "application/zip",
        description = "An OSV all.zip export, at most 1 GiB"),
    responses((status = 200, body = ImportView, description = "Imported: every counted record is stored"),
        (status = 400, body = ErrorBody, description = "The body could not be read"),
        (status = 408, body = ErrorBody, description = "The body stopped arriving for longer than the server waits"),
        (status = 413, body = ErrorBody, description = "Larger than 1 GiB"),
        (status = 415, body = ErrorBody, description = "Not sent as application/zip"),
        (status = 422, body = ErrorBody, description = "Not a zip archive, or refused as a zip bomb"),
        error::AdminOnly, error::Common))]
pub async fn import(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ImportView>, ApiError> {
    ApiError::require_content_type(
        &headers,
        &[
            "application/zip",
            "application/x-zip-compressed",
            "application/octet-stream",
        ],
    )?;
    // The upload goes to disk as it arrives: a zip is read from its end (the central
    // directory), so it cannot be parsed as a stream, and it must not sit in memory.
    let mut file = tempfile::tempfile()
        .map_err(|e| ApiError::internal(format!("temporary file for an advisory upload: {e}")))?;
    let mut size: u64 = 0;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::from_stream_error(&e))?;
        size += chunk.len() as u64;
        if size > MAX_UPLOAD {
            return Err(too_large());
        }
        file.write_all(&chunk)
            .map_err(|e| ApiError::internal(format!("writing an advisory upload: {e}")))?;
    }
    let done = scanplane_rematch::import::import(
        &state.store,
        &state.clock,
        scanplane_rematch::import::Records::Zip(file),
        &format!("upload ({size} bytes)"),
    )
    .await
    .map_err(|e| match e {
        ImportError::Store(e) => ApiError::from(e),
        ImportError::Unreadable(why) => ApiError::invalid("body", why),
        ImportError::Reader(why) => ApiError::internal(format!("advisory reader: {why}")),
    })?;
    Ok(Json(done.into()))
}

/// Query of `GET /api/v1/advisories/imports`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ImportsQuery {
    /// At most this many, newest first (default 20, at most 1000).
    pub limit: Option<u32>,
}

/// The latest advisory imports, newest first.
#[utoipa::path(get, path = "/api/v1/advisories/imports", params(ImportsQuery), tag = "advisories",
    security(("bearer" = [])),
    responses((status = 200, body = Vec<ImportView>), error::Auth, error::QueryParams, error::Common))]
pub async fn imports(
    State(state): State<Arc<AppState>>,
    _caller: Caller,
    AppQuery(q): AppQuery<ImportsQuery>,
) -> Result<Json<Vec<ImportView>>, ApiError> {
    let limit = match q.limit {
        None => 20,
        Some(n @ 1..=1000) => n,
        Some(n) => {
            return Err(ApiError::invalid(
                "limit",
                format!("{n}: expected 1 to 1000"),
            ))
        }
    };
    let list = state.store.advisory_imports(limit).await?;
    Ok(Json(list.into_iter().map(ImportView::from).collect()))
}

/// An advisory feed of the configuration, as its last check left it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FeedView {
    /// The URL or local path, as configured.
    pub source: String,
    /// Null until it was first checked.
    pub checked_at: Option<String>,
    /// "imported: ...", "not modified" or "failed: <reason>".
    pub status: Option<String>,
    /// The import of its last change.
    pub import_id: Option<String>,
    /// The validator sent back on the next check (`If-None-Match`).
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// The advisory feeds (`advisories.sources` of the configuration) and their last checks.
#[utoipa::path(get, path = "/api/v1/advisories/feeds", tag = "advisories",
    security(("bearer" = [])),
    responses((status = 200, body = Vec<FeedView>), error::AdminOnly, error::Common))]
pub async fn feeds(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
) -> Result<Json<Vec<FeedView>>, ApiError> {
    let feeds = state.store.feeds().await?;
    Ok(Json(
        feeds
            .into_iter()
            .map(|f| FeedView {
                source: f.source,
                checked_at: f.checked_at.map(fmt_ts),
                status: f.status,
                import_id: f.import_id,
                etag: f.etag,
                last_modified: f.last_modified,
            })
            .collect(),
    ))
}

/// The caller's images `advisory` affects: the stored SBOMs with a package of its keys,
/// matched with the ecosystems' version orders.
async fn affected_images(
    state: &AppState,
    caller: &Caller,
    stored: &StoredAdvisory,
    parsed: &scanplane_osv::Advisory,
    keys: &[(String, String)],
) -> Result<(Vec<AffectedImage>, bool), ApiError> {
    let sboms = state
        .store
        .sboms_with_keys(keys, None, MAX_SBOMS + 1)
        .await?;
    let truncated = sboms.len() > MAX_SBOMS as usize;
    let matcher = scanplane_vuln::Matcher::new(vec![parsed.clone()]);
    let mut out = Vec::new();
    for sbom in sboms.into_iter().take(MAX_SBOMS as usize) {
        if !caller.admin && sbom.tenant_id != caller.tenant.id {
            continue;
        }
        let Some((_, document)) = state.store.sbom(&sbom.tenant_id, &sbom.digest).await? else {
            continue;
        };
        let index = match scanplane_sbom::index_any(&document) {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(digest = %sbom.digest, error = %e, "stored SBOM does not index");
                continue;
            }
        };
        let matches = matcher.match_index(&index, &scanplane_vuln::EcosystemOrder);
        if matches.is_empty() {
            continue;
        }
        let tenant = (!caller.admin).then_some(caller.tenant.id.as_str());
        let images = state
            .store
            .list_images(
                tenant,
                &ImageFilter {
                    digest: Some(sbom.digest.clone()),
                    limit: IMAGES_PER_DIGEST,
                    ..Default::default()
                },
            )
            .await?;
        for image in images {
            for m in &matches {
                out.push(AffectedImage {
                    image: ImageView::from(image.clone()),
                    package: m.package.clone(),
                    purl: m.purl.clone(),
                    installed_version: m.installed_version.clone(),
                    fixed_versions: m.fixed_versions.clone(),
                });
            }
        }
    }
    tracing::debug!(advisory = %stored.id, images = out.len(), "affected images");
    Ok((out, truncated))
}

/// An advisory by its id or an alias (a CVE id), with the caller's images it affects.
#[utoipa::path(get, path = "/api/v1/advisories/{id}", tag = "advisories",
    params(("id" = String, Path, description = "OSV id (GHSA-..., ALPINE-CVE-...) or an alias such as a CVE id")),
    security(("bearer" = [])),
    responses((status = 200, body = AdvisoryView), error::Auth, error::PathId, error::Common))]
pub async fn advisory(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    AppPath(id): AppPath<String>,
) -> Result<Json<AdvisoryView>, ApiError> {
    let found = state.store.advisory(&id).await?;
    let Some(stored) = found.into_iter().next() else {
        return Err(ApiError::not_found("advisory", &id));
    };
    let parsed = scanplane_osv::parse(&stored.document)
        .map_err(|e| ApiError::internal(format!("stored advisory {}: {e}", stored.id)))?;
    let keys = scanplane_rematch::import::new_advisory(Vec::new(), &parsed).keys;
    let (images, images_truncated) =
        affected_images(&state, &caller, &stored, &parsed, &keys).await?;
    let (severity, cvss_score) = scanplane_osv::advisory_severity(&parsed);
    Ok(Json(AdvisoryView {
        id: stored.id,
        aliases: stored.aliases,
        modified: stored.modified,
        withdrawn: stored.withdrawn,
        summary: parsed.summary.clone(),
        severity: severity.as_str().to_string(),
        cvss_score,
        packages: parsed
            .affected
            .iter()
            .filter_map(|a| a.package.as_ref())
            .map(|p| [p.ecosystem.clone(), p.name.clone()])
            .collect(),
        import_id: stored.import_id,
        document: serde_json::from_slice(&stored.document).unwrap_or(serde_json::Value::Null),
        images,
        images_truncated,
    }))
}

pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(imports))
        .routes(routes!(feeds))
        .routes(routes!(advisory))
        // The upload is read with its own limit, to a file; the JSON body limit does not apply.
        .merge(
            OpenApiRouter::new()
                .routes(routes!(import))
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
}
