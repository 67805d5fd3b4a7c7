//! Image endpoints: the images discoveries found (`GET /api/v1/images`, one image), the
//! SBOM of an image's digest (SPDX as stored, or rendered as CycloneDX), and the package
//! index across stored SBOMs (`GET /api/v1/packages`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use scanplane_store::{ImageFilter, ImageRecord, PackageHit, PackageQuery};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::{self, ApiError};
use crate::extract::{cursor, AppPath, AppQuery};
use crate::scans::page_limit;
use crate::tenancy::{listing_scope, tenant_name, TenantNames};
use crate::{fmt_ts, AppState, Page};

/// Longest value of a text filter: longer ones match nothing a discovery stores.
const MAX_FILTER: usize = 1024;

/// An image a discovery found: a (repository, tag, platform) pointing at a digest.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImageView {
    pub id: String,
    /// The owning tenant's name.
    pub tenant: String,
    pub registry_id: String,
    pub repository: String,
    pub tag: String,
    /// `os/arch[/variant]`, or empty when the manifest names none.
    pub platform: String,
    pub digest: String,
    /// The index the manifest was found in, for a multi-platform tag.
    pub index_digest: Option<String>,
    pub media_type: String,
    pub config_digest: String,
    /// Bytes: the manifest's layers and config.
    pub size: u64,
    /// The image config's `created`, as written.
    pub created: Option<String>,
    /// The layers (digest, media type, size, diffID).
    #[schema(value_type = Object)]
    pub layers: serde_json::Value,
    pub first_seen_at: String,
    pub last_seen_at: String,
    /// The discovery that last saw it.
    pub last_seen_scan_id: String,
    /// When a discovery no longer found the tag; null while it is live.
    pub removed_at: Option<String>,
    /// The SBOM of its digest (`GET /api/v1/images/:id/sbom`); null until one is generated.
    pub sbom_id: Option<String>,
}

impl From<ImageRecord> for ImageView {
    fn from(r: ImageRecord) -> Self {
        let i = r.image;
        ImageView {
            id: r.id,
            tenant: r.tenant_id,
            registry_id: r.registry_id,
            repository: i.repository,
            tag: i.tag,
            platform: i.platform,
            digest: i.digest,
            index_digest: i.index_digest,
            media_type: i.media_type,
            config_digest: i.config_digest,
            size: i.size,
            created: i.created,
            layers: serde_json::from_str(&i.layers).unwrap_or(serde_json::Value::Null),
            first_seen_at: fmt_ts(r.first_seen_at),
            last_seen_at: fmt_ts(r.last_seen_at),
            last_seen_scan_id: r.last_seen_scan_id,
            removed_at: r.removed_at.map(fmt_ts),
            sbom_id: r.sbom_id,
        }
    }
}

/// Query of `GET /api/v1/images`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ImageQuery {
    /// Registry id.
    pub registry: Option<String>,
    pub repository: Option<String>,
    pub tag: Option<String>,
    pub digest: Option<String>,
    /// `os/arch[/variant]`.
    pub platform: Option<String>,
    /// Also list images whose tag a discovery no longer found (default false).
    pub include_removed: Option<bool>,
    /// Only this tenant's images (a tenant name; the admin sees every tenant's by default).
    pub tenant: Option<String>,
    /// Cursor from the previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size, 1-1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// A text filter: empty is no filter; too long is a 422 naming it.
fn filter(field: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    match value {
        Some(v) if v.len() > MAX_FILTER => Err(ApiError::invalid(
            field,
            format!("{} bytes; at most {MAX_FILTER}", v.len()),
        )),
        Some(v) if v.is_empty() => Ok(None),
        other => Ok(other),
    }
}

/// Lists images in id order, live ones only unless `include_removed`.
#[utoipa::path(get, path = "/api/v1/images", params(ImageQuery), tag = "registries",
    security(("bearer" = [])),
    responses((status = 200, body = Page<ImageView>), error::Auth, error::QueryParams, error::Common))]
pub async fn list_images(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    AppQuery(q): AppQuery<ImageQuery>,
) -> Result<Json<Page<ImageView>>, ApiError> {
    let limit = page_limit(q.limit)?;
    let f = ImageFilter {
        registry_id: filter("registry", q.registry)?,
        repository: filter("repository", q.repository)?,
        tag: filter("tag", q.tag)?,
        digest: filter("digest", q.digest)?,
        platform: filter("platform", q.platform)?,
        include_removed: q.include_removed.unwrap_or(false),
        after: cursor(q.cursor)?,
        limit,
    };
    let scope = listing_scope(&state, &caller, q.tenant.as_deref()).await?;
    let images = state.store.list_images(scope.as_deref(), &f).await?;
    let names = TenantNames::for_caller(&state, &caller).await?;
    Ok(Json(Page::of(
        images,
        limit,
        |i| &i.id,
        |i| {
            let mut v = ImageView::from(i);
            names.name(&mut v.tenant);
            v
        },
    )))
}

