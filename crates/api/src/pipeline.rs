//! What a registry pipeline's units of work call besides the report, authenticated by their
//! scan's report token like the report:
//! - `GET /api/v1/scans/:id/registry-access`: a discovery or SBOM unit reads its registry
//!   (definition and credentials: the only way credentials leave the database);
//! - `PUT /api/v1/scans/:id/sbom`: an SBOM unit uploads the SPDX document it generated; the
//!   server indexes its packages and keeps it once per digest.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use futures::StreamExt;
use scanplane_core::scan::Scan;
use scanplane_protocol::registry::{
    DiscoveryOptions, RegistryAuth, RegistrySpec, RegistryUnit, DISCOVERY_SCANNER, SBOM_SCANNER,
};
use scanplane_store::{NewSbom, SbomPackage};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{self, ApiError, ErrorBody};
use crate::extract::AppPath;
use crate::report::scan_of_report_token;
use crate::AppState;

/// The options of an SBOM generation.
#[derive(Debug, Deserialize)]
struct SbomOptions {
    registry_id: String,
    digest: String,
}

fn registry_id_of(scan: &Scan) -> Result<String, ApiError> {
    let parsed = match scan.scanner.as_str() {
        DISCOVERY_SCANNER => {
            serde_json::from_str::<DiscoveryOptions>(&scan.options).map(|o| o.registry_id)
        }
        SBOM_SCANNER => serde_json::from_str::<SbomOptions>(&scan.options).map(|o| o.registry_id),
        other => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!(
                    "scan {} is a {other} scan, not a step of a registry pipeline",
                    scan.id
                ),
            ))
        }
    };
    // Only the registry endpoints and the pipeline create these scans: their options parse.
    parsed.map_err(|e| ApiError::internal(format!("scan {} options: {e}", scan.id)))
}

/// The registry a discovery or SBOM unit works on, with its credentials.
#[utoipa::path(get, path = "/api/v1/scans/{id}/registry-access", tag = "registries",
    params(("id" = String, Path, description = "Scan id of a discovery or SBOM generation")),
    security(("report_token" = [])),
    responses((status = 200, body = RegistryUnit, description = "The registry's definition, credentials and the repositories to narrow to"),
        (status = 401, body = ErrorBody, description = "Not a live report token of this scan"),
        (status = 404, body = ErrorBody, description = "The registry was deleted"),
        (status = 409, body = ErrorBody, description = "The scan is not a step of a registry pipeline"),
        error::Common))]
pub async fn registry_access(
    State(state): State<Arc<AppState>>,
    AppPath(id): AppPath<String>,
    headers: HeaderMap,
) -> Result<Json<RegistryUnit>, ApiError> {
    let scan = scan_of_report_token(&state, &headers, &id).await?;
    let registry_id = registry_id_of(&scan)?;
    let record = state
        .store
        .registry(Some(&scan.tenant_id), &registry_id)
        .await?
        .ok_or_else(|| ApiError::not_found("registry", &registry_id))?;
    let spec: RegistrySpec = serde_json::from_str(&record.definition)
        .map_err(|e| ApiError::internal(format!("registry {registry_id} definition: {e}")))?;
    let auth = record
        .auth
        .as_deref()
        .map(serde_json::from_str::<RegistryAuth>)
        .transpose()
        .map_err(|e| ApiError::internal(format!("registry {registry_id} credentials: {e}")))?;
    let repositories = if scan.scanner == DISCOVERY_SCANNER {
        serde_json::from_str::<DiscoveryOptions>(&scan.options)
            .map(|o| o.repositories)
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    tracing::info!(scan_run_id = %scan.id, registry_id = %registry_id, "registry access read by its unit");
    Ok(Json(RegistryUnit {
        registry_id,
        spec,
        auth,
        repositories,
    }))
}

/// What the server did with an uploaded SBOM.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SbomAccepted {
    pub digest: String,
    /// False when the digest had an SBOM already (the first one stays).
    pub stored: bool,
    pub packages: u64,
    pub os: Option<String>,
}