async fn image_of(state: &AppState, caller: &Caller, id: &str) -> Result<ImageRecord, ApiError> {
    state
        .store
        .image(caller.scope(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("image", id))
}

/// One image.
#[utoipa::path(get, path = "/api/v1/images/{id}", tag = "registries",
    params(("id" = String, Path, description = "Image id")),
    security(("bearer" = [])),
    responses((status = 200, body = ImageView), error::Auth, error::PathId, error::Common))]
pub async fn get_image(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    AppPath(id): AppPath<String>,
) -> Result<Json<ImageView>, ApiError> {
    let image = image_of(&state, &caller, &id).await?;
    let mut view = ImageView::from(image);
    view.tenant = tenant_name(&state, &caller, &view.tenant).await?;
    Ok(Json(view))
}

/// Query of `GET /api/v1/images/:id/sbom`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SbomQuery {
    /// `spdx` (default: the document as generated) or `cyclonedx` (CycloneDX 1.5 JSON).
    pub format: Option<String>,
}

const SPDX_JSON: &str = "application/spdx+json";
const CYCLONEDX_JSON: &str = "application/vnd.cyclonedx+json";

/// The SBOM of an image's digest: SPDX 2.3 JSON as stored, or rendered as CycloneDX 1.5.
#[utoipa::path(get, path = "/api/v1/images/{id}/sbom", tag = "registries",
    params(("id" = String, Path, description = "Image id"), SbomQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "The SBOM document",
            content((Object = "application/spdx+json"), (Object = "application/vnd.cyclonedx+json"))),
        (status = 404, body = error::ErrorBody, description = "No such image, or no SBOM is stored for its digest yet"),
        error::Auth, error::PathId, error::QueryParams, error::Common))]
pub async fn get_sbom(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    AppPath(id): AppPath<String>,
    AppQuery(q): AppQuery<SbomQuery>,
) -> Result<Response, ApiError> {
    let cyclonedx = match q.format.as_deref() {
        None | Some("" | "spdx" | "spdx-json") => false,
        Some("cyclonedx" | "cyclonedx-json") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                "format",
                format!("unknown format {other:?}; expected spdx or cyclonedx"),
            ))
        }
    };
    let image = image_of(&state, &caller, &id).await?;
    let no_sbom = || {
        ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "image {id:?}: no SBOM is stored for its digest {} yet; discovery queues its generation",
                image.image.digest
            ),
        )
    };
    if image.sbom_id.is_none() {
        return Err(no_sbom());
    }
    let (info, document) = state
        .store
        .sbom(&image.tenant_id, &image.image.digest)
        .await?
        .ok_or_else(no_sbom)?;
    if !cyclonedx {
        return Ok(([(header::CONTENT_TYPE, SPDX_JSON)], document).into_response());
    }
    // Stored documents were indexed when uploaded: one that does not render is ours to fix.
    let rendered = scanplane_sbom::to_cyclonedx(&document)
        .map_err(|e| ApiError::internal(format!("SBOM {} as CycloneDX: {e}", info.id)))?;
    Ok(([(header::CONTENT_TYPE, CYCLONEDX_JSON)], rendered).into_response())
}

/// Query of `GET /api/v1/packages`: `purl`, or `name` with an optional `version`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PackageQueryParams {
    /// A package URL. Without a version it matches every version; with one, whatever the
    /// qualifiers; with qualifiers (`?arch=...`), exactly.
    pub purl: Option<String>,
    /// A package name (exclusive with `purl`).
    pub name: Option<String>,
    /// The version of `name`.
    pub version: Option<String>,
    /// Only this tenant's SBOMs (a tenant name; the admin sees every tenant's by default).
    pub tenant: Option<String>,
    /// Cursor from the previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size, 1-1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// A package of a stored SBOM, with the digest whose SBOM lists it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PackageView {
    pub sbom_id: String,
    pub digest: String,
    pub name: String,
    pub version: Option<String>,
    pub purl: Option<String>,
    /// The purl type: apk, deb, rpm, npm, pypi, golang, ...
    pub ecosystem: Option<String>,
    pub distro: Option<String>,
    /// The source package an OS package was built from.
    pub source_name: Option<String>,
    pub source_version: Option<String>,
    /// The layer that introduced it, where the SBOM says.
    pub layer_diff_id: Option<String>,
}

impl From<PackageHit> for PackageView {
    fn from(h: PackageHit) -> Self {
        let p = h.package;
        PackageView {
            sbom_id: h.sbom_id,
            digest: h.digest,
            name: p.name,
            version: p.version,
            purl: p.purl,
            ecosystem: p.ecosystem,
            distro: p.distro,
            source_name: p.source_name,
            source_version: p.source_version,
            layer_diff_id: p.layer_diff_id,
        }
    }
}