/// Uploads the SPDX 2.3 JSON SBOM an SBOM unit generated for its digest.
#[utoipa::path(put, path = "/api/v1/scans/{id}/sbom", tag = "registries",
    params(("id" = String, Path, description = "Scan id of an SBOM generation")),
    security(("report_token" = [])),
    request_body(content = Object, content_type = "application/spdx+json",
        description = "The SPDX 2.3 JSON document, at most 64 MiB"),
    responses((status = 200, body = SbomAccepted, description = "Indexed, and stored unless the digest had one"),
        (status = 400, body = ErrorBody, description = "The body could not be read"),
        (status = 408, body = ErrorBody, description = "The body stopped arriving for longer than the server waits"),
        (status = 401, body = ErrorBody, description = "Not a live report token of this scan"),
        (status = 409, body = ErrorBody, description = "The scan is not an SBOM generation"),
        (status = 413, body = ErrorBody, description = "Larger than 64 MiB"),
        (status = 415, body = ErrorBody, description = "Not sent as application/spdx+json (or application/json)"),
        (status = 422, body = ErrorBody, description = "Not an SPDX 2.3 JSON document"),
        error::Common))]
pub async fn upload_sbom(
    State(state): State<Arc<AppState>>,
    AppPath(id): AppPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<SbomAccepted>, ApiError> {
    let scan = scan_of_report_token(&state, &headers, &id).await?;
    if scan.scanner != SBOM_SCANNER {
        return Err(ApiError::conflict(format!(
            "scan {id} is a {} scan, not an SBOM generation",
            scan.scanner
        )));
    }
    ApiError::require_content_type(&headers, &["application/spdx+json", "application/json"])?;
    let options: SbomOptions = serde_json::from_str(&scan.options)
        .map_err(|e| ApiError::internal(format!("scan {id} options: {e}")))?;
    // Read with a running count so that an oversized upload is refused as it arrives, never
    // held beyond the limit.
    let mut document: Vec<u8> = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::from_stream_error(&e))?;
        if document.len() + chunk.len() > scanplane_sbom::MAX_DOCUMENT_BYTES {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!(
                    "request body is larger than the {} MiB limit of an SBOM",
                    scanplane_sbom::MAX_DOCUMENT_BYTES / (1024 * 1024)
                ),
            ));
        }
        document.extend_from_slice(&chunk);
    }
    let index = scanplane_sbom::index(&document).map_err(|e| ApiError::invalid("body", e))?;
    let os = index.os.map(|os| format!("{} {}", os.name, os.version));
    let packages: Vec<SbomPackage> = index
        .packages
        .into_iter()
        .map(|p| SbomPackage {
            // What advisories are looked up by: the ecosystem without its release, and the
            // package name as the ecosystem writes it (the source package for OS packages).
            match_key: p.purl.as_deref().and_then(|purl| {
                scanplane_vuln::match_key(purl, p.source_name.as_deref(), p.distro.as_deref())
            }),
            name: p.name,
            version: p.version,
            purl: p.purl,
            ecosystem: p.ecosystem,
            distro: p.distro,
            source_name: p.source_name,
            source_version: p.source_version,
            layer_diff_id: p.layer_diff_id,
        })
        .collect();
    let count = packages.len() as u64;
    let stored = state
        .store
        .store_sbom(
            &scan,
            &NewSbom {
                digest: options.digest.clone(),
                format: "spdx-json".into(),
                generator: "trivy".into(),
                document,
                os: os.clone(),
                packages,
            },
            state.clock.now(),
        )
        .await?;
    tracing::info!(scan_run_id = %scan.id, digest = %options.digest, stored, packages = count, "sbom uploaded");
    Ok(Json(SbomAccepted {
        digest: options.digest,
        stored,
        packages: count,
        os,
    }))
}

pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(registry_access))
        // The SBOM is read with its own 64 MiB limit; the JSON body limit does not apply.
        .merge(
            OpenApiRouter::new()
                .routes(routes!(upload_sbom))
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
}