/// A package cursor: `SBOM_ID:SEQ` of the last hit of the previous page.
fn package_cursor(value: Option<String>) -> Result<Option<(String, i64)>, ApiError> {
    let Some(c) = value.filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::malformed(format!(
            "cursor: {c:?} is not a next_cursor of a previous page"
        ))
    };
    let (sbom, seq) = c.split_once(':').ok_or_else(bad)?;
    let sbom = cursor(Some(sbom.to_string()))
        .map_err(|_| bad())?
        .ok_or_else(bad)?;
    let seq = seq
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0 && n.to_string() == seq)
        .ok_or_else(bad)?;
    Ok(Some((sbom, seq)))
}

/// Finds packages across stored SBOMs, in (SBOM, position) order.
#[utoipa::path(get, path = "/api/v1/packages", params(PackageQueryParams), tag = "registries",
    security(("bearer" = [])),
    responses((status = 200, body = Page<PackageView>), error::Auth, error::QueryParams, error::Common))]
pub async fn find_packages(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    AppQuery(q): AppQuery<PackageQueryParams>,
) -> Result<Json<Page<PackageView>>, ApiError> {
    let limit = page_limit(q.limit)?;
    let purl = filter("purl", q.purl)?;
    let name = filter("name", q.name)?;
    let version = filter("version", q.version)?;
    match (&purl, &name) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "purl, name",
                "give either purl or name, not both",
            ))
        }
        (None, None) => return Err(ApiError::invalid("purl, name", "one of them is required")),
        (Some(p), None) => {
            if !p.starts_with("pkg:") {
                return Err(ApiError::invalid(
                    "purl",
                    format!("{p:?} is not a package URL (pkg:TYPE/NAMESPACE/NAME@VERSION)"),
                ));
            }
            if version.is_some() {
                return Err(ApiError::invalid(
                    "version",
                    "applies only to name; a purl carries its version (pkg:...@VERSION)",
                ));
            }
        }
        (None, Some(_)) => {}
    }
    let query = PackageQuery {
        purl,
        name,
        version,
        after: package_cursor(q.cursor)?,
        limit,
    };
    let scope = listing_scope(&state, &caller, q.tenant.as_deref()).await?;
    let hits = state.store.find_packages(scope.as_deref(), &query).await?;
    let next_cursor = (hits.len() == limit as usize)
        .then(|| hits.last().map(|h| format!("{}:{}", h.sbom_id, h.seq)))
        .flatten();
    Ok(Json(Page {
        items: hits.into_iter().map(PackageView::from).collect(),
        next_cursor,
    }))
}

/// The vulnerability report of an image's digest: the findings of its latest report (kept
/// current as SBOMs are stored and advisories imported), as a page, or exported as SARIF
/// 2.1.0 or CSV. Each finding's `detail` is a JSON object: `aliases`, `package`,
/// `installed_version`, `fixed_versions`, `cvss_score`, `ecosystem`, `matched_name`,
/// `layer_diff_id`.
#[utoipa::path(get, path = "/api/v1/images/{id}/vulnerabilities", tag = "registries",
    params(("id" = String, Path, description = "Image id"), crate::findings::FormatQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "A page (`format=json`), a SARIF 2.1.0 log or CSV",
            content((crate::Page<crate::findings::FindingView> = "application/json"), (Object = "application/sarif+json"), (String = "text/csv"))),
        (status = 404, body = error::ErrorBody, description = "No such image, or its digest has no report yet (no SBOM stored, or not matched yet)"),
        (status = 409, body = error::ErrorBody, description = "`format=csv` of a report that did not succeed"),
        error::Auth, error::PathId, error::QueryParams, error::Common))]
pub async fn get_vulnerabilities(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    AppPath(id): AppPath<String>,
    query: AppQuery<crate::findings::FormatQuery>,
) -> Result<axum::response::Response, ApiError> {
    let image = image_of(&state, &caller, &id).await?;
    let report = state
        .store
        .latest_report(
            &image.tenant_id,
            scanplane_rematch::SCANNER,
            &scanplane_rematch::target_of(&image.image.digest),
        )
        .await?
        .ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "not_found",
                format!(
                    "image {id:?} has no vulnerability report yet: its digest has no SBOM, or it was not matched yet"
                ),
            )
        })?;
    crate::findings::scan_findings(State(state), caller, AppPath(report.id), query).await
}

pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list_images))
        .routes(routes!(get_image))
        .routes(routes!(get_sbom))
        .routes(routes!(get_vulnerabilities))
        .routes(routes!(find_packages))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_cursors_round_trip_and_refuse_anything_else() {
        let id = uuid::Uuid::now_v7().to_string();
        assert_eq!(
            package_cursor(Some(format!("{id}:7"))).unwrap(),
            Some((id.clone(), 7))
        );
        assert_eq!(package_cursor(None).unwrap(), None);
        assert_eq!(package_cursor(Some(String::new())).unwrap(), None);
        for bad in [
            id.clone(),
            format!("{id}:"),
            format!("{id}:-1"),
            format!("{id}:07"),
            format!("{id}:x"),
            "zzz:1".to_string(),
        ] {
            let e = package_cursor(Some(bad.clone())).unwrap_err();
            assert_eq!(e.status.as_u16(), 400, "{bad}");
        }
    }
}
